"""Several worker processes behind one port (`risk serve --workers N`, N > 1).

Gunicorn runs the uvicorn workers with `reuse_port`: every worker opens its own listening socket with
SO_REUSEPORT and the kernel spreads new connections over them. uvicorn's own multi-process mode shares one
socket, and one worker could accept all of a client's keep-alive connections while the other idled for the
whole run (issue 19, seen with py-spy under wrk). Each worker builds its app after the fork, so it gets its
own store engine and audit writer; on SIGTERM the workers shut down gracefully and the app's lifespan
flushes the audit writer, as with a single uvicorn process."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

KEEP_ALIVE_SECONDS = 30
WORKER_CLASS = "uvicorn_worker.UvicornWorker"


class _Workers(BaseApplication):
    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:  # noqa: ANN401 - the ASGI app, built in the worker after the fork
        app = self._factory()
        settle_heap()
        return app


def settle_heap() -> None:
    """Move everything the server holds after start-up (imported modules, the app, its routes and models)
    out of the garbage collector's reach.

    Without it every full collection walks those hundreds of thousands of long-lived objects, a pause of
    tens of milliseconds in the middle of requests: under wrk with 50 connections the lookup's p99 was
    126 ms against a p50 of 22 ms, and 33-36 ms with the heap frozen (issue 19). Objects made while serving
    are still collected as before."""
    gc.collect()
    gc.freeze()


def worker_options(host: str, port: int, workers: int) -> dict[str, Any]:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": WORKER_CLASS,
        "reuse_port": True,
        "keepalive": KEEP_ALIVE_SECONDS,
        "accesslog": "-",  # uvicorn's access lines (redacted by the app's filter) on stdout, as before
        "loglevel": "info",
        # no gunicorn control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) would be shared by every
        # server on the machine (two side by side in the benchmark, parallel tests)
        "control_socket_disable": True,
    }


def run_workers(factory: Callable[[], Any], host: str, port: int, workers: int) -> None:
    """Serve the ASGI app that `factory` builds in each of `workers` processes until SIGTERM or SIGINT."""
    _Workers(factory, worker_options(host, port, workers)).run()
