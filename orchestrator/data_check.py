"""Read a training run's data on the driver before Ray starts, so data that cannot train fails in one line there.

Inside a Ray Train worker the same problem surfaces only after Ray has started, wrapped in Ray's tracebacks. The
check runs the workers' own loaders (no tokenizer, no model), as the task says (`Task.check_data`): every source
loads, something is left to train and to evaluate, QA holds out fewer articles than it has, and pair eval data uses
the training labels. Skipped rows are not printed here: the workers load the data again and report them.
"""
from __future__ import annotations

from trainables.data.errors import problems_unlogged
from trainables.options import TrainOptions
from trainables.tasks.registry import task_named


def check_training_data(options: TrainOptions) -> tuple[str, ...]:
    """`ValueError` with one line naming the option and the fix when ``options``' data cannot train; else the
    data's class names (pairs; () for QA)."""
    with problems_unlogged():
        return task_named(options.task).check_data(options)
