"""`decouple sweep`, the driver's side: `options` (what one sweep is), `runner` (validate, the teacher, Tune),
`trial` (the driver's part of each trial), `record` (``sweep.json``), `tracking` (MLflow parent and trial runs),
`results` (``results.json`` and plots), `trial_lines` (the console's line per trial)."""
