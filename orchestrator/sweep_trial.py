"""The old path of the sweep's Tune trainable, now `trainables.trial.run_trial`, kept as an alias for whatever still
imports it from here (nothing in the repository does). A sweep's saved Tune state (``tuner.pkl``) records the
trainable by its name, ``run_trial``, and `decouple sweep --resume` is refused by Tune under another name, so the
function keeps that name; the paths that state does pickle are kept in `orchestrator.sweep_runner`."""
from trainables.trial import run_trial

__all__ = ["run_trial"]
