"""results/make_data.py rebuilds, byte for byte, every data file a tracked results.json was measured on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (SHARED_DATA / "mrpc-train.tsv").is_file(), reason="../shared/data not present")
def test_make_data_rebuilds_the_files_every_result_was_measured_on(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "results" / "make_data.py"), str(SHARED_DATA), str(tmp_path)],
                          capture_output=True, text=True, check=True)
    made = {line.split()[1]: line.split()[0] for line in done.stdout.splitlines()}
    recorded = {}
    for path in sorted(REPO.glob("results/**/results.json")):
        for entry in json.loads(path.read_text())["data"].values():
            recorded[Path(entry["source"]).name] = entry["sha256"]
    assert {"mrpc-train.tsv", "mrpc-heldout.tsv", "rte-heldout-hyp-first.tsv", "squad-a-eval6.json"} <= set(recorded)
    assert {name: made.get(name) for name in recorded} == recorded
    # The held-out part is disjoint from the training part.
    train = set((tmp_path / "mrpc-train.tsv").read_text().splitlines()[1:])
    held_out = (tmp_path / "mrpc-heldout.tsv").read_text().splitlines()[1:]
    assert len(train) == 3068 and len(held_out) == 600 and not train & set(held_out)
