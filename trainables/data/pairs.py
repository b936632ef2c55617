"""Load sentence-pair classification data (MRPC / QQP / MNLI / RTE style) and turn it into ``PairFeatures``.

Sources: ``synthetic[:seed=..,pairs=..,people=..]`` (the built-in claim-verification set,
`trainables.data.synthetic_pairs`), a local ``.tsv`` (GLUE layouts, MRPC's original layout, or any header naming the two sentence columns
and the label), a local ``.jsonl`` (one object per line), or a ``datasets`` name (``glue/mrpc``,
``nyu-mll/glue:rte``, any ``name[:config]`` or local dataset folder). Column names are matched through the
aliases below, so ``question1/question2`` (QQP) and ``premise/hypothesis`` (MNLI) work unchanged.

Labels become class indices into ``label_names``, drawn from a known set (`trainables.data.label_sets`): ``--labels``,
what the source declares (a ClassLabel; MRPC's and QQP's numeric columns), or the task's own set (0/1, the GLUE
entailment sets). A label outside the set never becomes a class: its row is a bad row. A bad row is skipped with
one line naming the file, the row (its id, or its line), the field and the value.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch

from trainables.data import label_sets
from trainables.data.errors import DataError, LoadReport, problem_line
from trainables.data.features import PairExample, PairFeatures, pad_ids, question_segments
from trainables.data.label_sets import LabelSet
from trainables.data.squad import SYNTHETIC, synthetic_kwargs
from trainables.data.suffixes import FILE_SUFFIXES, task_of_file
from trainables.data.synthetic_pairs import LABEL_NAMES as SYNTHETIC_LABELS
from trainables.data.synthetic_pairs import synthetic_pairs

SENTENCE1_COLUMNS = ("sentence1", "question1", "premise", "#1 String")
SENTENCE2_COLUMNS = ("sentence2", "question2", "hypothesis", "#2 String")
LABEL_COLUMNS = ("label", "gold_label", "is_duplicate", "Quality")
ID_COLUMNS = ("id", "idx", "index", "pairID")
MRPC_ID_COLUMNS = ("#1 ID", "#2 ID")

# Label columns whose values are class indices with conventional names: the layout declares its set.
NUMERIC_LABEL_SETS = {
    "Quality": label_sets.declared(("not_paraphrase", "paraphrase"), "MRPC's Quality column"),
    "is_duplicate": label_sets.declared(("not_duplicate", "duplicate"), "QQP's is_duplicate column"),
}
GLUE_HUB_NAME = "nyu-mll/glue"


class _BadRow(Exception):
    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(detail)
        self.field_name = field_name
        self.detail = detail


@dataclass(frozen=True)
class _RawPair:
    """One row before checking; ``ref`` is how problem lines name it (its id, or ``at line N``)."""

    ref: str
    example_id: str
    fields: dict[str, object]
    """Column name -> value for sentence1, sentence2 and label, keyed by the name used in the source."""
    columns: tuple[str, str, str]
    """The source's names for (sentence1, sentence2, label)."""
    problem: tuple[str, str] | None = None
    """``(field, detail)`` found while reading (a TSV row of the wrong width); the row is skipped."""


