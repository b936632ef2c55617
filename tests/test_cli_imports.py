"""`decouple --help` lists the commands without importing them: no torch, transformers, Ray or MLflow."""
import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "ray", "mlflow")
CHECKOUT = Path(__file__).resolve().parents[1]


def _modules_after(argv: list[str]) -> tuple[str, list[str]]:
    script = (
        "import contextlib, io, json, sys\n"
        "from orchestrator.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps([out.getvalue(), sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=CHECKOUT, capture_output=True, text=True, check=True)
    text, loaded = json.loads(done.stdout.splitlines()[-1])
    return text, loaded


def test_help_loads_no_heavy_library():
    text, loaded = _modules_after(["--help"])
    assert loaded == []
    for command in ("eval", "bench", "train", "augment", "cache", "answer", "sweep", "report"):
        assert command in text


def test_a_command_is_imported_when_dispatched():
    text, loaded = _modules_after(["report", "--help"])
    assert "usage: decouple report" in text
    assert "torch" not in loaded
