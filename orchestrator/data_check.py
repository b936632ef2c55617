"""Read a training run's data on the driver before Ray starts, so data that cannot train fails in one line there.

Inside a Ray Train worker the same problem surfaces only after Ray has started, wrapped in Ray's tracebacks. The
check runs the workers' own loaders (no tokenizer, no model): every source loads, something is left to train and to
evaluate, QA holds out fewer articles than it has, and pair eval data uses the training labels. Skipped rows are not
printed here: the workers load the data again and report them.
"""
from __future__ import annotations

from trainables.data.errors import DataError, LoadReport, problems_unlogged
from trainables.data.label_sets import parse_labels
from trainables.options import TrainOptions


def check_training_data(options: TrainOptions) -> tuple[str, ...]:
    """`ValueError` with one line naming the option and the fix when ``options``' data cannot train; else the
    data's class names (pairs; () for QA)."""
    with problems_unlogged():
        if options.task == "qa":
            _check_qa(options)
            return ()
        return _check_pairs(options)


def _check_qa(o: TrainOptions) -> None:
    from trainables.data.squad import article_count, load_squad

    examples, report = load_squad(o.data, split="train")
    _usable("data", examples, report)
    if o.eval_data is not None:
        held_out, eval_report = load_squad(o.eval_data, split="validation")
        _usable("eval_data", held_out, eval_report)
        return
    articles = article_count(examples)
    if o.eval_articles >= articles:
        raise ValueError(f"eval_articles={o.eval_articles} but data {o.data!r} has {articles} article(s); hold out "
                         f"1 to {articles - 1} so the rest trains, or pass eval_data")


def _check_pairs(o: TrainOptions) -> tuple[str, ...]:
    from trainables.data.pairs import load_pairs

    labels = parse_labels(o.labels)
    examples, names, report = load_pairs(o.data, split="train", labels=labels)
    _usable("data", examples, report)
    if o.eval_data is None:
        if len(examples) < 2:
            raise ValueError(f"data {o.data!r}: {len(examples)} usable example; holding part out for evaluation "
                             "needs at least 2, or pass eval_data")
        return names
    held_out, eval_names, eval_report = load_pairs(o.eval_data, split="validation", labels=labels)
    _usable("eval_data", held_out, eval_report)
    if eval_names != names:
        raise ValueError(f"eval_data {o.eval_data!r}: labels {list(eval_names)} differ from the training data's "
                         f"{list(names)}; use held-out data of the same task, or pass labels")
    return names


def _usable(name: str, examples: list, report: LoadReport) -> None:
    """`DataError` naming the first problem when nothing is left (the other skipped rows are not printed here)."""
    if not examples:
        first = f"; the first: {report.problems[0]}" if report.problems else ""
        raise DataError(f"{name}: no usable examples ({report.summary()}){first}")
