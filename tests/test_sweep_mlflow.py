"""What a sweep leaves in MLflow for comparing trials and sweeps: trial runs named for what they train, the compared
figures rounded, a one-line description, and the sweep's curves as parent-run metrics against split (issue 16)."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from orchestrator.sweep.tracking import for_comparison, log_curves
from orchestrator.sweep.trial import describe_trial_run, trial_run_name
from orchestrator.tracking import Tracking, default_tracking_uri, start_run
from trainables.options import TrainOptions


def row(split: int, accuracy: float, speedup: float, ratio: int = 1, reliable: float = 1.0) -> dict:
    return {"trial": f"t{split}{ratio}{accuracy}", "split": split, "compression_ratio": ratio, "cache_dtype": "int8",
            "accuracy": accuracy, "accuracy_drop": 80.0 - accuracy, "speedup": speedup, "speedup_bound": 3.0,
            "state_bytes_per_token": 100.123456, "speed_reliable": reliable}


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_a_trial_run_is_named_for_what_it_trains(tiny_qa_checkpoint):
    options = TrainOptions(mode="student", model=str(tiny_qa_checkpoint), teacher=str(tiny_qa_checkpoint), split=2,
                           compression_ratio=4, cache_dtype="int8")
    assert trial_run_name(options, "704edd92") == "k2-r4-int8-704edd92"


def test_compared_figures_are_rounded_and_the_rest_kept():
    shown = for_comparison({"accuracy": 81.23456, "speedup": 2.345678, "state_bytes_per_token": 100.123456,
                            "train_loss": 0.123456789, "epoch": 2})
    assert shown == {"accuracy": 81.23, "speedup": 2.35, "state_bytes_per_token": 100.1, "train_loss": 0.123456789,
                     "epoch": 2}


def test_the_sweeps_curves_are_parent_metrics_against_the_split(tmp_path):
    uri = default_tracking_uri(tmp_path)
    run_id = start_run(Tracking(uri, "curves", "sweep-x"))
    rows = [row(1, 70.0, 1.5), row(2, 60.111, 2.5), row(2, 65.0, 2.4, reliable=0.0), row(3, 50.0, 3.5)]
    log_curves(uri, run_id, rows)
    client = MlflowClient(uri)
    assert history(client, run_id, "curve_accuracy") == [(1, 70.0), (2, 65.0), (3, 50.0)]  # best per split
    assert history(client, run_id, "curve_speedup") == [(1, 1.5), (2, 2.4), (3, 3.5)]
    assert history(client, run_id, "curve_speed_reliable") == [(1, 1.0), (2, 0.0), (3, 1.0)]
    assert history(client, run_id, "curve_state_bytes_per_token")[0] == (1, 100.1)
    assert not history(client, run_id, "ratio_curve_accuracy")  # one ratio: no compression curve
    log_curves(uri, run_id, [row(3, 70.0, 2.0, ratio=2), row(3, 60.0, 3.0, ratio=8)])
    assert history(client, run_id, "ratio_curve_accuracy") == [(2, 70.0), (8, 60.0)]


def test_a_trial_run_describes_itself_in_one_line(tmp_path):
    uri = default_tracking_uri(tmp_path)
    run_id = start_run(Tracking(uri, "trials", "k2-r1-int8-t"))
    describe_trial_run(uri, run_id, {**row(2, 71.234, 2.5, reliable=0.0), "accuracy_drop": 0.8})
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert tags["mlflow.note.content"] == ("split 2, ratio 1, int8: accuracy 71.23 (drop 0.80), speedup 2.50x "
                                           "(unreliable) (bound 3.00x), 100 state bytes/token")
    assert tags["speed_reliable"] == "false"
