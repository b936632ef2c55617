"""Encoding windows into passage states: the Ray Data actor of `decouple cache build`, and the checks that every actor
reproduces the driver's model.

A checkpoint that loads with random weights (a missing QA head or compressor) would give every actor different
states, so the driver loads it twice and refuses it when the two identities differ (`check_reproducible`); each actor
also re-checks its own copy against the driver's identity (a node that sees another file fails instead of caching
foreign states).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainables.cache.format import CacheError, model_identity
from trainables.model.decoupled import DecoupledModel, load_decoupled
from trainables.model.source import resolve_model

RANDOM_WEIGHTS = ("model {model}: loading it twice gives different weights (a head or compressor is initialised "
                  "at random); save the decoupled model with save_pretrained and cache that")


class PassageEncoder:
    """Ray Data callable class: loads the model once per actor, then encodes batches of windows.

    Batch in: ``row`` (B,), ``input_ids`` (B, P), ``length`` (B,). Batch out: ``row`` (B,), ``states`` (B, P, C) in
    the cache dtype and, for int8, ``scale`` (B, C) fp32.
    """

    def __init__(self, model: str, overrides: dict, identity_sha256: str, threads: int) -> None:
        import ray

        self.device = torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.model = load_model(model, overrides)
        if model_identity(self.model)["sha256"] != identity_sha256:
            raise CacheError(RANDOM_WEIGHTS.format(model=model))
        self.model.to(self.device).eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(batch["input_ids"].astype(np.int64)).to(self.device)
        lengths = torch.from_numpy(batch["length"].astype(np.int64)).to(self.device)
        mask = (torch.arange(ids.shape[1], device=self.device) < lengths[:, None]).long()
        with torch.inference_mode():
            states = self.model.encode_passage(ids, mask)
        out = {"row": batch["row"], "states": states.values.cpu().numpy()}
        if states.scale is not None:
            out["scale"] = states.scale[:, 0, :].cpu().numpy()
        return out


def absolute_model(model: str) -> str:
    """A local checkpoint as an absolute path, so actors with another working directory find it too."""
    path = Path(resolve_model(model))
    return str(path.resolve()) if path.exists() else str(model)


def load_model(model: str, overrides: dict) -> DecoupledModel:
    """The checkpoint ``model`` as a DecoupledModel with ``overrides`` applied to its decoupling config
    (`trainables.model.decoupled.load_decoupled`: the same loader and checks as evaluation)."""
    return load_decoupled(model, **overrides)


def check_reproducible(model: str, overrides: dict, identity: dict) -> None:
    """Refuse a checkpoint that loads with random weights: no actor could reproduce the driver's states."""
    if model_identity(load_model(model, overrides))["sha256"] != identity["sha256"]:
        raise CacheError(RANDOM_WEIGHTS.format(model=model))
