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


def test_ratio_is_compression_ratio_in_every_command_with_a_deprecation_line(capsys):
    from orchestrator.cli import build_parser

    for command in ("eval", "bench"):
        args = build_parser([command]).parse_args([command, "--compression-ratio", "4"])
        assert args.compression_ratio == 4 and capsys.readouterr().err == ""
        args = build_parser([command]).parse_args([command, "--ratio", "4"])
        assert args.compression_ratio == 4
        assert capsys.readouterr().err == "decouple: --ratio is deprecated; use --compression-ratio\n"


def test_bench_lengths_are_named_as_in_train_with_the_old_names_deprecated(capsys):
    from orchestrator.cli import build_parser
    from orchestrator.commands.bench import options_from_args

    parser = build_parser(["bench"])
    new = options_from_args(parser.parse_args(["bench", "--max-question-len", "8", "--max-passage-len", "16"]))
    assert (new.max_question_len, new.max_passage_len) == (8, 16) and capsys.readouterr().err == ""
    old = options_from_args(parser.parse_args(["bench", "--question-len", "8", "--passage-len", "16"]))
    assert old == new
    assert capsys.readouterr().err == ("decouple: --question-len is deprecated; use --max-question-len\n"
                                       "decouple: --passage-len is deprecated; use --max-passage-len\n")
