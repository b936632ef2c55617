"""The task objects (`trainables.tasks`): one per task, looked up by name, each with what its callers branch on."""
import subprocess
import sys

import pytest

from trainables.tasks.base import Task
from trainables.tasks.registry import TASKS, task_named, task_of_data


def test_the_registry_names_every_task_once():
    assert TASKS == ("qa", "pair")
    for name in TASKS:
        task = task_named(name)
        assert isinstance(task, Task) and task.name == name
    with pytest.raises(ValueError, match=r"^task='ner' is unknown; use one of qa, pair$"):
        task_named("ner")


def test_looking_up_a_task_loads_no_torch():
    """Model configs and training options look tasks up on the driver, where `decouple --help` loads no torch."""
    code = "import trainables.tasks.registry as r, sys; r.task_named('pair'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("data, task", [("train.json", "qa"), ("synthetic:seed=1", "qa"), ("mrpc.tsv", "pair"),
                                        ("rows.jsonl", "pair"), ("glue/mrpc", "pair"), ("squad", None)])
def test_the_task_a_data_source_plainly_is(data, task):
    found = task_of_data(data)
    assert (found and found.name) == task


def test_each_task_has_its_metric_head_and_unused_options():
    qa, pair = task_named("qa"), task_named("pair")
    assert (qa.metric, pair.metric) == ("f1", "accuracy")
    assert (qa.head_prefix, pair.head_prefix) == ("qa_outputs.", "classifier.")
    assert qa.head_kwargs(3) == {} and pair.head_kwargs(3) == {"num_labels": 3}
    assert qa.logit_shape(10, 3) == (2, 10) and pair.logit_shape(10, 3) == (3,)
    assert set(pair.unused_options) == {"doc_stride", "eval_articles"} and qa.unused_options == ("eval_fraction",)
    assert qa.extracts_answers and not pair.extracts_answers
    assert pair.has_classes and not qa.has_classes


def test_the_checks_a_task_owns():
    qa, pair = task_named("qa"), task_named("pair")
    with pytest.raises(ValueError, match=r"^labels: QA data has no labels; drop them$"):
        qa.check_labels(("a", "b"), "drop them")
    pair.check_labels(("a", "b"), "drop them")
    with pytest.raises(ValueError, match=r"^num_labels=1 must be >= 2 for task 'pair'$"):
        pair.check_num_labels(1)
    qa.check_num_labels(1)
    with pytest.raises(ValueError, match=r"^pair_head='segments' applies to task 'pair' only; leave it 'cls' for task "
                                         r"'qa'$"):
        qa.check_pair_head("segments")
    pair.check_pair_head("segments")
