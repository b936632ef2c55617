"""The old path of the sweep's Tune naming functions, kept for sweeps started before `orchestrator.sweep` existed:
their saved Tune state (``tuner.pkl``) pickles ``orchestrator.sweep_runner._TrialName`` and ``_trial_dirname`` by
this path, and `decouple sweep --resume` unpickles it. Nothing else imports this module."""
from orchestrator.sweep.tuner import TrialName as _TrialName
from orchestrator.sweep.tuner import trial_dirname as _trial_dirname

__all__ = ["_TrialName", "_trial_dirname"]
