"""A tracking URI MLflow cannot use, or a server that does not answer, is refused in one line before Ray starts
(issue 34: an unreachable server left `decouple train` silent for minutes, an unknown scheme ended in a 48-line
traceback after Ray had started)."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from orchestrator.cli import main
from orchestrator.tracking import check_tracking_uri


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("uri", ["foo://bar", "file:///tmp/store", "mlruns"])
def test_a_store_mlflow_cannot_use_is_refused(uri):
    with pytest.raises(ValueError, match=r"^--tracking-uri .*: MLflow cannot record there; use sqlite:///"):
        check_tracking_uri(uri)


def test_stores_mlflow_takes_pass_without_a_connection(tmp_path):
    check_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    check_tracking_uri("postgresql+psycopg2://user@db.invalid/mlflow")  # checked by MLflow when used


def test_a_server_is_asked_for_its_health():
    class Health(BaseHTTPRequestHandler):
        asked: list[str] = []

        def do_GET(self):  # noqa: N802 (http.server's name)
            Health.asked.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_tracking_uri(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
    assert Health.asked == ["/health"]
    with pytest.raises(ValueError, match=r"no MLflow server answers there \(.*refused.*\); start one"):
        check_tracking_uri(f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("command", [["train", "--output-dir", "{tmp}/out"], ["sweep", "split", "--storage", "{tmp}/s"]])
def test_commands_refuse_an_unreachable_server_before_starting(command, tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    assert main([*(a.format(tmp=tmp_path) for a in command), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--tracking-uri {uri}: no MLflow server answers there" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "s").exists()


def test_a_new_sqlite_store_is_migrated_once_under_a_lock(tmp_path, monkeypatch):
    """Two commands started at once against a new store both ran MLflow's schema migration; one died on "duplicate
    column name". The store is now made under an exclusive lock beside it: while one command migrates, another waits."""
    import fcntl

    from orchestrator import tracking

    uri = f"sqlite:///{tmp_path}/runs/mlflow.db"
    lock_path = tmp_path / "runs" / "mlflow.db.lock"
    held = []

    class Probe:
        def __init__(self, store_uri):
            assert store_uri == uri

        def search_experiments(self, max_results):
            with open(lock_path) as other:  # a second command's attempt to take the lock
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append(False)
                except BlockingIOError:
                    held.append(True)

    monkeypatch.setattr(tracking, "MlflowClient", Probe)
    tracking.ready_store(uri)
    assert held == [True]
    monkeypatch.undo()
    tracking.ready_store(uri)  # the real store: created, and usable by the next command
    assert (tmp_path / "runs" / "mlflow.db").stat().st_size > 0
