"""An epoch checkpoint, as rank 0 writes it and a resumed run reads it back::

    <HF save_pretrained files>   the model (config.json with its decoupling config, weights, tokenizer)
    trainer_state.json           epoch, phase, global_step: where training continues
    optimizer.pt                 optimizer, scheduler and loss-scaler state (a published model drops it)
    training_config.json         the run's options, as `TrainOptions.to_dict` gave them
    metrics.json                 the epoch's reported metrics
    predictions.json             held-out predictions by example id

Rank 0 writes them into a temporary directory and reports it to Ray Train, which copies it into the run's storage as
``epoch_NNN`` (`persist_checkpoint`).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from trainables import storage
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


def persist_checkpoint(checkpoint, dir_name: str):
    """Ray Train's ``checkpoint_upload_fn`` for the epoch checkpoints: in local storage the checkpoint appears whole
    under ``dir_name`` or not at all (`storage.staged_copy`; Ray's own copy wrote into ``dir_name`` file by file,
    and a disk that filled mid-copy left a part of a checkpoint there that looked complete, trainer_state.json
    included). A bucket's objects each appear whole when uploaded: Ray's own copy. Returns the stored checkpoint."""
    import pyarrow.fs as pafs
    import ray.train

    context = ray.train.get_context().get_storage()
    if not isinstance(context.storage_filesystem, pafs.LocalFileSystem):
        return context.persist_current_checkpoint(checkpoint, dir_name)
    context._check_validation_file()  # as Ray's own copy does: the storage must be the one every node sees
    target = context.build_checkpoint_path_from_name(dir_name)
    storage.staged_copy(Path(checkpoint.path), Path(target))
    return ray.train.Checkpoint(target, filesystem=context.storage_filesystem)
