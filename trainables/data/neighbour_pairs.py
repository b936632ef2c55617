"""New sentence pairs for a pair task, made from the sentences of its own training data: each sentence with its
nearest other sentences by a sentence-embedding model. A teacher then labels them (`orchestrator.augment`).

Why: a decoupled student with half its layers unable to compare the two sentences must learn the comparison in the
upper layers, and MRPC's 3,068 training pairs are too few for that (docs/fidelity.md); showing it the teacher's
outputs on more in-domain pairs is what it lacks (TinyBERT distils the small GLUE tasks on augmented pairs).
Nearest neighbours are the hard cases (close but not always the same meaning), where the teacher's answer carries
the most information; random pairs would almost all be obvious non-paraphrases.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def sentence_embeddings(model, tokenizer, sentences: Sequence[str], *, batch_size: int = 64,
                        max_len: int = 128) -> torch.Tensor:
    """(N, d) unit-length embeddings: the mean of ``model``'s last hidden states over each sentence's real tokens
    (the pooling all-MiniLM-L6-v2 and other sentence-transformers models are trained for)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for lo in range(0, len(sentences), batch_size):
            batch = tokenizer(list(sentences[lo:lo + batch_size]), padding=True, truncation=True, max_length=max_len,
                              return_tensors="pt")
            states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)  # (B, S, 1)
            out.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1))
    return torch.cat(out) if out else torch.empty(0, 0)


def neighbour_pairs(embeddings: torch.Tensor, neighbours: int, exclude: Iterable[tuple[int, int]] = (),
                    block: int = 1024) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, of each row of ``embeddings`` (N, d; unit length) with its ``neighbours`` most
    similar other rows (cosine), each unordered pair once, none of ``exclude`` (either order), most similar first.
    Identical rows (duplicate sentences) are not pairs."""
    n = embeddings.shape[0]
    taken = {(min(a, b), max(a, b)) for a, b in exclude}
    found: dict[tuple[int, int], float] = {}
    k = min(neighbours + 1, n)
    for lo in range(0, n, block):
        similarity = embeddings[lo:lo + block] @ embeddings.T  # (b, N)
        rows = torch.arange(lo, min(lo + block, n))
        similarity[torch.arange(len(rows)), rows] = -2.0  # never itself
        values, columns = similarity.topk(k, dim=1)
        for row, vals, cols in zip(rows.tolist(), values.tolist(), columns.tolist()):
            kept = 0
            for value, col in zip(vals, cols):
                if kept == neighbours or value <= -2.0:
                    break
                if value >= 1.0 - 1e-6:
                    continue  # the same sentence written twice
                pair = (min(row, col), max(row, col))
                kept += 1
                if pair not in taken:
                    found[pair] = value
    return sorted(found, key=lambda p: (-found[p], p))
