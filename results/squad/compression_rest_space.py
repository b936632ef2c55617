"""The rest of results/squad/compression's curve: r = 2 and r = 1 with int8 states at k = L/3, the points
`compression_space.py`'s sweep did not reach (it ran r = 4 only), with its parameters and settings, the same
one-epoch teacher and the default recipe. r = 1 with int8 is the uncompressed k = 2 student answering from int8
states: beside the split sweep's fp32 k = 2 trial it shows what int8 alone costs.

Run (from the repository root):
    decouple sweep results/squad/compression_rest_space.py --task qa --data squad-a-train18.json \\
        --eval-data squad-a-eval6.json --teacher <teacher dir> --num-samples 2 --max-concurrent 1 --cpus-per-worker 2
"""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

from search_spaces.base import SweepSpec, Target


def _sibling_spec(name: str) -> SweepSpec:
    """``SPEC`` of the space file ``name`` beside this one (results/ is not a package; a sweep definition does not
    import the driver, so not through `orchestrator.sweep.spaces`)."""
    spec = importlib.util.spec_from_file_location(Path(name).stem, Path(__file__).with_name(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SPEC


COMPRESSION = _sibling_spec("compression_space.py")


def below_four(target: Target) -> list[dict]:
    return [point for point in COMPRESSION.points(target) if point["compression_ratio"] < 4]


SPEC = replace(COMPRESSION, name="squad-compression-rest", enqueued=below_four,
               description="SQuAD part-a F1 vs compression ratio r = 2, 1 (int8 states) at k = L/3")
