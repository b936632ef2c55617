"""New sentence pairs for a pair task by word substitution (TinyBERT's augmentation): a copy of a training pair with
some of its words replaced by words close to them in the model's input embeddings. A teacher then labels them
(`orchestrator.augment`).

Why: a decoupled student needs the teacher's outputs on many more in-domain pairs than MRPC's 3,068
(docs/fidelity.md). Nearest-neighbour pairs of the data's sentences (`trainables.data.neighbour_pairs`) are mostly
unrelated sentences, far from the data's mix of labels; a substituted copy keeps the pair's structure (two
sentences about the same event), so its label is as often a paraphrase as the data's, and the words that change are
where the teacher's answer teaches the comparison. TinyBERT replaces single-piece words with a masked LM's guesses;
here the neighbours come from the input word embeddings, which every checkpoint has (a sentence-embedding model has
no masked-LM head).
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence

import torch

WORD = re.compile(r"[A-Za-z]+")
"""What may be replaced: a run of letters (numbers, names with digits and punctuation stay as written)."""


def candidate_words(vocab: dict[str, int], min_len: int = 2) -> list[str]:
    """Whole-word, all-letter, lower-case entries of a WordPiece vocabulary: what a word may become."""
    return sorted(w for w in vocab if len(w) >= min_len and w.isalpha() and w.islower() and w.isascii())


def similar_words(embeddings: torch.Tensor, vocab: dict[str, int], words: Sequence[str], candidates: Sequence[str],
                  k: int, block: int = 2048) -> dict[str, list[str]]:
    """For each of ``words`` found in ``vocab``: the ``k`` ``candidates`` whose rows of ``embeddings`` (V, d, the
    input word embeddings) are the most cosine-similar to its row, most similar first, never the word itself."""
    known = [w for w in dict.fromkeys(words) if w in vocab]
    if not known or not candidates:
        return {}
    table = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)
    pool = table[torch.tensor([vocab[c] for c in candidates])]  # (C, d)
    out: dict[str, list[str]] = {}
    for lo in range(0, len(known), block):
        chunk = known[lo:lo + block]
        similarity = table[torch.tensor([vocab[w] for w in chunk])] @ pool.T  # (b, C)
        order = similarity.topk(min(k + 1, len(candidates)), dim=1).indices.tolist()
        for word, row in zip(chunk, order):
            out[word] = [candidates[i] for i in row if candidates[i] != word][:k]
    return out


def substitute(sentence: str, neighbours: dict[str, list[str]], prob: float, rng: random.Random) -> str:
    """``sentence`` with each replaceable word (`WORD`, lower-cased, with neighbours) replaced with probability
    ``prob`` by one of its neighbours chosen uniformly; a capitalised word's replacement is capitalised. Everything
    else (spacing, punctuation, numbers) stays as written."""

    def replace(match: re.Match) -> str:
        word = match.group(0)
        options = neighbours.get(word.lower())
        if not options or rng.random() >= prob:
            return word
        new = rng.choice(options)
        return new.capitalize() if word[0].isupper() else new

    return WORD.sub(replace, sentence)


def substituted_pairs(pairs: Sequence[tuple[str, str]], neighbours: dict[str, list[str]], copies: int, prob: float,
                      seed: int = 0) -> list[tuple[int, str, str]]:
    """``copies`` substituted copies of each pair, as (index of the pair it came from, sentence1, sentence2), pair
    by pair; a copy equal to its pair or to an earlier copy is dropped, so a pair with nothing replaceable gives none."""
    rng = random.Random(seed)
    out = []
    for index, (first, second) in enumerate(pairs):
        seen = {(first, second)}
        for _ in range(copies):
            copy = (substitute(first, neighbours, prob, rng), substitute(second, neighbours, prob, rng))
            if copy not in seen:
                seen.add(copy)
                out.append((index, *copy))
    return out
