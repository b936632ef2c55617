"""`decouple augment`: more training pairs for a pair task, labelled by its teacher.

Each sentence of the training data is paired with its nearest other sentences (`trainables.data.neighbour_pairs`,
by a sentence-embedding model, the installed all-MiniLM-L6-v2 by default), the teacher labels every new pair, and a
TSV (``id, sentence1, sentence2, label``) holds the data's own rows first, as they were, then the new ones. A student
trained on it with distillation (the default recipe) learns the teacher's outputs on those pairs as well.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from trainables.data.errors import DataError
from trainables.model.source import DEFAULT_MODEL

HEADER = ("id", "sentence1", "sentence2", "label")
"""Columns written; the label column keeps the name of a layout that writes class indices (`write_pairs`)."""


@dataclass(frozen=True)
class AugmentOptions:
    """One `decouple augment`: new sentence pairs from the data's own sentences, labelled by a teacher."""

    data: str
    """Pair training data (.tsv/.jsonl, a hub name): its sentences are paired anew, its rows are kept."""
    teacher: str
    """The fine-tuned teacher (a `decouple train` checkpoint) that labels the new pairs."""
    output: str
    """The .tsv to write: the data's rows, then the new pairs (an existing file is refused)."""
    neighbours: int = 4
    """New pairs per sentence: each sentence with this many of its most similar other sentences."""
    embedding_model: str = DEFAULT_MODEL
    """Sentence-embedding model that finds the neighbours (mean pooling): 'minilm-l6' (all-MiniLM-L6-v2), a
    directory or a hub name."""
    labels: str | None = None
    """The data's labels as written, comma-separated in class order (see `TrainOptions.labels`)."""
    batch_size: int = 64
    """Sentences or pairs per forward pass."""

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours={self.neighbours} must be >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if not self.output.endswith(".tsv"):
            raise ValueError(f"output={self.output!r}: write a .tsv (the pair loader reads it back)")
        if Path(self.output).exists():
            raise ValueError(f"output={self.output!r} exists; choose a new file or remove it")


@dataclass
class AugmentResult:
    output: str
    kept: int
    """The data's rows written first."""
    added: int
    """New pairs, labelled by the teacher."""
    added_per_class: dict[str, int]
    seconds: float


def augment(options: AugmentOptions) -> AugmentResult:
    """Write ``options.output`` (see the module doc) and say what it holds."""
    from transformers import AutoModel, AutoTokenizer

    from orchestrator.evaluate import EvalOptions, load_model, settle
    from trainables.data.features import PairExample
    from trainables.data.label_sets import parse_labels
    from trainables.data.neighbour_pairs import neighbour_pairs, sentence_embeddings
    from trainables.data.pairs import build_pair_features, load_pairs
    from trainables.metrics.evaluation import evaluate_pairs
    from trainables.model.source import resolve_model

    start = time.perf_counter()
    examples, label_names, report = load_pairs(options.data, labels=parse_labels(options.labels))
    if not examples:
        raise DataError(f"{report.source}: no usable pairs ({report.summary()}); fix the data")
    sentences = list(dict.fromkeys(s for ex in examples for s in (ex.sentence1, ex.sentence2)))
    index = {s: i for i, s in enumerate(sentences)}
    existing = [(index[ex.sentence1], index[ex.sentence2]) for ex in examples]

    folder = resolve_model(options.embedding_model)
    embedder, tokenizer = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    embeddings = sentence_embeddings(embedder, tokenizer, sentences, batch_size=options.batch_size)
    pairs = neighbour_pairs(embeddings, options.neighbours, exclude=existing)
    new = [PairExample(f"aug-{n}", sentences[i], sentences[j], 0) for n, (i, j) in enumerate(pairs)]

    teacher_options, _ = settle(EvalOptions(model=options.teacher, data=options.data, task="pair",
                                            labels=options.labels))
    teacher = load_model(teacher_options, num_labels=len(label_names))
    features = build_pair_features(new, teacher.tokenizer, max_question_len=teacher.config.max_question_len,
                                   max_passage_len=teacher_options.max_passage_len, label_names=label_names)
    _, predicted = evaluate_pairs(teacher, features, batch_size=options.batch_size)
    labelled = [PairExample(ex.id, ex.sentence1, ex.sentence2, int(c)) for ex, c in zip(new, predicted)]
    write_pairs(Path(options.output), [*examples, *labelled], label_names)
    counts = {name: sum(ex.label == c for ex in labelled) for c, name in enumerate(label_names)}
    return AugmentResult(options.output, len(examples), len(labelled), counts, time.perf_counter() - start)


def write_pairs(path: Path, examples, label_names: tuple[str, ...]) -> None:
    """``examples`` as a TSV the pair loader reads back with the same classes (tabs and line breaks inside a sentence
    become spaces). Classes of a layout that writes indices (MRPC's ``Quality``: 0 = not_paraphrase) are written the
    same way under that column's name; any other set by name under ``label``."""
    from trainables.data.pairs import NUMERIC_LABEL_SETS

    def clean(text: str) -> str:
        return " ".join(text.replace("\t", " ").splitlines())

    column = next((name for name, known in NUMERIC_LABEL_SETS.items() if known.names == tuple(label_names)), None)
    written = [str(i) for i in range(len(label_names))] if column else list(label_names)
    lines = ["\t".join((*HEADER[:3], column or HEADER[3]))]
    lines += ["\t".join((clean(ex.id), clean(ex.sentence1), clean(ex.sentence2), written[ex.label]))
              for ex in examples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
