"""What one `decouple serve` is: `ServeOptions`, read by the driver (`orchestrator.serve`) and handed to every
replica (`trainables.serving.replica`). Torch-free, so the command's flags are made from it without loading a model."""
from __future__ import annotations

from dataclasses import dataclass, field

from trainables.model.devices import check_device
from trainables.options import check_finite

BASELINES = ("full",)


@dataclass(frozen=True)
class ServeOptions:
    """One `decouple serve`."""

    model: str
    """The checkpoint that built the cache (directory, hub name or 'minilm-l6'); with --baseline full, the full model
    (the teacher) to run over the retrieved windows instead."""
    cache: str
    """The cache directory (`decouple cache build --out`): the windows retrieval searches and their states."""
    baseline: str | None = field(default=None, metadata={"choices": BASELINES})
    """'full': the like-for-like baseline, the same retrieval with --model run whole (split 0) over each retrieved
    window's tokens at the cache's question length; not given: the decoupled model over the cached states."""
    host: str = "127.0.0.1"
    """Address the HTTP endpoint listens on (0.0.0.0 for every interface)."""
    port: int = 8000
    """Port the HTTP endpoint listens on."""
    replicas: int = 1
    """Serve replicas, each holding the model and the whole cache in memory."""
    cpus_per_replica: int = 1
    """CPUs each replica holds, also its torch thread count."""
    top_k: int = 5
    """Windows retrieved (BM25) and read per question when a request gives no top_k."""
    max_top_k: int = 50
    """The largest top_k a request may ask for."""
    max_batch_size: int = 8
    """Requests answered together in one model call (Ray Serve's @serve.batch)."""
    batch_wait_ms: float = 5.0
    """How long a batch waits for more requests before it runs, in milliseconds."""
    batch_size: int = 64
    """Windows per upper-layer call."""
    n_best: int = 20
    """Top start and end tokens considered per window (as in evaluation)."""
    max_answer_len: int = 30
    """Longest answer in tokens (as in evaluation)."""
    device: str = "cpu"
    """Torch device for the model in each replica: cpu, cuda or cuda:N."""
    ray_address: str | None = None
    """Connect to this Ray cluster; None (and no ``RAY_ADDRESS``) starts a local Ray for the service, never joining
    one started elsewhere (`orchestrator.ray_session`)."""

    def __post_init__(self) -> None:
        for name in ("model", "cache", "host"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"{name} is empty; pass --{name.replace('_', '-')}")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise ValueError(f"baseline={self.baseline!r} is unknown; use {' or '.join(BASELINES)}, or leave it out")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port={self.port} is not a TCP port; use 1..65535")
        for name in ("replicas", "cpus_per_replica", "top_k", "max_top_k", "max_batch_size", "batch_size", "n_best",
                     "max_answer_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.top_k > self.max_top_k:
            raise ValueError(f"top_k={self.top_k} is above max_top_k={self.max_top_k}; lower --top-k or raise "
                             "--max-top-k")
        check_finite(self)
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms={self.batch_wait_ms} must be >= 0")
        check_device(self.device)
