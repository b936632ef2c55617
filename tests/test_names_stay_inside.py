"""A name the user gives a run or a sweep names one folder inside the directory it goes under: a path that would
escape it is refused in one line, before anything is written (issue 34)."""
from __future__ import annotations

import pytest

from orchestrator.cli import main
from trainables.storage import check_folder_name


@pytest.mark.parametrize("name", ["../escaped", "/abs/where", "a/b", "..", ".", "", " x", "a\\b"])
def test_a_name_that_leaves_its_folder_is_refused(name):
    with pytest.raises(ValueError, match=r"^name=.* must be one folder name inside --storage"):
        check_folder_name(name, "name", "--storage")


@pytest.mark.parametrize("name", ["mrpc-split", "run_2", "k3.r4"])
def test_plain_names_pass(name):
    check_folder_name(name, "name", "--storage")


@pytest.mark.parametrize("args,field", [
    (["sweep", "split", "--name", "../escaped", "--storage", "{tmp}/storage"], "name"),
    (["train", "--run-name", "../../x", "--output-dir", "{tmp}/out", "--no-tracking"], "run_name"),
])
def test_commands_refuse_escaping_names_before_writing(args, field, tmp_path, capsys):
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {field}=" in err[0] and "must be one folder name inside" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing written, inside or beside


def test_a_new_sweep_claims_its_folder_and_frees_it_when_it_fails_unrecorded(tmp_path):
    """Two sweeps started at once with one --name both ran in one folder (issue 34): the first to make it wins, the
    second is refused in one line; a sweep that fails before recording itself leaves the name free again."""
    from orchestrator.errors import UserError
    from orchestrator.sweep.runner import claimed

    folder = tmp_path / "mine"
    with claimed(str(folder), fresh=True):
        assert folder.is_dir()
        with pytest.raises(UserError, match="was taken by another sweep started at the same time"):
            with claimed(str(folder), fresh=True):
                pass
        (folder / "sweep.json").write_text("{}")
    assert folder.is_dir()  # recorded: kept for --resume
    other = tmp_path / "other"
    with pytest.raises(RuntimeError):
        with claimed(str(other), fresh=True):
            raise RuntimeError("the teacher failed")
    assert not other.exists()
    with claimed(str(folder), fresh=False):  # --resume takes the folder as it is
        pass
