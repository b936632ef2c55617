"""A command's console: the libraries' INFO logs, start-up notes, weight reports and progress bars are turned down by
the libraries' own settings (environment, log levels, Ray's options) unless --verbose, and put back afterwards.
(`tests/test_hostile_inputs.py` runs `decouple train` with its own Ray and checks its output for the noise.)"""
from __future__ import annotations

import logging
import os

import pytest
import torch
from transformers import BertModel
from transformers.utils import logging as hf_logging

from orchestrator.cli import main
from orchestrator.console import QUIET_ENV, VERBOSE_ENV, console, ray_logging_level, train_log_level, worker_env
from orchestrator.ray_session import local_init_args
from tests.conftest import tiny_bert_config


@pytest.fixture(autouse=True)
def no_console_settings(monkeypatch):
    """No console variable from the calling shell: each test says what it sets."""
    for name in (VERBOSE_ENV, *QUIET_ENV):
        monkeypatch.delenv(name, raising=False)


def test_a_quiet_console_sets_the_libraries_and_puts_them_back():
    before = hf_logging.get_verbosity()
    with console(False):
        assert {name: os.environ[name] for name in QUIET_ENV} == QUIET_ENV == worker_env()
        assert hf_logging.get_verbosity() == logging.ERROR and not hf_logging.is_progress_bar_enabled()
        assert logging.getLogger("mlflow").level == logging.WARNING
        assert (ray_logging_level(), train_log_level()) == (logging.WARNING, "WARNING")
        ray_args = local_init_args(dashboard=False)
        assert ray_args["logging_level"] == logging.WARNING
        # the command's workers are as quiet as it is, and its own Ray has no preemption to watch
        assert ray_args["runtime_env"]["env_vars"] == QUIET_ENV | {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
    assert not {VERBOSE_ENV, *QUIET_ENV} & set(os.environ) and hf_logging.get_verbosity() == before


def test_verbose_leaves_every_library_at_its_default():
    with console(True):
        assert worker_env() == {VERBOSE_ENV: "1"}  # reaches Ray workers, so they log everything too
        assert (ray_logging_level(), train_log_level()) == (logging.INFO, "INFO")
    assert VERBOSE_ENV not in os.environ


def test_a_setting_of_the_user_wins(monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    with console(False):
        assert worker_env()["TRANSFORMERS_VERBOSITY"] == "info"
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with console(False):
        assert train_log_level() == "INFO" and "MLFLOW_LOGGING_LEVEL" not in os.environ


RAYLET_WARNING = ("WARNING: 9 PYTHON worker processes have been started on node: 7e81e7ab5436ce14 with address: "
                  "127.0.0.1, which is 9x the maximum expected startup concurrency (1). This could be a result of "
                  "using a large number of actors, tasks blocked in ray.get() calls, or tasks with fractional CPU "
                  "requests (e.g., num_cpus=0.1) allowing high concurrency. See "
                  "https://github.com/ray-project/ray/issues/3644 for some discussion of workarounds.")
"""The raylet's warning as Ray 2.60 prints it (`make demo` showed it on every sweep)."""


def _printed(allow: str | None, skip: str | None) -> list[str]:
    """The lines Ray's driver prints, with the deduplicator it builds from RAY_DEDUP_LOGS_ALLOW_REGEX and
    RAY_DEDUP_LOGS_SKIP_REGEX when imported, of three workers' alike lines and the raylet's warning."""
    from ray._private.ray_logging import LogDeduplicator

    dedup = LogDeduplicator(5, allow, skip, _timesource=lambda: 0.0)
    batches = [batch for pid in (4242, 4343, 4444) for batch in dedup.deduplicate(
        {"ip": "127.0.0.1", "pid": pid, "lines": [f"[train] epoch 1/1: train_loss=1.{pid}"]})]
    batches += dedup.deduplicate({"ip": "127.0.0.1", "pid": "raylet", "lines": [RAYLET_WARNING]})
    return [line for batch in batches + dedup.flush() for line in batch["lines"]]


def test_rays_driver_prints_each_worker_line_as_it_came_and_not_the_worker_pool_warning():
    quiet = _printed(QUIET_ENV["RAY_DEDUP_LOGS_ALLOW_REGEX"], QUIET_ENV["RAY_DEDUP_LOGS_SKIP_REGEX"])
    assert quiet == [f"[train] epoch 1/1: train_loss=1.{pid}" for pid in (4242, 4343, 4444)]
    # Ray's defaults (and --verbose): the other workers' lines are held back and summed up later as one, in colour;
    # the warning is printed.
    default = _printed(None, None)
    assert RAYLET_WARNING in default and "[train] epoch 1/1: train_loss=1.4343" not in default
    assert any("\x1b[" in line and "[repeated 2x across cluster]" in line for line in default)


def test_ray_train_runs_take_the_console_settings(tiny_qa_checkpoint, tmp_path):
    from orchestrator.train import _trainer, loop_config
    from trainables.options import TrainOptions

    options = TrainOptions(model=str(tiny_qa_checkpoint), output_dir=str(tmp_path))
    with console(False):
        quiet = _trainer(options, loop_config(options), str(tmp_path), "run", []).run_config
    with console(True):
        verbose = _trainer(options, loop_config(options), str(tmp_path), "run", []).run_config
    assert (quiet.logging_config.log_level, verbose.logging_config.log_level) == ("WARNING", "INFO")
    assert quiet.worker_runtime_env["env_vars"]["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in verbose.worker_runtime_env["env_vars"]


def _load_reports(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "LOAD REPORT" in r.getMessage()]


def test_eval_prints_its_own_note_and_the_load_report_only_with_verbose(tmp_path, tokenizer, capsys, caplog):
    """A checkpoint without a QA head: transformers' LOAD REPORT table of the missing weights is noise beside eval's
    one-line note, and the full log with --verbose."""
    torch.manual_seed(0)
    headless = tmp_path / "encoder"
    BertModel(tiny_bert_config()).save_pretrained(headless)
    tokenizer.save_pretrained(headless)
    args = ["eval", "--model", str(headless), "--data", "synthetic:articles=1", "--limit", "2", "--json"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "note: model" in err and "no trained qa head" in err and not _load_reports(caplog)
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # transformers' default, whatever an earlier test left
    try:
        assert main(["eval", "--verbose", *args[1:]]) == 0
    finally:
        hf_logging.set_verbosity(before)
    assert _load_reports(caplog)
