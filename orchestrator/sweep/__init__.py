"""`decouple sweep`: the driver's side of a sweep. `options` (what one sweep is), `runner` (validate, the teacher, Tune),
`trial` (what the driver hands each trial), `record` (``sweep.json``), `tracking` (MLflow parent and trial runs),
`results` (``results.json`` and plots), `trial_lines` (the console's line per trial)."""
