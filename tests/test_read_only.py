"""Output locations on a read-only file system are refused in one line before anything starts (issue 34: train,
cache build, sweep and augment ended in `OSError: [Errno 30]` tracebacks 11-44 s in, after Ray had started, and
augment only after the whole augmentation had run)."""
from __future__ import annotations

import subprocess

import pytest

from orchestrator.cli import main


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs mounted for the test (root in a sandbox may mount; elsewhere the test is skipped)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command,field", [
    (["train", "--output-dir", "{ro}/out", "--no-tracking"], "output_dir"),
    (["cache", "build", "--model", "minilm-l6", "--data", "synthetic", "--out", "{ro}/cache"], "out"),
    (["sweep", "split", "--storage", "{ro}/sweeps"], "storage"),
    (["augment", "--data", "{tmp}/pairs.tsv", "--teacher", "minilm-l6", "--output", "{ro}/more.tsv"], "output"),
])
def test_a_read_only_output_is_refused_in_one_line(command, field, read_only_dir, tmp_path, capsys):
    (tmp_path / "pairs.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA cat.\tA cat sleeps.\t1\n")
    assert main([part.format(ro=read_only_dir, tmp=tmp_path) for part in command]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"error: {field}='{read_only_dir}/" in err[0] and "cannot write there" in err[0]
    assert "a read-only file system or no permission; pass a writable location" in err[0]
