"""The tasks by name: `task_named` is the one place a task's name is compared, `TASKS` the names an option takes,
`task_of_data` the task a data source plainly belongs to."""
from __future__ import annotations

from trainables.tasks.base import Task
from trainables.tasks.pair import PairTask
from trainables.tasks.qa import QATask

_ALL: tuple[Task, ...] = (QATask(), PairTask())
TASKS = tuple(task.name for task in _ALL)


def task_named(name: str) -> Task:
    """The task called ``name``; `ValueError` naming the known ones otherwise."""
    for task in _ALL:
        if task.name == name:
            return task
    raise ValueError(f"task={name!r} is unknown; use one of {', '.join(TASKS)}")


def task_of_data(data: str) -> Task | None:
    """The task whose data ``data`` plainly is (QA first: ``synthetic`` is QA's unless the task says otherwise), None
    when its name does not tell (a hub dataset, say)."""
    return next((task for task in _ALL if task.recognises(data)), None)
