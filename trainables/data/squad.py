"""Load SQuAD v1.1 / v2.0 questions from a local JSON file, a ``datasets`` hub name, or the synthetic generator.

Every source ends in the same per-example checks, so a bad example is skipped with one line naming the file, the
example id and the field (see ``trainables.data.errors``), and the ``LoadReport`` counts kept and skipped examples.
Over-long questions cannot be detected here (that needs a tokenizer); ``trainables.data.qa_features`` reports them.
"""
from __future__ import annotations

import inspect
import json
import random
from pathlib import Path
from typing import Iterator

from trainables.data.errors import DataError, LoadReport, problem_line
from trainables.data.features import QAExample
from trainables.data.suffixes import FILE_SUFFIXES, task_of_file
from trainables.data.synthetic import synthetic_squad

SYNTHETIC = "synthetic"


class _BadExample(Exception):
    """One example is unusable because of ``field``; ``detail`` finishes the problem line."""

    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(detail)
        self.field_name = field_name
        self.detail = detail


def load_squad(source: str, *, split: str = "validation",
               limit: int | None = None) -> tuple[list[QAExample], LoadReport]:
    """Load extractive-QA examples; returns them (at most ``limit``) and the report of kept/skipped examples.

    ``source`` is a local SQuAD-format ``.json`` file (v1.1, or v2.0 when questions carry ``is_impossible``), the
    built-in ``"synthetic"`` set (``"synthetic:seed=3,articles=40"`` passes arguments to ``synthetic_squad``),
    or any other name, loaded with ``datasets.load_dataset(source, split=split)`` (needs the hub or a local
    dataset folder; a row with no answers is read as impossible, the ``squad_v2`` convention).
    Raises ``DataError`` when the whole source is unusable.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"load_squad: limit = {limit}; use None or a count >= 0")
    if source == SYNTHETIC or source.startswith(SYNTHETIC + ":"):
        return _load_synthetic(source, limit)
    if task_of_file(source) == "pair" and Path(source).is_file():
        raise DataError(f"{Path(source).name}: a {Path(source).suffix} file holds sentence pairs, not SQuAD JSON; "
                        f"use --task pair (or leave --task out: {'/'.join(FILE_SUFFIXES['pair'])} data is read as "
                        "pairs)")
    if task_of_file(source) == "qa" or Path(source).is_file():
        return _load_json_file(Path(source), limit)
    return _load_hub(source, split, limit)


def split_by_article(examples: list[QAExample], *, eval_articles: int,
                     seed: int = 0) -> tuple[list[QAExample], list[QAExample]]:
    """Split into ``(train, eval)`` with ``eval_articles`` whole articles in eval, chosen by a seeded shuffle.

    Articles are keyed by ``title`` (an untitled example is its own article, keyed by its passage), so no
    paragraph is in both parts. Input order is kept within each part; the result does not depend on input order.
    """
    keys = sorted({_article_key(ex) for ex in examples})
    if not 0 <= eval_articles <= len(keys):
        raise ValueError(f"split_by_article: eval_articles = {eval_articles} but the data has {len(keys)} "
                         f"articles; use 0 to {len(keys)}")
    random.Random(seed).shuffle(keys)
    held_out = set(keys[:eval_articles])
    train = [ex for ex in examples if _article_key(ex) not in held_out]
    evaluation = [ex for ex in examples if _article_key(ex) in held_out]
    return train, evaluation


def article_count(examples: list[QAExample]) -> int:
    """Distinct articles as `split_by_article` counts them."""
    return len({_article_key(ex) for ex in examples})


def _article_key(example: QAExample) -> str:
    return example.title or f"passage:{example.passage_id}"


def _load_synthetic(source: str, limit: int | None) -> tuple[list[QAExample], LoadReport]:
    examples = synthetic_squad(**synthetic_kwargs(source, synthetic_squad))
    if limit is not None:
        examples = examples[:limit]
    return examples, LoadReport(source, kept=len(examples))


def synthetic_kwargs(source: str, generator) -> dict[str, int]:
    """Parse ``synthetic:seed=3,articles=40`` into integer keyword arguments of ``generator`` (``synthetic_squad``,
    ``synthetic_pairs``)."""
    allowed = list(inspect.signature(generator).parameters)
    kwargs: dict[str, int] = {}
    for part in filter(None, source.partition(":")[2].split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in allowed:
            raise DataError(f"{source}: unknown option '{key}'; use {', '.join(allowed)}")
        try:
            kwargs[key] = int(value)
        except ValueError:
            raise DataError(f"{source}: option '{key}' = {value!r} is not an integer; write e.g. {key}=3") from None
    return kwargs


def _load_json_file(path: Path, limit: int | None) -> tuple[list[QAExample], LoadReport]:
    report = LoadReport(path.name)
    rows = _json_rows(_read_json(path), report)
    return _collect(rows, report, limit), report


def _read_json(path: Path) -> list:
    """The ``data`` list of a SQuAD JSON file; ``DataError`` when the file is missing, malformed or not SQuAD."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path or use a hub name such as 'squad'")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is accepted, as by the pair readers
        if not text.strip():
            raise DataError(f"{path.name}: the file is empty; expected SQuAD JSON "
                            '{"version": ..., "data": [...]}')
        root = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path.name}: malformed JSON at line {err.lineno} column {err.colno} ({err.msg}); "
                        "fix the file or download it again") from None
    except RecursionError:
        raise DataError(f"{path.name}: JSON nested too deeply to read; SQuAD JSON is a few levels deep, "
                        "fix or regenerate the file") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start}); "
                        "save the file as UTF-8") from None
    if not isinstance(root, dict) or not isinstance(root.get("data"), list):
        raise DataError(f"{path.name}: field 'data' is missing or not a list; expected SQuAD format "
                        '{"version": ..., "data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}')
    return root["data"]


