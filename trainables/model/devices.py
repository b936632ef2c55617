"""Which torch devices a command may run on, checked when its options are built rather than mid-run."""
from __future__ import annotations

KINDS = ("cpu", "cuda")


def check_device(name: str, field_name: str = "device") -> str:
    """``name`` when this torch build can run on it (``cpu``, ``cuda``, ``cuda:N``); else `ValueError` naming
    ``field_name`` and the fix. Imports torch only for a CUDA device."""
    kind, colon, index = str(name).partition(":")
    if kind not in KINDS or (colon and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"{field_name}={name!r} is unknown; use cpu or cuda (cuda:N for the N-th GPU)")
    if kind == "cuda":
        import torch

        if torch.version.cuda is None:
            raise ValueError(f"{field_name}={name!r} but this torch {torch.__version__} is a CPU-only build; "
                             "use cpu, or install a CUDA build of torch")
        if not torch.cuda.is_available():
            raise ValueError(f"{field_name}={name!r} but no CUDA device is visible; use cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"{field_name}={name!r} but only {torch.cuda.device_count()} CUDA device(s) are "
                             f"visible; use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return name
