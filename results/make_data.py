"""Writes the training and held-out files behind results/ from the shared data, byte for byte (each results.json
records their sha256).

    python results/make_data.py ../shared/data OUT_DIR

- MRPC: the 3,668 pairs of mrpc-train.tsv, their order shuffled with `random.Random(12)`; the first 600 are held out
  (mrpc-heldout.tsv), the other 3,068 train (mrpc-train.tsv); both keep the file's row order.
- RTE: the 2,490 pairs of rte-train.tsv the same way, 490 held out; the two sentence columns swapped (the hypothesis
  first, the premise second, the one a deployment caches): rte-{train,heldout}-hyp-first.tsv.
- SQuAD v1.1 part a: its first 18 articles (squad-a-train18.json) and the other 6 (squad-a-eval6.json).
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

SEED = 12


def held_out_rows(path: Path, n_held_out: int, swap_sentences: bool = False) -> tuple[bytes, bytes]:
    """(training file, held-out file) of a TSV with a header line: a seeded shuffle picks the held-out rows."""
    header, *rows = [line for line in path.read_bytes().split(b"\n") if line]
    if swap_sentences:  # index, sentence1, sentence2, label -> index, sentence2, sentence1, label (header kept)
        rows = [b"\t".join((f[0], f[2], f[1], *f[3:])) for f in (row.split(b"\t") for row in rows)]
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    held_out = set(order[:n_held_out])

    def tsv(keep) -> bytes:
        return b"\n".join([header, *(row for i, row in enumerate(rows) if keep(i))]) + b"\n"

    return tsv(lambda i: i not in held_out), tsv(lambda i: i in held_out)


def squad_articles(path: Path, n_train: int) -> tuple[bytes, bytes]:
    squad = json.loads(path.read_text(encoding="utf-8"))
    parts = squad["data"][:n_train], squad["data"][n_train:]
    return tuple(json.dumps({"version": squad["version"], "data": part}).encode() for part in parts)


def make_data(shared: Path, out: Path) -> dict[str, str]:
    """Writes every file into ``out``; returns {file name: sha256}."""
    files = dict(zip(("mrpc-train.tsv", "mrpc-heldout.tsv"), held_out_rows(shared / "mrpc-train.tsv", 600)))
    files.update(zip(("rte-train-hyp-first.tsv", "rte-heldout-hyp-first.tsv"),
                     held_out_rows(shared / "rte-train.tsv", 490, swap_sentences=True)))
    files.update(zip(("squad-a-train18.json", "squad-a-eval6.json"),
                     squad_articles(shared / "squad-v1.1-dev-part-a.json", 18)))
    out.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (out / name).write_bytes(blob)
    return {name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python results/make_data.py SHARED_DATA_DIR OUT_DIR")
    for name, digest in make_data(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(f"{digest}  {name}")
