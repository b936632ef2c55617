"""`decouple answer`: answer one question from a passage cache, running only the question side and the upper layers.

The model is loaded with the cache's split, ratio and dtype, and the cache is refused unless that model built it;
the search itself is ``trainables.cache.reader.answer_from_cache``. Torch and transformers are imported only
when the command runs, so ``decouple --help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.model_settings import describe, read_trained_settings
from trainables.model.devices import check_device
from trainables.model.source import resolve_model

if TYPE_CHECKING:
    from trainables.cache.reader import CachedAnswer


@dataclass(frozen=True)
class AnswerOptions:
    """One `decouple answer`."""

    model: str
    """The checkpoint the cache was built with (directory, hub name or 'minilm-l6')."""
    cache: str
    """The cache directory."""
    question: str
    """The question text."""
    passage_id: str | None = None
    """Search only this passage's windows; None searches every cached window."""
    batch_size: int = 64
    """Windows per upper-layer call."""
    n_best: int = 20
    """Top start and end tokens considered per window (as in evaluation)."""
    max_answer_len: int = 30
    """Longest answer in tokens (as in evaluation)."""
    device: str = "cpu"
    """Torch device for the model: cpu, cuda or cuda:N."""

    def __post_init__(self) -> None:
        check_device(self.device)
        if not self.question.strip():
            raise ValueError('question is empty; pass --question "..."')
        for name in ("batch_size", "n_best", "max_answer_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")


def answer(options: AnswerOptions) -> tuple[CachedAnswer, str | None]:
    """Open the cache, load the model with the cache's decoupling settings, check they match, answer.

    Returns ``trainables.cache.reader.CachedAnswer`` and, when the question is longer than the model's question
    length and so was cut, the one line that says so (else None).
    """
    from trainables.cache.reader import PassageCache, answer_from_cache
    from trainables.model.decoupled import load_decoupled

    cache = PassageCache(options.cache)
    cache.keys(options.passage_id)  # an unknown passage fails before the model loads
    model = load_decoupled(options.model, **cache.model_overrides())
    cache.check_model(model)
    result = answer_from_cache(model, cache, options.question, passage_id=options.passage_id,
                               batch_size=options.batch_size, n_best=options.n_best,
                               max_answer_len=options.max_answer_len, device=options.device)
    return result, cut_question_line(model.tokenizer, options.question, model.config.max_question_len)


def cut_question_line(tokenizer, question: str, max_question_len: int) -> str | None:
    """The line saying that ``question`` has more tokens than the model's question length fits, so only its first
    tokens were read; None when it fits."""
    from trainables.cache.reader import question_ids
    from trainables.data.features import question_room

    tokens, room = len(question_ids(tokenizer, question)), question_room(max_question_len)
    if tokens <= room:
        return None
    return (f"note: the question has {tokens} tokens but the model's max_question_len = {max_question_len} fits "
            f"{room}; only its first {room} were read: shorten the question")


def settings_line(options: AnswerOptions) -> str:
    """What the answer used, and from where: the question length the model was trained with, the cache's windows;
    and the model's training windows when the cache's differ from them."""
    from trainables.cache.format import MANIFEST, read_manifest

    trained = read_trained_settings(resolve_model(options.model)).recorded
    manifest = read_manifest(options.cache)
    window = {"max_passage_len": manifest.max_passage_len, "doc_stride": manifest.doc_stride}
    used = [f"the cache's windows: {describe(window)} (from {options.cache}/{MANIFEST})"]
    if "max_question_len" in trained:
        value, source = trained["max_question_len"]
        used.insert(0, f"the model's training settings: max_question_len {value} (from {source})")
    line = "using " + "; ".join(used)
    differing = {k: trained[k][0] for k in window if k in trained and trained[k][0] != window[k]}
    return line + (f"; note: the model was trained on {describe(differing)}" if differing else "")