def load_pairs(source: str, *, split: str = "train", limit: int | None = None,
               labels: tuple[str, ...] | None = None) -> tuple[list[PairExample], tuple[str, ...], LoadReport]:
    """Load pair examples (at most ``limit``); returns them, the label names and the kept/skipped report.

    ``split`` is used only for ``datasets`` names. ``labels`` are the source's labels as it writes them, in class
    order (``--labels``); None takes the set the source declares or the task's (see `trainables.data.label_sets`).
    Raises ``DataError`` when the whole source is unusable.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"load_pairs: limit = {limit}; use None or a count >= 0")
    path = Path(source)
    if source == SYNTHETIC or source.startswith(SYNTHETIC + ":"):
        examples = synthetic_pairs(**synthetic_kwargs(source, synthetic_pairs))[:limit]
        return examples, SYNTHETIC_LABELS, LoadReport(source, kept=len(examples))
    if source.endswith(".tsv"):
        report = LoadReport(path.name)
        rows, declared = _tsv_rows(path)
    elif source.endswith(".jsonl"):
        report = LoadReport(path.name)
        rows, declared = list(_jsonl_rows(path, report)), None
    elif path.is_file():
        what = "is SQuAD QA data: use --task qa" if task_of_file(path) == "qa" else "is not a pair format: convert it"
        raise DataError(f"{path.name}: pair data is read from {' or '.join(FILE_SUFFIXES['pair'])} files; a "
                        f"{path.suffix or 'suffix-less'} file {what}")
    else:
        report = LoadReport(source)
        rows, declared = _hub_rows(source, split)
    label_set = label_sets.given(labels) if labels else declared or label_sets.known_set(
        [_label_text(r) for r in rows], report.source)
    return _check_rows(rows, label_set, report, limit), label_set.names, report


def build_pair_features(examples: list[PairExample], tokenizer, *, max_question_len: int, max_passage_len: int,
                        label_names: tuple[str, ...] = ()) -> PairFeatures:
    """``[CLS] sentence1 [SEP]`` padded to ``max_question_len``; ``sentence2 [SEP]`` padded to ``max_passage_len``.

    Both are truncated to fit (pair sentences are short; truncation is the standard GLUE treatment).
    """
    if max_question_len < 2 or max_passage_len < 1:
        raise ValueError(f"build_pair_features: max_question_len = {max_question_len}, max_passage_len = "
                         f"{max_passage_len}; use at least 2 and 1 (room for the special tokens)")
    question = question_segments(_tokens(tokenizer, [ex.sentence1 for ex in examples]), tokenizer, max_question_len)
    seconds = [[*ids[:max_passage_len - 1], tokenizer.sep_token_id]
               for ids in _tokens(tokenizer, [ex.sentence2 for ex in examples])]
    passage = pad_ids(seconds, max_passage_len, tokenizer.pad_token_id)
    return PairFeatures(
        question_ids=question[0],
        question_mask=question[1],
        passage_ids=passage[0],
        passage_mask=passage[1],
        labels=torch.tensor([ex.label for ex in examples], dtype=torch.long),
        examples=list(examples),
        label_names=tuple(label_names),
    )


def _tokens(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of ``texts`` without special tokens, uncut."""
    return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []


def _pick(names: Iterable[str], aliases: tuple[str, ...]) -> str | None:
    present = set(names)
    return next((a for a in aliases if a in present), None)


def _columns(names: list[str], source: str) -> tuple[str, str, str]:
    """The (sentence1, sentence2, label) column names; ``DataError`` when one has no alias in ``names``."""
    chosen = (_pick(names, SENTENCE1_COLUMNS), _pick(names, SENTENCE2_COLUMNS), _pick(names, LABEL_COLUMNS))
    if None in chosen:
        raise DataError(f"{source}: columns {names} lack a sentence or label column; name them sentence1, "
                        "sentence2, label (question1/question2, premise/hypothesis and MRPC's "
                        "#1 String/#2 String/Quality also work)")
    return chosen  # type: ignore[return-value]


def _row_id(row: dict[str, object], where: str) -> tuple[str, str]:
    """``(ref, example_id)``: the row's id column(s) when present, else its position."""
    if all(c in row for c in MRPC_ID_COLUMNS):
        example_id = "_".join(str(row[c]) for c in MRPC_ID_COLUMNS)
    else:
        column = _pick(row, ID_COLUMNS)
        example_id = str(row[column]) if column else ""
    if not example_id.strip():
        return f"at {where}", where.replace(" ", "-")
    return f"{example_id} ({where})", example_id


def _raw(row: dict[str, object], where: str, columns: tuple[str, str, str],
         problem: tuple[str, str] | None = None) -> _RawPair:
    ref, example_id = _row_id(row, where)
    return _RawPair(ref, example_id, {c: row.get(c) for c in columns}, columns, problem)


def _tsv_rows(path: Path) -> tuple[list[_RawPair], LabelSet | None]:
    """Rows of a TSV read without quote handling (MRPC text contains bare quote characters)."""
    lines = _read_lines(path, "a header line, then one example per line")
    if not any(line.strip() for line in lines[1:]):
        raise DataError(f"{path.name}: has a header line but no rows; add the examples below the header")
    header = lines[0].split("\t")
    columns = _columns(header, path.name)
    rows: list[_RawPair] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        rows.append(_raw(dict(zip(header, values)), f"line {number}", columns, _width_problem(header, values)))
    return rows, NUMERIC_LABEL_SETS.get(columns[2])


def _width_problem(header: list[str], values: list[str]) -> tuple[str, str] | None:
    if len(values) == len(header):
        return None
    widths = f"the row has {len(values)} tab-separated fields, the header {len(header)}"
    if len(values) < len(header):
        return header[len(values)], f"is missing: {widths}; fill the gap or remove the row"
    return "row", f"is too wide: {widths}; remove the stray tab"


