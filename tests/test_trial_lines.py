"""The sweep's one line per trial (quiet console), from a trial's last result."""
from __future__ import annotations

import io
from types import SimpleNamespace

from orchestrator.sweep.trial_lines import TrialLines, duration, result_text


def _trial(trial_id: str, config: dict, result: dict | None = None):
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=result, path=f"/s/trial_{trial_id}",
                           error_file=f"/s/trial_{trial_id}/error.txt")


def test_result_text_names_accuracy_drop_and_speedup_and_marks_a_doubtful_speedup():
    assert result_text({"accuracy": 71.3333, "accuracy_drop": 3.6667, "speedup": 1.5176, "speed_reliable": 1}) == (
        "accuracy 71.33 (drop 3.67), speedup 1.52x")
    assert result_text({"accuracy": 9.2, "speedup": 6.01, "speed_reliable": 0}) == "accuracy 9.20, speedup 6.01x?"
    assert result_text({}) == "finished (no accuracy reported)"


def test_duration_reads_as_minutes_and_seconds():
    assert (duration(38.4), duration(252), duration(60)) == ("38s", "4m12s", "1m00s")


def test_each_finished_or_failed_trial_gets_one_counted_line():
    out = io.StringIO()
    lines = TrialLines(total=3, done=1, stream=out)
    ok = _trial("79072ae7", {"split": 6}, {"accuracy": 71.3333, "accuracy_drop": 3.6667, "speedup": 1.5176})
    lines.on_trial_start(0, [], ok)
    lines.on_trial_complete(0, [], ok)
    bad = _trial("f64489c5", {"split": 3, "kd_ratio": 0.5})
    lines.on_trial_error(0, [], bad)
    first, second = out.getvalue().splitlines()
    assert first.startswith("[sweep] trial 2/3 79072ae7 split=6: accuracy 71.33 (drop 3.67), speedup 1.52x, ")
    assert first.endswith("s")  # how long the trial took
    assert second == "[sweep] trial 3/3 f64489c5 split=3 kd_ratio=0.5: failed; its error: /s/trial_f64489c5/error.txt"
