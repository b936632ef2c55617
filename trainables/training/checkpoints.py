"""An epoch checkpoint, as rank 0 writes it and a resumed run reads it back::

    <HF save_pretrained files>   the model (config.json with its decoupling config, weights, tokenizer)
    trainer_state.json           epoch, phase, global_step: where training continues
    optimizer.pt                 optimizer, scheduler and loss-scaler state (a published model drops it)
    training_config.json         the run's options, as `TrainOptions.to_dict` gave them
    metrics.json                 the epoch's reported metrics
    predictions.json             held-out predictions by example id
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from trainables.model.decoupled import DecoupledModel
from trainables.training.config import METRICS, OPTIMIZER_STATE, PREDICTIONS, TRAINER_STATE, TRAINING_CONFIG


def save_checkpoint(folder: Path, model: DecoupledModel, state: dict, optimizer_state: dict, record: dict,
                    metrics: dict, predictions: dict) -> None:
    """Write the files above into ``folder``; ``state`` is trainer_state.json's mapping."""
    model.save_pretrained(folder)
    (folder / TRAINER_STATE).write_text(json.dumps(state, indent=1))
    torch.save(optimizer_state, folder / OPTIMIZER_STATE)
    (folder / TRAINING_CONFIG).write_text(json.dumps(record, indent=1, default=str))
    (folder / METRICS).write_text(json.dumps(metrics, indent=1))
    (folder / PREDICTIONS).write_text(json.dumps(predictions, indent=1, ensure_ascii=False))


def trainer_state(folder: Path) -> dict:
    """trainer_state.json of a checkpoint: ``epoch`` (epochs done), ``phase``, ``global_step``."""
    return json.loads((folder / TRAINER_STATE).read_text())


def optimizer_state(folder: Path, device: torch.device) -> dict | None:
    """optimizer.pt of a checkpoint, or None when it keeps none (a finished, published model)."""
    path = folder / OPTIMIZER_STATE
    if not path.is_file():
        return None
    return torch.load(path, map_location=device, weights_only=True)