def _read_lines(path: Path, layout: str) -> list[str]:
    """The file's lines; `DataError` when it is missing, not UTF-8, or holds nothing but blank lines (the message
    tells what to write: ``layout``)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start}); "
                        "save the file as UTF-8") from None
    if not any(line.strip() for line in lines):
        raise DataError(f"{path.name}: the file is empty; write {layout}")
    return lines


def _jsonl_rows(path: Path, report: LoadReport) -> Iterator[_RawPair]:
    """One row per non-blank line; a line that is not a JSON object is skipped with a problem line."""
    layout = 'one {"sentence1": ..., "sentence2": ..., "label": ...} object per line'
    for number, line in enumerate(_read_lines(path, layout), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            report.skip(problem_line(report.source, f"at line {number}", "line",
                                     f"is not valid JSON ({err.msg} at column {err.colno}); fix the line"))
            continue
        except RecursionError:
            report.skip(problem_line(report.source, f"at line {number}", "line",
                                     "is nested too deeply to read; write one flat JSON object"))
            continue
        if not isinstance(row, dict):
            report.skip(problem_line(report.source, f"at line {number}", "line",
                                     'is not a JSON object; write {"sentence1": ..., "sentence2": ..., "label": ...}'))
            continue
        columns = tuple(_pick(row, aliases) or aliases[0]
                        for aliases in (SENTENCE1_COLUMNS, SENTENCE2_COLUMNS, LABEL_COLUMNS))
        yield _raw(row, f"line {number}", columns)  # type: ignore[arg-type]


def hub_name(source: str) -> tuple[str, str | None]:
    """``(dataset, config)`` for ``datasets.load_dataset``.

    ``glue/mrpc`` and ``nyu-mll/glue:mrpc`` both give ``("nyu-mll/glue", "mrpc")``; other names have no config.
    """
    if ":" in source:
        name, _, config = source.rpartition(":")
        return name, config or None
    if source.startswith("glue/"):
        return GLUE_HUB_NAME, source.removeprefix("glue/")
    return source, None


def _hub_rows(source: str, split: str) -> tuple[list[_RawPair], LabelSet | None]:
    name, config = hub_name(source)
    try:
        import datasets

        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # any failure of the hub/cache path is the same user-facing problem
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"{source}: datasets.load_dataset({name!r}, {config!r}, split={split!r}) failed "
                        f"({type(err).__name__}: {first_line}); check the name, config and split, or pass a "
                        "local .tsv/.jsonl file") from None
    columns = _columns(list(dataset.column_names), source)
    label_feature = dataset.features[columns[2]]
    names = getattr(label_feature, "names", None)
    declared = label_sets.declared(tuple(names), f"{source}'s ClassLabel") if names else None
    return [_raw(row, f"row {n}", columns) for n, row in enumerate(dataset)], declared


def _check_rows(rows: list[_RawPair], label_set: LabelSet, report: LoadReport,
                limit: int | None) -> list[PairExample]:
    """Keep good rows (up to ``limit``), skip bad ones with one line each."""
    examples: list[PairExample] = []
    for raw in rows:
        if limit is not None and len(examples) >= limit:
            break
        try:
            examples.append(_example(raw, label_set))
        except _BadRow as bad:
            report.skip(problem_line(report.source, raw.ref, bad.field_name, bad.detail))
    report.kept = len(examples)
    return examples


def _label_text(raw: _RawPair) -> str:
    value = raw.fields.get(raw.columns[2])
    return "" if value is None else str(value).strip()


def _example(raw: _RawPair, label_set: LabelSet) -> PairExample:
    if raw.problem:
        raise _BadRow(*raw.problem)
    first, second, label_column = raw.columns
    return PairExample(
        id=raw.example_id,
        sentence1=_sentence(raw.fields.get(first), first),
        sentence2=_sentence(raw.fields.get(second), second),
        label=_label_index(_label_text(raw), label_column, label_set),
    )


def _sentence(value: object, column: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _BadRow(column, "is missing or empty; fill in the sentence or remove the row")
    return value


def _label_index(label: str, column: str, label_set: LabelSet) -> int:
    """The class of ``label`` in ``label_set``; `_BadRow` naming the value when it has none."""
    index = label_set.index(label)
    if index is not None:
        return index
    if label in label_sets.MISSING:
        raise _BadRow(column, "is missing; label the row or remove it")
    if label_sets.is_unlabelled(label):
        raise _BadRow(column, f"= {label} marks an unlabelled row (a test split?); use a labelled split or file")
    raise _BadRow(column, f"= {label!r} is not one of {label_set.describe()}; fix the label or remove the row")
