"""`decouple augment`: more training pairs for a pair task, labelled by its teacher.

New pairs come one of two ways (``method``):

- ``substitute`` (TinyBERT's augmentation, `trainables.data.word_substitution`): copies of each training pair with
  some words replaced by their neighbours in the embedding model's input word embeddings;
- ``neighbours``: each sentence of the training data paired with its nearest other sentences
  (`trainables.data.neighbour_pairs`, mean-pooled sentence embeddings).

The embedding model is the installed all-MiniLM-L6-v2 unless told otherwise. The teacher labels every new pair, and a
TSV (``id, sentence1, sentence2, label``) holds the data's own rows first, as they were, then the new ones. A student
trained on it with distillation (the default recipe) learns the teacher's outputs on those pairs as well.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from trainables import storage
from trainables.data.errors import DataError
from trainables.data.label_sets import parse_labels
from trainables.model.source import DEFAULT_MODEL, resolve_model

METHODS = ("substitute", "neighbours")
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
    method: str = "neighbours"
    """How new pairs are made: 'substitute' (copies of each pair with words replaced) or 'neighbours' (each sentence
    with its most similar other sentences); see the module doc."""
    copies: int = 4
    """substitute: copies of each pair (a copy equal to its pair or to an earlier copy is dropped)."""
    replace_prob: float = 0.4
    """substitute: the chance that each word is replaced (TinyBERT's 0.4)."""
    similar_words: int = 15
    """substitute: a word becomes one of this many words nearest to it in the input embeddings (TinyBERT's 15)."""
    neighbours: int = 4
    """neighbours: new pairs per sentence, each sentence with this many of its most similar other sentences."""
    seed: int = 0
    """substitute: seed of the replacements."""
    embedding_model: str = DEFAULT_MODEL
    """Sentence-embedding model that finds the neighbours (mean pooling): 'minilm-l6' (all-MiniLM-L6-v2), a
    directory or a hub name."""
    labels: str | None = None
    """The data's labels as written, comma-separated in class order (see `TrainOptions.labels`)."""
    batch_size: int = 64
    """Sentences or pairs per forward pass."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: use one of {', '.join(METHODS)}")
        for name in ("copies", "similar_words", "neighbours"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.replace_prob <= 1.0:
            raise ValueError(f"replace_prob={self.replace_prob} must be in (0, 1]")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if not self.output.endswith(".tsv"):
            raise ValueError(f"output={self.output!r}: write a .tsv (the pair loader reads it back)")
        if Path(self.output).exists():
            raise ValueError(f"output={self.output!r} exists; choose a new file or remove it")
        storage.check_writable(storage.nearest_existing(Path(self.output).expanduser().parent), self.output, "output")


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
    from trainables.data.pairs import build_pair_features, load_pairs
    from trainables.metrics.evaluation import evaluate_pairs

    start = time.perf_counter()
    examples, label_names, report = load_pairs(options.data, labels=parse_labels(options.labels))
    if not examples:
        raise DataError(f"{report.source}: no usable pairs ({report.summary()}); fix the data")
    folder = resolve_model(options.embedding_model)
    embedder, tokenizer = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    if options.method == "substitute":
        new = _substituted(options, examples, embedder, tokenizer)
    else:
        new = _neighbours(options, examples, embedder, tokenizer)

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


def _substituted(options: AugmentOptions, examples, embedder, tokenizer) -> list:
    from trainables.data.features import PairExample
    from trainables.data.word_substitution import WORD, candidate_words, similar_words, substituted_pairs

    vocab = tokenizer.get_vocab()
    words = [w.lower() for ex in examples for s in (ex.sentence1, ex.sentence2) for w in WORD.findall(s)]
    neighbours = similar_words(embedder.get_input_embeddings().weight, vocab, words, candidate_words(vocab),
                               options.similar_words)
    copies = substituted_pairs([(ex.sentence1, ex.sentence2) for ex in examples], neighbours, options.copies,
                               options.replace_prob, options.seed)
    counts: dict[int, int] = {}
    new = []
    for index, first, second in copies:
        counts[index] = counts.get(index, 0) + 1
        new.append(PairExample(f"{examples[index].id}-sub{counts[index]}", first, second, 0))
    return new


def _neighbours(options: AugmentOptions, examples, embedder, tokenizer) -> list:
    from trainables.data.features import PairExample
    from trainables.data.neighbour_pairs import neighbour_pairs, sentence_embeddings

    sentences = list(dict.fromkeys(s for ex in examples for s in (ex.sentence1, ex.sentence2)))
    index = {s: i for i, s in enumerate(sentences)}
    existing = [(index[ex.sentence1], index[ex.sentence2]) for ex in examples]
    embeddings = sentence_embeddings(embedder, tokenizer, sentences, batch_size=options.batch_size)
    pairs = neighbour_pairs(embeddings, options.neighbours, exclude=existing)
    return [PairExample(f"aug-{n}", sentences[i], sentences[j], 0) for n, (i, j) in enumerate(pairs)]


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
    with storage.staged(path) as staging:  # a run stopped mid-write (a full disk, a signal) leaves no part of a file
        staging.write_text("\n".join(lines) + "\n", encoding="utf-8")
