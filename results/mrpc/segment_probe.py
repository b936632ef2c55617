"""The probe of docs/fidelity.md section 10: what a fitted linear map over SBERT's pair features (u, v, |u - v|,
u * v of the two sentences' mean final states) adds to a pair model's own [CLS] pooled state. Logistic-regression
probes (scikit-learn, installed with MLflow; 5-fold cross-validated L2 strength) are fitted on the training pairs'
features and scored on the held-out pairs'.

Run (from the repository root, after `make install`):
    .venv/bin/python results/mrpc/segment_probe.py MODEL_DIR TRAIN.tsv HELDOUT.tsv [--split K]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def features(model, source: str, max_len: int):
    """(pooled [CLS] (N, d), segment features (N, 4d), the model's logits (N, C), labels (N,)) of a pair file."""
    import torch

    from trainables.data.pairs import build_pair_features, load_pairs
    from trainables.tasks.pair import segment_features

    examples, names, _ = load_pairs(source)
    f = build_pair_features(examples, model.tokenizer, max_question_len=max_len, max_passage_len=max_len,
                            label_names=names)
    pooled, segments, logits = [], [], []
    with torch.no_grad():
        for i in range(0, len(examples), 64):
            rows = slice(i, i + 64)
            out = model(f.question_ids[rows], f.question_mask[rows], f.passage_ids[rows], f.passage_mask[rows],
                        output_hidden_states=True)
            last = out.hidden_states[-1]
            mask = torch.cat([f.question_mask[rows], f.passage_mask[rows]], dim=1)
            pooled.append(model.hf.base_model.pooler(last))
            segments.append(segment_features(last, mask, max_len))
            logits.append(out.logits)
    return torch.cat(pooled).numpy(), torch.cat(segments).numpy(), torch.cat(logits).numpy(), f.labels.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("train")
    parser.add_argument("heldout")
    parser.add_argument("--split", type=int, default=None, help="re-split the model at k (default: as saved)")
    parser.add_argument("--max-len", type=int, default=64, help="Q = P (MRPC: 64)")
    args = parser.parse_args()

    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV

    from trainables.model.decoupled import DecoupledModel

    overrides = {} if args.split is None else {"split": args.split}
    model = DecoupledModel.from_pretrained(args.model, **overrides).eval()
    train, held = features(model, args.train, args.max_len), features(model, args.heldout, args.max_len)
    print(f"{args.model}: split {model.config.split}, head {model.config.pair_head}, held-out accuracy "
          f"{100 * (held[2].argmax(1) == held[3]).mean():.2f}")
    for name, pick in (("cls", lambda d: d[0]), ("segments", lambda d: d[1]),
                       ("cls+segments", lambda d: np.hstack([d[0], d[1]]))):
        x, x_held = pick(train), pick(held)
        mean, std = x.mean(0), x.std(0) + 1e-6
        probe = LogisticRegressionCV(Cs=8, cv=5, max_iter=2000).fit((x - mean) / std, train[3])
        print(f"probe {name:13s} train {100 * probe.score((x - mean) / std, train[3]):.1f}  held-out "
              f"{100 * probe.score((x_held - mean) / std, held[3]):.2f}")


if __name__ == "__main__":
    main()
