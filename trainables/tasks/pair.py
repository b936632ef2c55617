"""Sentence-pair classification (GLUE-style): the checkpoint family's own classifier on the joint sequence (optionally
with SBERT's segment features), one class per pair, scored by accuracy and F1."""
from __future__ import annotations

import random
from typing import Any

from trainables.data.errors import LoadReport
from trainables.data.label_sets import parse_labels
from trainables.data.suffixes import task_of_file
from trainables.tasks.base import Task, TaskData, check_usable


class PairTask(Task):
    name = "pair"
    metric = "accuracy"
    metric_label = "accuracy"
    hf_kind = "sequence-classification"
    head_prefix = "classifier."
    data_settings = ("task", "max_passage_len", "labels")
    unused_options = ("doc_stride", "eval_articles")
    has_classes = True
    extracts_answers = False
    smoke_question_len = 24  # a synthetic claim
    smoke_passage_len = 40  # a synthetic passage

    def auto_class(self) -> type:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def head_kwargs(self, num_labels: int) -> dict[str, Any]:
        return {"num_labels": num_labels}

    def head(self, model, sequence, mask, question_len: int) -> dict[str, Any]:
        from torch import nn

        classifier = model.hf.classifier
        if isinstance(classifier, nn.Linear):  # BERT-style: pooler (dense+tanh on [CLS]) -> dropout -> linear
            logits = classifier(model.hf.dropout(model.hf.base_model.pooler(sequence)))
        else:
            logits = classifier(sequence)  # RoBERTa/ELECTRA heads read [CLS] themselves
        if model.pair_features is not None:
            logits = logits + model.pair_features(segment_features(sequence, mask, question_len))
        return {"logits": logits}

    def logit_shape(self, joint_len: int, num_labels: int) -> tuple[int, ...]:
        return (num_labels,)

    def check_num_labels(self, num_labels: int) -> None:
        if num_labels < 2:
            raise ValueError(f"num_labels={num_labels} must be >= 2 for task 'pair'")

    def check_pair_head(self, pair_head: str) -> None:
        """Every pair head applies."""

    def name_classes(self, model, names: tuple[str, ...]) -> None:
        """``id2label`` / ``label2id`` (saved in config.json), so the checkpoint says which class each logit is and
        evaluation can check its data against them."""
        model.hf_config.id2label = dict(enumerate(names))
        model.hf_config.label2id = {name: i for i, name in enumerate(names)}

    def recognises(self, data: str) -> bool:
        return task_of_file(data) == self.name or data.startswith(("glue", "nyu-mll/glue"))

    def check_options(self, o) -> None:
        if not 0 < o.eval_fraction < 1:
            raise ValueError(f"eval_fraction={o.eval_fraction} must be in (0, 1)")

    def check_data(self, o) -> tuple[str, ...]:
        from trainables.data.pairs import load_pairs

        labels = parse_labels(o.labels)
        examples, names, report = load_pairs(o.data, split="train", labels=labels)
        check_usable("data", examples, report)
        if o.eval_data is None:
            if len(examples) < 2:
                raise ValueError(f"data {o.data!r}: {len(examples)} usable example; holding part out for evaluation "
                                 "needs at least 2, or pass eval_data")
            return names
        held_out, eval_names, eval_report = load_pairs(o.eval_data, split="validation", labels=labels)
        check_usable("eval_data", held_out, eval_report)
        if eval_names != names:
            raise ValueError(f"eval_data {o.eval_data!r}: labels {list(eval_names)} differ from the training data's "
                             f"{list(names)}; use held-out data of the same task, or pass labels")
        return names

    def load_data(self, spec, tokenizer) -> TaskData:
        from trainables.data.pairs import load_pairs

        examples, names, report = load_pairs(spec.data, split="train", labels=spec.labels)
        reports = [report]
        if spec.eval_data is None:
            order = list(range(len(examples)))
            random.Random(spec.seed).shuffle(order)
            n_eval = max(1, round(spec.eval_fraction * len(examples)))
            held_out = [examples[i] for i in sorted(order[:n_eval])]
            train = [examples[i] for i in sorted(order[n_eval:])]
        else:
            train = examples
            held_out, eval_names, eval_report = load_pairs(spec.eval_data, split="validation", labels=spec.labels)
            reports.append(eval_report)
            if eval_names != names:
                raise ValueError(f"eval_data: labels {eval_names} differ from the training labels {names}")
        cut = dict(max_question_len=spec.max_question_len, max_passage_len=spec.max_passage_len, doc_stride=None,
                   label_names=names, source="")
        train_features, _ = self.features(train[: spec.max_train_examples], tokenizer, **cut)
        eval_features, _ = self.features(held_out[: spec.max_eval_examples], tokenizer, **cut)
        return TaskData(train_features, eval_features, len(names), names, reports)

    def load_examples(self, source: str, *, split: str, limit: int | None,
                      labels: tuple[str, ...] | None) -> tuple[list, tuple[str, ...], LoadReport]:
        from trainables.data.pairs import load_pairs

        return load_pairs(source, split=split, limit=limit, labels=labels)

    def features(self, examples: list, tokenizer, *, max_question_len: int, max_passage_len: int,
                 doc_stride: int | None, label_names: tuple[str, ...], source: str) -> tuple[Any, list[LoadReport]]:
        from trainables.data.pairs import build_pair_features

        return build_pair_features(examples, tokenizer, max_question_len=max_question_len,
                                   max_passage_len=max_passage_len, label_names=label_names), []

    def evaluate(self, model, features, label_names: tuple[str, ...], *, batch_size: int, device,
                 version_2: bool | None = None, passage_states=None, progress=None) -> tuple[dict, dict[str, str]]:
        """``version_2`` and ``passage_states`` are QA's: pairs have neither."""
        from trainables.metrics.evaluation import evaluate_pairs

        scores, classes = evaluate_pairs(model, features, batch_size=batch_size, device=device, progress=progress)
        return scores, {ex.id: label_names[y] for ex, y in zip(features.examples, classes)}


def segment_features(states, mask, question_len: int):
    """SBERT's pair features of joint states (B, T, d) with their (B, T) mask, the first ``question_len`` positions the
    question's: (B, 4d) = [u, v, |u - v|, u * v], u and v the means of the question's and the passage's real-token
    states (a segment without real tokens has mean 0)."""
    import torch

    weights = mask.to(states.dtype)[..., None]  # (B, T, 1)

    def mean(part: slice) -> torch.Tensor:  # (B, d)
        return (states[:, part] * weights[:, part]).sum(1) / weights[:, part].sum(1).clamp_min(1.0)

    u, v = mean(slice(0, question_len)), mean(slice(question_len, None))
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
