"""A training run's data on a worker: the task's training and held-out rows, loaded, split and featurized
(`load_task_data`), and the training rows as a torch `Dataset` (`Rows`)."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from trainables.data.features import PairFeatures, QAFeatures
from trainables.tasks.base import TaskData
from trainables.tasks.registry import task_named
from trainables.training.config import DataSpec


def load_task_data(spec: DataSpec, tokenizer) -> TaskData:
    """Load, split and featurize the training and evaluation data of ``spec.task`` (the task's own loader)."""
    return task_named(spec.task).load_data(spec, tokenizer)


class Rows(Dataset):
    """Training rows as dicts of tensors, each with its row ``index`` (the key into cached teacher logits)."""

    def __init__(self, features: QAFeatures | PairFeatures):
        self.tensors = {
            "question_ids": features.question_ids,
            "question_mask": features.question_mask,
            "passage_ids": features.passage_ids,
            "passage_mask": features.passage_mask,
            **features.targets,
        }

    def __len__(self) -> int:
        return int(self.tensors["question_ids"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"index": torch.tensor(i), **{k: v[i] for k, v in self.tensors.items()}}
