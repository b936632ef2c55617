"""Hub names as local directories: ``bert-base-uncased``, ``org/name`` or ``org/name@revision`` become the snapshot
directory of that revision in Hugging Face's own cache (``$HF_HOME/hub``), fetched there when missing unless
``HF_HUB_OFFLINE`` is set.

Commands hand models to loaders and Ray workers as *directories*, so a hub name is resolved here, once, on the
driver; the workers get the snapshot's path (on a cluster every node must see that path: a shared ``HF_HOME``). The
fetching is `huggingface_hub.snapshot_download`, the cache transformers itself loads from, limited to what a
checkpoint needs: configs, tokenizer files and safetensors weights (the pickled ``pytorch_model*.bin`` only for a
repository without safetensors), never its subfolders (ONNX or Core ML exports).
"""
from __future__ import annotations

from pathlib import Path

CHECKPOINT_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]
"""config.json, the tokenizer's files (tokenizer.json, vocab.txt, merges.txt, spiece.model, ...) and the weights."""
PICKLED_WEIGHTS = ["pytorch_model*.bin"]
"""Weights of repositories that publish no safetensors."""
TOP_LEVEL_ONLY = ["*/*"]
"""Patterns left out: anything in a subfolder."""


def split_revision(name: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``); a name without ``@`` -> (name, None)."""
    repo, sep, revision = name.partition("@")
    return repo, (revision if sep else None)


def hub_snapshot(name: str, label: str = "model") -> Path:
    """The local snapshot directory of the hub model ``name`` (``[org/]model[@revision]``), fetched into the Hugging
    Face cache when it is missing and the hub may be asked.

    Raises `FileNotFoundError` with one line naming ``label`` and ``name`` when the model cannot be had (offline and
    not cached, no such model or revision, the hub unreachable); nothing is retried.
    """
    from huggingface_hub import snapshot_download

    repo, revision = split_revision(name)
    try:
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=CHECKPOINT_FILES,
                                        ignore_patterns=TOP_LEVEL_ONLY))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo, revision=revision, allow_patterns=PICKLED_WEIGHTS,
                                            ignore_patterns=TOP_LEVEL_ONLY))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(unavailable(name, label, err)) from None
    return folder


def unavailable(name: str, label: str, err: BaseException) -> str:
    """One line saying why ``snapshot_download`` could not give the hub model ``name`` (its error ``err``)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, revision = split_revision(name)
    head, cache = f"{label} {name}: not a local directory, and", constants.HF_HUB_CACHE
    if isinstance(err, RevisionNotFoundError):
        return f"{label} {name}: the hub's {repo} has no revision {revision!r}; check the part after '@'"
    if isinstance(err, RepositoryNotFoundError):  # gated and private repositories included
        return (f"{head} the hub has no model {repo} (or it is private or gated: log in with `hf auth login`); "
                "check the path or the name")
    if isinstance(err, IncompleteSnapshotError):
        return (f"{label} {name}: its copy in the Hugging Face cache {cache} misses files and the hub cannot be "
                "reached; fetch it again with internet")
    if isinstance(err, LocalEntryNotFoundError) and constants.HF_HUB_OFFLINE:
        return (f"{head} HF_HUB_OFFLINE is set but the Hugging Face cache {cache} does not hold it; fetch it once "
                "with internet (HF_HUB_OFFLINE unset), point HF_HOME at a cache that holds it, or pass a checkpoint "
                "directory")
    if isinstance(err, LocalEntryNotFoundError):
        return (f"{head} the hub cannot be reached and the Hugging Face cache {cache} does not hold it; check the "
                "connection, the path or the name")
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"{head} the hub gives no such model ({reason}); check the path or the name"
