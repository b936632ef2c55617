"""An ``/answer`` request body read into a `Query`, or refused with one line (`BadRequest`, HTTP 400).

The body is one JSON object, ``{"question": "...", "top_k": 5}`` (``top_k`` optional). Refused: a body over
`MAX_BODY_BYTES`, one that is not JSON or not an object, an unknown field, a question that is missing, not a string,
empty or whitespace, or longer than the model's question length (``decouple answer`` cuts such a question with a note;
a service refuses it, so that no client takes an answer to half its question for an answer to all of it), and a
``top_k`` that is not an integer or outside 1..max_top_k.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

MAX_BODY_BYTES = 64 * 1024
FIELDS = ("question", "top_k")
EXAMPLE = '{"question": "...", "top_k": 5}'


class BadRequest(ValueError):
    """A request the service refuses: one line naming the field and the fix."""


@dataclass(frozen=True)
class Query:
    """One question to answer."""

    question: str
    top_k: int
    """Windows to retrieve and read."""


@dataclass(frozen=True)
class QueryRules:
    """What a replica accepts."""

    default_top_k: int
    max_top_k: int
    question_room: int
    """Question tokens the model reads (its max_question_len less [CLS] and [SEP])."""
    max_question_len: int
    count_tokens: Callable[[str], int]
    """The question's token count without special tokens (the model's tokenizer)."""


def parse_query(body: bytes, rules: QueryRules) -> Query:
    """The `Query` in ``body``; `BadRequest` with one line when the body is refused (module docstring)."""
    record = _json_object(body)
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; the fields are {' and '.join(FIELDS)}: {EXAMPLE}")
    if "question" not in record:
        raise BadRequest(f"question is missing; send {EXAMPLE}")
    question = record["question"]
    if not isinstance(question, str):
        raise BadRequest(f"question must be a string, not {_shown(question)}; send {EXAMPLE}")
    if not question.strip():
        raise BadRequest("question is empty; send the question's text")
    top_k = record.get("top_k", rules.default_top_k)
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise BadRequest(f"top_k must be an integer, not {_shown(top_k)}; use 1..{rules.max_top_k}")
    if not 1 <= top_k <= rules.max_top_k:
        raise BadRequest(f"top_k={top_k} is out of range; use 1..{rules.max_top_k}")
    if len(question) > 64 * rules.question_room:  # no token is longer than this: refused without tokenizing
        raise BadRequest(f"question has {len(question)} characters, more than the model's max_question_len = "
                         f"{rules.max_question_len} tokens can hold; shorten the question")
    tokens = rules.count_tokens(question)
    if tokens > rules.question_room:
        raise BadRequest(f"question has {tokens} tokens but the model's max_question_len = {rules.max_question_len} "
                         f"fits {rules.question_room}; shorten the question")
    return Query(question, top_k)


def _json_object(body: bytes) -> dict:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"the body has {len(body)} bytes; send at most {MAX_BODY_BYTES}: {EXAMPLE}")
    try:
        record = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(f"the body is not UTF-8 text; send {EXAMPLE}") from None
    except json.JSONDecodeError as err:
        raise BadRequest(f"the body is not JSON ({err.msg} at column {err.colno}); send {EXAMPLE}") from None
    except RecursionError:
        raise BadRequest(f"the body is JSON nested too deeply to read; send {EXAMPLE}") from None
    if not isinstance(record, dict):
        raise BadRequest(f"the body is a JSON {_json_type(record)}, not an object; send {EXAMPLE}")
    return record


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    """A decoded value as JSON, cut to 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
