"""The old path of the sweep's Tune trainable, now `trainables.trial.run_trial`: kept for sweeps started before it
moved and for code that imports it from here. Resuming a sweep (`decouple sweep --resume`) restores Tune state that
names the trainable ``run_trial`` (Tune refuses one of another name), so the function keeps that name. Nothing in
the repository imports this module."""
from trainables.trial import run_trial

__all__ = ["run_trial"]
