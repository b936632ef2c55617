"""A training run's data on a worker: the task's training and held-out rows, loaded, split and featurized
(`load_task_data`), and the training rows as a torch `Dataset` (`Rows`)."""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from trainables.data.errors import LoadReport
from trainables.data.features import PairFeatures, QAFeatures
from trainables.data.pairs import build_pair_features, load_pairs
from trainables.data.qa_features import build_qa_features
from trainables.data.squad import load_squad, split_by_article
from trainables.training.config import DataSpec


@dataclass
class TaskData:
    """Model-ready training and evaluation rows of one task, with the loaders' kept/skipped reports."""

    train: QAFeatures | PairFeatures
    eval: QAFeatures | PairFeatures
    num_labels: int
    label_names: tuple[str, ...]
    reports: list[LoadReport]

    @property
    def summaries(self) -> list[str]:
        """One ``kept N, skipped M`` line per loader."""
        return [r.summary() for r in self.reports]

    @property
    def problems(self) -> int:
        """Examples the loaders skipped or repaired: a quiet worker (a sweep trial) shows the summaries only then."""
        return sum(r.skipped + r.warnings for r in self.reports)


def load_task_data(spec: DataSpec, tokenizer) -> TaskData:
    """Load, split and featurize the training and evaluation data of ``spec.task``."""
    return _load_qa(spec, tokenizer) if spec.task == "qa" else _load_pair_data(spec, tokenizer)


def _load_qa(spec: DataSpec, tokenizer) -> TaskData:
    examples, report = load_squad(spec.source, split="train")
    reports = [report]
    if spec.eval_source is None:
        train, held_out = split_by_article(examples, eval_articles=spec.eval_articles, seed=spec.seed)
    else:
        train = examples
        held_out, held_out_report = load_squad(spec.eval_source, split="validation")
        reports.append(held_out_report)
    cut = dict(max_question_len=spec.max_question_len, max_passage_len=spec.max_passage_len,
               doc_stride=spec.doc_stride)
    train_features, train_report = build_qa_features(train[: spec.max_train_examples], tokenizer, **cut,
                                                     source="train")
    eval_features, eval_report = build_qa_features(held_out[: spec.max_eval_examples], tokenizer, **cut,
                                                   source="eval")
    return TaskData(train_features, eval_features, 2, (), reports + [train_report, eval_report])


def _load_pair_data(spec: DataSpec, tokenizer) -> TaskData:
    examples, names, report = load_pairs(spec.source, split="train", labels=spec.labels)
    reports = [report]
    if spec.eval_source is None:
        order = list(range(len(examples)))
        random.Random(spec.seed).shuffle(order)
        n_eval = max(1, round(spec.eval_fraction * len(examples)))
        held_out = [examples[i] for i in sorted(order[:n_eval])]
        train = [examples[i] for i in sorted(order[n_eval:])]
    else:
        train = examples
        held_out, eval_names, eval_report = load_pairs(spec.eval_source, split="validation", labels=spec.labels)
        reports.append(eval_report)
        if eval_names != names:
            raise ValueError(f"eval_data: labels {eval_names} differ from the training labels {names}")
    cut = dict(max_question_len=spec.max_question_len, max_passage_len=spec.max_passage_len, label_names=names)
    return TaskData(
        build_pair_features(train[: spec.max_train_examples], tokenizer, **cut),
        build_pair_features(held_out[: spec.max_eval_examples], tokenizer, **cut),
        len(names),
        names,
        reports,
    )


class Rows(Dataset):
    """Training rows as dicts of tensors, each with its row ``index`` (the key into cached teacher logits)."""

    def __init__(self, features: QAFeatures | PairFeatures):
        self.tensors = {
            "question_ids": features.question_ids,
            "question_mask": features.question_mask,
            "passage_ids": features.passage_ids,
            "passage_mask": features.passage_mask,
        }
        if isinstance(features, QAFeatures):
            self.tensors.update(start_positions=features.start_positions, end_positions=features.end_positions)
        else:
            self.tensors["labels"] = features.labels

    def __len__(self) -> int:
        return int(self.tensors["question_ids"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"index": torch.tensor(i), **{k: v[i] for k, v in self.tensors.items()}}
