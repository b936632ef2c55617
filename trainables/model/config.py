"""The decoupling settings of a model: where to split, how to compress and store passage states."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from trainables.tasks.registry import task_named

CACHE_DTYPES = ("fp32", "fp16", "int8")
PASSAGE_POSITIONS = ("after_question", "restart")
PAIR_HEADS = ("cls", "segments")


@dataclass(frozen=True)
class DecoupledConfig:
    """How a pre-trained encoder is decoupled. Saved in the checkpoint's ``config.json`` under ``"decoupled"``."""

    split: int = 0
    """k: the lower k layers run on question and passage separately, the upper L-k jointly. 0 = the original model."""
    compression_ratio: int = 1
    """r: passage states are compressed d -> d/r after the lower part and decompressed before the upper part. 1 = off."""
    cache_dtype: str = "fp32"
    """How `encode_passage` stores states: fp32, fp16, or int8 (symmetric, one fp32 scale per window and channel)."""
    max_question_len: int = 64
    """Q: the question segment `[CLS] q [SEP]` is padded/truncated to this many tokens."""
    passage_positions: str = "after_question"
    """Position ids of passage tokens below the split: 'after_question' counts on from the padded question (Q, Q+1,
    ...: where the full model puts them, up to the question's padding, so a re-split teacher stays close to itself);
    'restart' counts from 0 (DeFormer). Either keeps passage states independent of the question."""
    cross_embeddings: bool = False
    """Add fresh position/segment embeddings at the start of the upper part (split >= 1), starting at zero so the
    model is unchanged until they train."""
    pair_head: str = "cls"
    """Pairs: what the classifier reads. 'cls' = the model's own head on [CLS] (which sits in the question segment);
    'segments' = that head plus a linear map, starting at zero, of SBERT's pair features (u, v, |u - v|, u * v) of the
    mean final states u of the question's and v of the passage's real tokens."""
    task: str = "qa"
    """qa = extractive span QA (start/end logits); pair = sentence-pair classification."""
    num_labels: int = 2
    """Classes for task 'pair' (ignored for 'qa')."""
    splits: tuple[int, ...] = ()
    """An any-split model: the splits it was trained to be cut at (`split` is one of them: where it runs now). Empty =
    a model of one split, `split`, which any other split re-cuts untrained."""

    CACHE_SETTINGS: ClassVar[tuple[str, ...]] = ("split", "compression_ratio", "cache_dtype")
    """The settings a saved model can be loaded with other than it was saved (``--split``, ``--compression-ratio``,
    ``--cache-dtype`` of eval, cache build, answer and bench), which shape the passage states it caches: a cache's
    manifest records them, a reader of the cache must match them, and a sweep's rows report them."""
    LAYER_SETTINGS: ClassVar[tuple[str, ...]] = ("compression_ratio", "cross_embeddings", "pair_head")
    """The settings that shape the layers decoupling adds (compressor, cross embeddings, pair head): saved layers
    load only into a config that keeps them."""

    def cache_settings(self) -> dict[str, object]:
        """`CACHE_SETTINGS` by name, as a manifest records them and ``from_pretrained(path, **overrides)`` takes
        them."""
        return {name: getattr(self, name) for name in self.CACHE_SETTINGS}

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", tuple(sorted(set(self.splits))))  # config.json gives a list
        if self.split < 0:
            raise ValueError(f"split={self.split} is negative; use a split in [0, num_layers]")
        if self.splits:
            check_split_in(self.split, self.splits)
            if self.compression_ratio != 1:
                raise ValueError(f"compression_ratio={self.compression_ratio} with splits: one compressor cannot fit "
                                 "the states of every split; use compression_ratio 1 (or a student of one split)")
        if self.compression_ratio < 1:
            raise ValueError(f"compression_ratio={self.compression_ratio} must be >= 1 (1 turns compression off)")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype={self.cache_dtype!r} is unknown; use one of {', '.join(CACHE_DTYPES)}")
        if self.max_question_len < 3:
            raise ValueError(f"max_question_len={self.max_question_len} leaves no room for [CLS] q [SEP]; use >= 3")
        if self.passage_positions not in PASSAGE_POSITIONS:
            raise ValueError(f"passage_positions={self.passage_positions!r} is unknown; use one of "
                             f"{', '.join(PASSAGE_POSITIONS)}")
        check_pair_head(self.pair_head, self.task)
        task_named(self.task).check_num_labels(self.num_labels)

    @property
    def trained_splits(self) -> tuple[int, ...]:
        """The splits the model is trained to run at: `splits`, or just `split`."""
        return self.splits or (self.split,)

    def check_against(self, num_layers: int, width: int) -> None:
        """Raise if this config cannot apply to an encoder of ``num_layers`` whose lower output is ``width`` wide."""
        check_fits(max(self.trained_splits), self.compression_ratio, num_layers, width)

    def to_dict(self) -> dict:
        """The fields as JSON writes and reads them back (`splits` a list), so a saved copy compares equal."""
        return {**asdict(self), "splits": list(self.splits)}


def format_splits(splits: tuple[int, ...]) -> str:
    """A set of splits as written on the command line: runs as ranges (``1-4,6``)."""
    runs: list[list[int]] = []
    for k in sorted(splits):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def parse_splits(text: str) -> tuple[int, ...]:
    """``1-6``, ``1,2,4`` or ``1-3,5`` -> the sorted distinct splits; ValueError names the field and the form."""
    splits: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        high = high if dash else low
        if not (low.isdigit() and high.isdigit()) or int(high) < int(low):
            raise ValueError(f"splits={text!r}: write the splits as ranges or a list, e.g. 1-6, 1,2,4 or 1-3,5")
        splits.update(range(int(low), int(high) + 1))
    return tuple(sorted(splits))


def check_split_in(split: int, splits: tuple[int, ...]) -> None:
    """The one refusal of a split an any-split model was not trained at."""
    if split not in splits:
        raise ValueError(f"split={split} is not one this model was trained at (splits {format_splits(splits)}); "
                         f"use one of {', '.join(map(str, splits))}")


def check_pair_head(pair_head: str, task: str) -> None:
    """The one check of a pair head against the task (a `DecoupledConfig`, training options)."""
    if pair_head not in PAIR_HEADS:
        raise ValueError(f"pair_head={pair_head!r} is unknown; use one of {', '.join(PAIR_HEADS)}")
    task_named(task).check_pair_head(pair_head)


def check_fits(split: int, compression_ratio: int, num_layers: int, width: int, *, model: str | None = None,
               lowest_split: int = 0) -> None:
    """The one check that a split and a compression ratio fit an encoder of ``num_layers`` layers whose lower output
    is ``width`` wide (a `DecoupledConfig`, training options, `decouple bench`). ``model`` names the encoder in the
    message (None: "the model"); ``lowest_split`` is the smallest split the caller accepts."""
    layers = f"the model's {num_layers} layers" if model is None else f"the {num_layers} layers of {model}"
    if split > num_layers:
        raise ValueError(f"split={split} is larger than {layers}; use {lowest_split}..{num_layers}")
    if width % compression_ratio:
        of = "" if model is None else f" of {model}"
        divisors = ", ".join(str(r) for r in range(1, min(width, 16) + 1) if width % r == 0)
        raise ValueError(f"compression_ratio={compression_ratio} does not divide the hidden size {width}{of}; use a "
                         f"divisor of {width} (e.g. {divisors})")
