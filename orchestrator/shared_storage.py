"""Check that a sweep's ``--storage`` directory is one directory on every node of the cluster.

Ray 2.60 keeps multi-node checkpoints only on storage every node reaches: a bucket URI, or a directory on a mount
all nodes share (NFS, EFS, ...). A plain local path on a multi-node cluster would scatter each trial's checkpoints
over the nodes' own disks, so it is refused before any trial starts.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from orchestrator.errors import UserError
from trainables.storage import is_uri

CHECK_TIMEOUT_S = 120.0


def _reads(path: str, token: str) -> bool:
    marker = Path(path)
    return marker.is_file() and marker.read_text() == token


def check_shared(location: str) -> None:
    """Raise `UserError` (one line) when the local directory ``location`` is not visible from every alive node of
    the connected Ray cluster; buckets and single-node clusters pass without a check."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if is_uri(location) or len(nodes) < 2:
        return
    token = uuid.uuid4().hex
    marker = Path(location) / f".shared-check-{token}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(token)
    reads = ray.remote(num_cpus=0)(_reads)
    try:
        seen = ray.get([reads.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                        .remote(str(marker), token) for node in nodes], timeout=CHECK_TIMEOUT_S)
    finally:
        marker.unlink(missing_ok=True)
    blind = sorted({node["NodeManagerAddress"] for node, ok in zip(nodes, seen) if not ok})
    if blind:
        raise UserError(f"--storage {location}: not the same directory on node(s) {', '.join(blind)}; on a multi-node "
                        "cluster use a bucket (s3://, gs://) or a directory every node mounts")
