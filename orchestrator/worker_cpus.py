"""How many CPUs each Ray Train worker holds when the user did not say (`TrainOptions.cpus_per_worker`).

Ray gives a task or actor as many torch threads as CPUs it holds (it sets ``OMP_NUM_THREADS`` from them), and Ray
Train's default is one CPU per worker: a lone `decouple train` used one core of the machine's several. On one machine
the training workers of the runs side by side now share its CPUs. On a cluster of several nodes a worker keeps Ray's
one CPU, since a share of the cluster's total may fit on no node; ``--cpus-per-worker`` says otherwise.
"""
from __future__ import annotations

from collections.abc import Sequence


def default_worker_cpus(node_cpus: Sequence[float], num_workers: int, concurrent: int = 1) -> int:
    """CPUs per training worker when ``concurrent`` runs of ``num_workers`` workers each share the cluster whose
    nodes have ``node_cpus``: one machine's CPUs split evenly (at least 1); 1 on a cluster of several nodes."""
    if len(node_cpus) != 1:
        return 1
    return max(1, int(node_cpus[0]) // (num_workers * concurrent))


def node_cpus() -> list[float]:
    """CPUs of each live node of the Ray cluster this process is connected to (nodes without CPUs left out); none
    when it is not connected (a trainer built before Ray starts then keeps Ray Train's one CPU per worker)."""
    import ray

    if not ray.is_initialized():
        return []
    return [node["Resources"]["CPU"] for node in ray.nodes()
            if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0]
