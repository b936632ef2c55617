"""The QA and pair loaders agree on which local files each reads (`trainables.data.suffixes.FILE_SUFFIXES`): a file
one loader sends to the other task is a file the other loader reads, and a file neither reads is sent nowhere."""
from __future__ import annotations

import pytest

from trainables.data.errors import DataError
from trainables.data.pairs import load_pairs
from trainables.data.squad import load_squad
from trainables.data.suffixes import FILE_SUFFIXES, task_of_file

LOADERS = {"qa": load_squad, "pair": load_pairs}
SENDS_TO = {"qa": "use --task pair", "pair": "use --task qa"}
"""What each loader's refusal says when the file is the other task's."""
REFUSES = {"qa": "not SQuAD JSON", "pair": "pair data is read from"}
"""What each loader's refusal of a file by its suffix says."""


def _refusal(task: str, path: str) -> str | None:
    try:
        LOADERS[task](path)
    except DataError as err:
        return str(err)
    return None


@pytest.mark.parametrize("suffix", sorted({s for suffixes in FILE_SUFFIXES.values() for s in suffixes} | {".csv"}))
def test_a_file_sent_to_the_other_task_is_read_there(suffix, tmp_path):
    path = tmp_path / f"data{suffix}"
    path.write_text("", encoding="utf-8")  # empty: whoever reads it says so; whoever refuses it says why
    for task, other in (("qa", "pair"), ("pair", "qa")):
        sent = SENDS_TO[task] in (_refusal(task, str(path)) or "")
        assert sent == (task_of_file(path) == other), (task, suffix)
        if sent:
            assert REFUSES[other] not in (_refusal(other, str(path)) or ""), (other, suffix)


def test_each_task_reads_its_own_suffixes():
    assert task_of_file("dev.json") == "qa"
    assert task_of_file("train.tsv") == task_of_file("train.jsonl") == "pair"
    assert task_of_file("train.csv") is None  # no loader reads CSV: neither sends it to the other
