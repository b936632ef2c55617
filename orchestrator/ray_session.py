"""The Ray a command runs on: the cluster named by ``--ray-address`` or ``RAY_ADDRESS``, else a local Ray the command
starts for itself and stops at the end. Never whatever `ray start` left on the machine, which ``ray.init()`` without
an address silently joins; one line says which Ray was used.

A local Ray is started with ``address="local"`` and, when asked, the dashboard on a port chosen here; its address is
handed to every worker as ``RAY_API_SERVER_ADDRESS``. Ray Train's placement-group cleaner (an actor) queries the
state API without an address, and Ray then looks for *a* cluster on the machine: with another Ray running it fails
("Found multiple active Ray instances", a traceback per run) or, with a `ray start` cluster, asks the wrong cluster
whether our controller lives. Naming our own dashboard removes the guess.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator

from orchestrator.console import ray_logging_level, worker_env
from orchestrator.interrupt import stop_on_signals

ADDRESS_ENV = "RAY_ADDRESS"
LOCAL = "local"
_API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"


def chosen_address(address: str | None) -> tuple[str | None, str]:
    """``(address to join, where it came from)``; ``(None, ...)`` means start a local Ray. ``local`` (the option or
    ``RAY_ADDRESS=local``) asks for a local Ray explicitly."""
    for value, origin in ((address, "--ray-address"), (os.environ.get(ADDRESS_ENV), ADDRESS_ENV)):
        if value == LOCAL:
            return None, f"{origin} {LOCAL}" if origin.startswith("-") else f"{origin}={LOCAL}"
        if value:
            return value, origin
    return None, f"no --ray-address or {ADDRESS_ENV} given"


_PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def local_init_args(*, dashboard: bool, num_cpus: int | None = None) -> dict:
    """`ray.init` arguments for a local Ray that never joins another one (see the module docstring), its logs and its
    workers' as quiet as the command's console (`orchestrator.console`)."""
    args: dict = {"address": LOCAL, "num_cpus": num_cpus, "logging_level": ray_logging_level()}
    # One machine that lives as long as the command is never preempted: Ray Train's preemption watcher (an actor per
    # run) has nothing to watch, and its shutdown printed an error line per trial.
    env = worker_env() | {_PREEMPTION_WATCHER_ENV: "0"}
    if not dashboard:
        return args | {"include_dashboard": False, "runtime_env": {"env_vars": env}}
    port = _free_port()
    env[_API_SERVER_ENV] = f"http://127.0.0.1:{port}"
    return args | {"include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port,
                   "runtime_env": {"env_vars": env}}


def _start_ray(address: str | None, *, dashboard: bool, num_cpus: int | None = None) -> bool:
    """Start or join Ray for a command (see the module docstring) and say which in one line on stderr. Returns
    whether this call started or joined Ray (the caller then shuts it down); False when Ray already runs in this
    process (a test's, or the sweep around a trial).

    Raises `ValueError` with one line when the named cluster cannot be joined.
    """
    import ray

    if ray.is_initialized():
        return False
    target, origin = chosen_address(address)
    if target is None:
        ray.init(**local_init_args(dashboard=dashboard, num_cpus=num_cpus))
        cpus = int(ray.cluster_resources().get("CPU", 0))
        _say(f"[ray] started a local Ray with {cpus} CPUs for this command ({origin}); it stops when the command ends")
        return True
    try:
        ray.init(address=target, logging_level=ray_logging_level())
    except (ConnectionError, ValueError, RuntimeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{origin}={target}: cannot join that Ray cluster ({reason}); check the address, or unset "
                         "it to run on a local Ray") from None
    _say(f"[ray] joined the Ray cluster at {target} (from {origin})")
    return True


@contextlib.contextmanager
def ray_session(address: str | None, *, dashboard: bool, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block (`_start_ray`); Ray is shut down after it when this call started it."""
    import ray

    started = _start_ray(address, dashboard=dashboard, num_cpus=num_cpus)
    try:
        with stop_on_signals():  # after Ray's own handlers: SIGTERM ends the command as Ctrl-C does
            yield
    finally:
        if started:
            ray.shutdown()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
