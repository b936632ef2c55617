"""How many CPUs (so torch threads) a training worker holds, and how many trials a sweep runs at once."""
import pytest

from orchestrator.sweep.options import SweepOptions
from orchestrator.sweep.runner import trial_resources
from orchestrator.worker_cpus import default_worker_cpus


@pytest.mark.parametrize(("nodes", "workers", "concurrent", "cpus"), [
    ([2.0], 1, 1, 2),  # a lone `decouple train` on a 2-core machine: both cores (was Ray Train's 1)
    ([16.0], 3, 1, 5),  # 3 workers share 16 CPUs: 5 each, one left over
    ([16.0], 2, 3, 2),  # 3 trials of 2 workers each
    ([1.0], 2, 1, 1),  # never below 1
    ([8.0, 8.0], 1, 1, 1),  # several nodes: a share of the total may fit on none, so Ray's 1
    ([], 1, 1, 1),  # not connected to Ray (`node_cpus`): Ray Train's 1
])
def test_default_worker_cpus(nodes, workers, concurrent, cpus):
    assert default_worker_cpus(nodes, workers, concurrent) == cpus


@pytest.mark.parametrize(("given", "nodes", "resources", "expected"), [
    ({}, [2.0], {"CPU": 2.0}, (1, 2)),  # as before: 1 CPU per worker, as many trials as fit
    ({"max_concurrent": 1}, [2.0], {"CPU": 2.0}, (2, 1)),  # a lone trial takes the machine
    ({"max_concurrent": 2, "num_workers": 2}, [8.0], {"CPU": 8.0}, (2, 2)),
    ({"cpus_per_worker": 3}, [8.0], {"CPU": 8.0}, (3, 2)),  # as many trials as 3-CPU workers fit
    ({"max_concurrent": 1}, [4.0, 4.0], {"CPU": 8.0}, (1, 1)),  # several nodes: Ray's 1 unless told
    ({"cpus_per_worker": 2, "max_concurrent": 3}, [8.0], {"CPU": 8.0}, (2, 3)),  # both given: as given
])
def test_sweep_trial_resources(given, nodes, resources, expected, tmp_path):
    options = SweepOptions(space="split", storage=str(tmp_path), **given)
    assert trial_resources(options, nodes, resources) == expected


def test_cpus_per_worker_below_one_is_refused_naming_the_field(tmp_path):
    from trainables.options import TrainOptions

    with pytest.raises(ValueError, match="cpus_per_worker=0 must be >= 1"):
        TrainOptions(cpus_per_worker=0)
    with pytest.raises(ValueError, match="cpus_per_worker=0 must be >= 1"):
        SweepOptions(space="split", storage=str(tmp_path), cpus_per_worker=0)
