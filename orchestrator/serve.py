"""`decouple serve`: answer questions over HTTP from a passage cache, on Ray Serve, until stopped.

Before Ray starts, everything that can be refused is: the options, the host and port (on a local Ray), the cache and the
model (loaded once here: a cache built by another model, or for ``--baseline full`` with another tokenizer, is one
line), and the cache's BM25 index (read, or built and kept beside the cache, `trainables.serving.retrieval`). Then
the command starts or joins Ray (`orchestrator.ray_session`), starts Serve's HTTP proxy on ``--host``/``--port`` and
runs the application: ``--replicas`` copies of `trainables.serving.replica.AnswerReplica`, each holding the model and
the whole cache. It serves until SIGINT (Ctrl-C) or SIGTERM, which stop Serve and then the command's Ray
(`orchestrator.interrupt`: exit 130 / 143); on a cluster only this application is deleted, and Serve's proxy, which
other applications may use, is left to the cluster (a Serve already running there keeps its own host and port).
Serve replaces a replica that dies (`docs/commands.md`: what its requests get).
"""
from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import replace

from orchestrator.console import verbose
from orchestrator.ray_session import chosen_address, ray_session
from trainables.serving.options import ServeOptions

APP_NAME = "decouple"
DEPLOYMENT_NAME = "answer"
CONSTRUCTOR_RETRIES = 2
"""Starts of a replica that failed before Serve gives up (the driver has checked the model and cache already, so a
failure here is the machine's, e.g. memory, and retrying it twenty times, Serve's default, only hides it)."""


def serve(options: ServeOptions, *, say: Callable[[str], None]) -> None:
    """Check, start, serve until interrupted (`KeyboardInterrupt`), stop. ``say`` gets the command's lines."""
    joined = chosen_address(options.ray_address)[0] is not None
    if not joined:  # on a cluster the proxy listens on the cluster's nodes, maybe already (a Serve running there)
        check_port(options.host, options.port)
    summary = check_model_and_cache(options)
    say(index_line(options))
    with ray_session(options.ray_address, dashboard=False):
        from ray import serve as ray_serve

        try:
            _start(options)
            say(f"answering at {base_url(options)}/answer (GET /healthz, GET /info): {summary}; "
                f"{options.replicas} replica(s); Ctrl-C stops it")
            while True:
                time.sleep(3600)
        finally:
            if joined:  # on a cluster Serve may hold other applications: take away only this one
                ray_serve.delete(APP_NAME)
            else:
                ray_serve.shutdown()


def base_url(options: ServeOptions) -> str:
    host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host
    return f"http://[{host}]:{options.port}" if ":" in host else f"http://{host}:{options.port}"


def check_port(host: str, port: int) -> None:
    """`ValueError` naming ``--port`` (or ``--host``) when nothing could listen there now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket does
        try:
            probe.bind((host, port))
        except socket.gaierror as err:
            raise ValueError(f"host={host!r} is not an address ({err.strerror}); use 127.0.0.1 or 0.0.0.0") from None
        except OSError as err:
            if err.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"host={host!r} is not an address of this machine; use 127.0.0.1 or 0.0.0.0") \
                    from None
            raise ValueError(f"port={port} on {host} cannot be listened on ({err.strerror}); pass another --port "
                             "(or stop what holds it)") from None


def check_model_and_cache(options: ServeOptions) -> str:
    """Load the model as a replica will and check it against the cache (`load_scorer`), before Ray starts; returns
    what is served, in a phrase."""
    from trainables.cache.reader import PassageCache
    from trainables.serving.scorers import load_scorer

    cache = PassageCache(options.cache)
    scorer = load_scorer(replace(options, device="cpu"), cache)  # the replicas hold the device
    config, manifest = scorer.model.config, cache.manifest
    if scorer.kind == "full":
        what = f"the full model (baseline), question length {config.max_question_len}"
    else:
        what = (f"the decoupled model at split {config.split}, ratio {config.compression_ratio}, "
                f"{manifest.cache_dtype} states")
    return f"{what}; {manifest.passages} passages, {manifest.windows} windows of {manifest.max_passage_len} tokens"


def index_line(options: ServeOptions) -> str:
    """Open (read, or build and keep) the cache's BM25 index now, so that replicas only read it; say which."""
    from trainables.serving.retrieval import INDEX_DIR, WindowIndex

    start = time.perf_counter()
    index, source = WindowIndex.open(options.cache)
    where = f"{options.cache.rstrip('/')}/{INDEX_DIR}"
    if not source.built:
        return f"BM25 index of {index.windows} windows: read from {where}"
    seconds = time.perf_counter() - start
    if source.saved:
        return (f"BM25 index of {index.windows} windows: built in {seconds:.1f}s; not kept ({where}: "
                f"{source.saved}), so each replica builds its own")
    return f"BM25 index of {index.windows} windows: built in {seconds:.1f}s, kept in {where}"


def _start(options: ServeOptions) -> None:
    """Serve's HTTP proxy on the options' host and port, then the application, waiting until its replicas run."""
    from ray import serve as ray_serve

    from trainables.serving.replica import AnswerReplica

    logging_config = None if verbose() else {"log_level": "WARNING", "enable_access_log": False}
    if not verbose():  # the driver's own Serve notes ("Started Serve", "Application ... is ready"): this command says
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
    ray_serve.start(http_options={"host": options.host, "port": options.port}, logging_config=logging_config)
    gpus = 1 if options.device.startswith("cuda") else 0
    deployment = ray_serve.deployment(
        AnswerReplica, name=DEPLOYMENT_NAME, num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.cpus_per_replica, "num_gpus": gpus},
        # one batch runs while the next fills; the rest wait in Serve's queue
        max_ongoing_requests=2 * options.max_batch_size, max_constructor_retry_count=CONSTRUCTOR_RETRIES,
    )
    ray_serve.run(deployment.bind(options), name=APP_NAME, route_prefix="/", logging_config=logging_config)
