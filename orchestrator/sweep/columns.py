"""The columns of a sweep's rows (a row is one finished trial: `orchestrator.sweep.report.trial_row`): what a row
takes from its trial's closing report, the order `results.json` records them in, and the Pareto table's columns."""
from __future__ import annotations

from trainables.model.config import DecoupledConfig

ROW_SETTINGS = (*DecoupledConfig.CACHE_SETTINGS, "training")
"""The effective decoupling settings a trial's closing report carries (defaults filled in), and what trained its model
(``own``, ``any-split`` or ``teacher``: `orchestrator.sweep.trial.trial_training`)."""
TABLE_COLUMNS = ("trial", *ROW_SETTINGS, "accuracy", "accuracy_drop", "speedup", "speedup_bound",
                 "state_bytes_per_token")
"""Columns of the Pareto table, on the parent run and in `decouple report`."""
ROW_FIELDS = (*TABLE_COLUMNS[:-1], "speed_reliable", "speed_load", "state_bytes_per_token", "trial_train_s",
              "trial_wall_s")
"""Row fields first in each trial's record in `results.json`; the sampled parameters follow."""
ROW_METRICS = ("accuracy", "accuracy_drop", "speedup", "speedup_bound", "speedup_live", "state_bytes_per_token",
               "speed_reliable", "speed_load", "trial_train_s", "trial_wall_s", "bench_s")
"""Metrics a row takes from a trial's closing report, in the order a row holds them."""