_Row = tuple[str, dict, object, str]  # (where, qa, context, title)


def _json_rows(data: list, report: LoadReport) -> Iterator[_Row]:
    """Every question with its paragraph's context; articles/paragraphs without questions get a ``note``."""
    for i, article in enumerate(data):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            report.note(f"{report.source}: data[{i}]: field 'paragraphs' is missing or not a list; "
                        "no questions read from this article")
            continue
        title = str(article.get("title") or f"article {i}")
        for j, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                report.note(f"{report.source}: data[{i}].paragraphs[{j}]: field 'qas' is missing or not a list; "
                            "no questions read from this paragraph")
                continue
            for k, qa in enumerate(qas):
                where = f"at data[{i}].paragraphs[{j}].qas[{k}]"
                yield where, qa if isinstance(qa, dict) else {}, paragraph.get("context"), title


def _load_hub(name: str, split: str, limit: int | None) -> tuple[list[QAExample], LoadReport]:
    report = LoadReport(name)
    return _collect(_hub_rows(name, split), report, limit), report


def _hub_rows(name: str, split: str) -> Iterator[_Row]:
    """Rows of a hub SQuAD dataset (``answers = {"text": [...], "answer_start": [...]}``) as JSON-file rows."""
    try:
        import datasets

        dataset = datasets.load_dataset(name, split=split)
    except Exception as err:  # any failure of the hub/cache path is the same user-facing problem
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"{name}: datasets.load_dataset(split='{split}') failed ({type(err).__name__}: "
                        f"{first_line}); check the name and split, or pass a local SQuAD .json file") from None
    for n, row in enumerate(dataset):
        qa = {key: row[key] for key in ("id", "question") if key in row}
        answers = row.get("answers")
        if isinstance(answers, dict):
            texts, starts = answers.get("text") or [], answers.get("answer_start") or []
            qa["answers"] = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
            qa["is_impossible"] = not texts
        yield f"at row {n}", qa, row.get("context"), str(row.get("title") or "")


def _collect(rows: Iterator[_Row], report: LoadReport, limit: int | None) -> list[QAExample]:
    """Check every row; keep good examples (up to ``limit``), skip bad ones with one line each."""
    examples: list[QAExample] = []
    seen: set[str] = set()
    for where, qa, context, title in rows:
        if limit is not None and len(examples) >= limit:
            break
        qid = _raw_id(qa)
        try:
            examples.append(_example(qa, context, title, qid, seen))
        except _BadExample as bad:
            report.skip(problem_line(report.source, qid or where, bad.field_name, bad.detail))
            continue
        seen.add(qid)
    report.kept = len(examples)
    return examples


def _raw_id(qa: dict) -> str | None:
    qid = qa.get("id")
    if isinstance(qid, (str, int)) and not isinstance(qid, bool) and str(qid).strip():
        return str(qid)
    return None


def _example(qa: dict, context: object, title: str, qid: str | None, seen: set[str]) -> QAExample:
    if qid is None:
        raise _BadExample("id", "is missing; give every question a unique id")
    if qid in seen:
        raise _BadExample("id", f"= {qid!r} repeats an earlier example; make ids unique")
    question = _text_field(qa.get("question"), "question", "write the question or remove the example")
    context = _text_field(context, "context", "give the paragraph its text")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise _BadExample("is_impossible", f"= {impossible!r}; use true or false")
    answers, starts = _answers(qa.get("answers"), context, impossible)
    return QAExample(id=qid, question=question, context=context, answers=answers,
                     answer_starts=starts, title=title, is_impossible=impossible)


def _text_field(value: object, name: str, fix: str) -> str:
    if value is None:
        raise _BadExample(name, f"is missing; {fix}")
    if not isinstance(value, str):
        raise _BadExample(name, f"is {type(value).__name__}, not text; {fix}")
    if not value.strip():
        raise _BadExample(name, f"is empty; {fix}")
    return value


def _answers(answers: object, context: str, impossible: bool) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Checked ``(texts, starts)``; every text must sit at its ``answer_start`` in ``context``."""
    if impossible:
        if answers:
            raise _BadExample("answers", "is not empty but 'is_impossible' is true; remove the answers "
                                         "or set is_impossible to false")
        return (), ()
    if not isinstance(answers, list) or not answers:
        raise _BadExample("answers", "is missing or empty; give at least one answer or set 'is_impossible': true")
    texts, starts = [], []
    for i, answer in enumerate(answers):
        text, start = _answer(answer, i, context)
        texts.append(text)
        starts.append(start)
    return tuple(texts), tuple(starts)


def _answer(answer: object, i: int, context: str) -> tuple[str, int]:
    if not isinstance(answer, dict):
        raise _BadExample(f"answers[{i}]", 'is not an object; write {"text": ..., "answer_start": ...}')
    text = answer.get("text")
    if not isinstance(text, str) or not text:
        raise _BadExample(f"answers[{i}].text", "is missing or empty; copy the answer from the context")
    start = answer.get("answer_start")
    if not isinstance(start, int) or isinstance(start, bool):
        raise _BadExample(f"answers[{i}].answer_start", f"= {start!r} is not a character offset; "
                                                          "give the offset of the answer in the context")
    found = context[start:start + len(text)] if start >= 0 else ""
    if found != text:
        raise _BadExample(f"answers[{i}].answer_start",
                          f"= {start} does not point at text {text!r} (the context has {found!r} there); "
                          "fix the offset or the text")
    return text, start
