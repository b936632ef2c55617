"""Run a `decouple` command on the head of a cluster started with ``ray up cluster.yaml``, cluster defaults filled in:

    ray submit cluster.yaml orchestrator/cluster_entry.py -- sweep split --storage s3://BUCKET/sweeps
    ray submit cluster.yaml orchestrator/cluster_entry.py -- cache build --model s3://... --data ... --out ...
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m orchestrator.cluster_entry sweep split

(`ray submit` copies this one file to the head and runs it with the head's Python, where setup_commands installed
the project; `ray job submit` runs it from the uploaded working directory.) Defaults, each overridden by the flag:

- every Ray call joins the running cluster (``RAY_ADDRESS=auto``) instead of starting a local Ray;
- ``sweep``/``train``: ``--tracking-uri`` = ``$DECOUPLE_TRACKING_URI``, else the head's MLflow server
  (http://127.0.0.1:5000, started by cluster.yaml); ``--storage`` (sweep) / ``--output-dir`` (train) =
  ``$DECOUPLE_STORAGE``, which must be a bucket URI or a directory every node mounts (a sweep checks that).
"""
from __future__ import annotations

import os
import sys

from orchestrator.cli import main as decouple

HEAD_MLFLOW = "http://127.0.0.1:5000"
"""Where cluster.yaml's head runs `mlflow server` (localhost only; trial drivers run on the head)."""
STORAGE_ENV = "DECOUPLE_STORAGE"
TRACKING_ENV = "DECOUPLE_TRACKING_URI"


def with_cluster_defaults(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` (a `decouple` command line) with the cluster's tracking URI and storage added where not given."""
    if not argv or argv[0] not in ("sweep", "train"):
        return list(argv)
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    extra = []
    if "--tracking-uri" not in given and "--no-tracking" not in given:
        extra += ["--tracking-uri", env.get(TRACKING_ENV) or HEAD_MLFLOW]
    storage_flag = "--storage" if argv[0] == "sweep" else "--output-dir"
    if storage_flag not in given and env.get(STORAGE_ENV):
        extra += [storage_flag, env[STORAGE_ENV]]
    return [*argv, *extra]


def main(argv: list[str] | None = None) -> int:
    args = with_cluster_defaults(sys.argv[1:] if argv is None else argv, dict(os.environ))
    os.environ.setdefault("RAY_ADDRESS", "auto")
    print("[cluster] decouple " + " ".join(args), flush=True)
    return decouple(args)


if __name__ == "__main__":
    # Run as a file (what `ray submit` does), Python puts this file's folder first on sys.path, where modules such as
    # `train` or `evaluate` would shadow top-level packages: import the installed project instead.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    sys.exit(main())
