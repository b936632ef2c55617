"""The Makefile's clean targets: `make clean` removes what the commands wrote and keeps the virtualenv (reinstalling
it costs minutes and needs the registries); `make distclean` removes the virtualenv too."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


def _removed(target: str) -> list[str]:
    """The paths ``make -n TARGET`` would pass to ``rm -rf``, in order."""
    dry = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, check=True)
    return [path for line in dry.stdout.splitlines() if line.startswith("rm -rf ") for path in line.split()[2:]]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_clean_keeps_the_virtualenv_and_distclean_removes_it():
    assert _removed("clean") == ["runs"]
    assert _removed("distclean") == ["runs", ".venv"]
