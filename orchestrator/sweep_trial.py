"""The old path of the sweep's Tune trainable, kept for sweeps started before `orchestrator.sweep` existed: resuming
one (`decouple sweep --resume`) restores Tune state that names the trainable ``run_trial`` (Tune refuses a trainable
of another name) and code outside this repository may import it from here. Nothing in the repository imports it."""
from orchestrator.sweep.trial import run_trial

__all__ = ["run_trial"]
