"""What is wrong with a local checkpoint directory, found before a loader trips over it.

Hugging Face loaders report a broken ``config.json`` or a truncated ``*.safetensors`` file with a traceback from deep
inside; `check_checkpoint_dir` reads the same files first (the JSON, and each safetensors header against the file's
size, without loading a tensor) and raises one line naming the file and what is wrong with it. `untrained_head`
tells whether the task head is missing from the weights, so the loader would start it at random.
"""
from __future__ import annotations

import json
from pathlib import Path

from trainables.tasks.registry import task_named

CONFIG = "config.json"
_WEIGHTS_GLOBS = ("*.safetensors", "pytorch_model*.bin")


def check_checkpoint_dir(path: str | Path, label: str = "model") -> None:
    """Raise `FileNotFoundError` / `ValueError`, one line naming the file, when ``path`` is not a readable checkpoint:
    no or malformed ``config.json``, no weights, or a safetensors file that is truncated or corrupt."""
    path = Path(path)
    config = _read_config(path, label)
    if not isinstance(config.get("model_type"), str):
        raise ValueError(f"{label} {path}: {CONFIG} has no 'model_type'; it is not a Hugging Face model's config "
                         "(save the model with save_pretrained)")
    weights = [f for pattern in _WEIGHTS_GLOBS for f in sorted(path.glob(pattern))]
    if not any(f.name != "decoupled.safetensors" for f in weights):
        raise FileNotFoundError(f"{label} {path}: no weights file (model.safetensors); copy the whole checkpoint "
                                "directory or save the model again")
    for file in weights:
        if file.suffix == ".safetensors":
            _tensor_names(file, label)


def untrained_head(path: str | Path, task: str) -> str | None:
    """The task head's module name (``qa_outputs``, ``classifier``) when no safetensors file in ``path`` holds it,
    so loading starts it at random; None when it is there or the weights are not safetensors."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    prefix = task_named(task).head_prefix
    names = {name for file in files for name in _tensor_names(file, "model")}
    has_head = any(name.startswith(prefix) or f".{prefix}" in name for name in names)
    return None if has_head else prefix.rstrip(".")


def _read_config(path: Path, label: str) -> dict:
    file = path / CONFIG
    if not file.is_file():
        raise FileNotFoundError(f"{label} {path}: no {CONFIG}; pass a directory written by save_pretrained or an "
                                "HF model")
    try:
        config = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{label} {path}: {CONFIG} is not valid JSON ({err.msg} at line {err.lineno} column "
                         f"{err.colno}); restore it from the original checkpoint") from None
    except (UnicodeDecodeError, RecursionError) as err:
        what = "nested too deeply" if isinstance(err, RecursionError) else "not UTF-8 text"
        raise ValueError(f"{label} {path}: {CONFIG} is {what}; restore it from the original checkpoint") from None
    if not isinstance(config, dict):
        raise ValueError(f"{label} {path}: {CONFIG} is not a JSON object; restore it from the original checkpoint")
    return config


def _tensor_names(file: Path, label: str) -> list[str]:
    """The tensor names in a safetensors header, checked against the file's size (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{label} {file.parent}: {file.name} is truncated or corrupt ({reason}); copy or save the "
                         "checkpoint again") from None
