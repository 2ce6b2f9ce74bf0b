"""`carelog up`: the main job. Database (embedded by default), migrations, then the API.

Order matters: the listening socket is bound first, so a second instance on a busy port fails
before it migrates, seeds or starts a writer. Whatever ends the process (Ctrl-C, SIGTERM, an
error) the embedded PostgreSQL it started is stopped: uvicorn re-raises a captured signal after
its shutdown, which would kill the process before our cleanup ran, so the server here does not.

``--workers N`` runs N worker processes (uvicorn's supervisor) on the one socket; each has its
own audit writer and spool file, and a PostgreSQL advisory lock elects the one that seals and
streams (:mod:`carelog.audit.leader`). A worker that dies is restarted by the supervisor; its
spool file is replayed by a survivor (or the next start).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from uvicorn.supervisors import Multiprocess

from carelog.cli.context import open_database
from carelog.core.environment import export_for_workers
from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings
from carelog.db import migrate
from carelog.runtime import Runtime
from carelog.web.app import create_app

out = Console(soft_wrap=True)
WORKER_APP = "carelog.web.worker:app"


class _Server(uvicorn.Server):
    """uvicorn's server without the re-raise of a captured signal after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a clear error naming the address (before anything starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol must be named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # connections accepted from a socket whose ``proto`` is IPPROTO_TCP. With ``proto`` 0 every
    # keep-alive response (headers and body written separately) waited ~40 ms for the
    # client's delayed ACK: 23 requests/s per connection, whatever the app did.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        name = errno.errorcode.get(exc.errno or 0, "error")
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror} ({name})",
            field="CARELOG_PORT",
            hint="another process uses the port: stop it, or pick one with --port/CARELOG_PORT",
        ) from None
    sock.set_inheritable(True)
    return sock


def _terminate(signum: int, _: Any) -> None:
    """SIGTERM before the server runs (migrating, seeding): unwind so cleanup happens."""
    raise SystemExit(128 + signum)


def up(
    demo: Annotated[
        bool,
        typer.Option(help="Seed two demo organizations first and print dev tokens for them."),
    ] = False,
    host: Annotated[str | None, typer.Option(help="Listen address (CARELOG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (CARELOG_PORT).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (each with its own writer).")
    ] = 1,
) -> None:
    """Start the database, migrate it, and serve the API until Ctrl-C or SIGTERM."""
    settings = Settings.from_env()
    bind_host = host or settings.host
    bind_port = port or settings.port
    sock = bind(bind_host, bind_port)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with open_database() as db:
            where = (
                "embedded PostgreSQL in " + str(settings.data_dir)
                if settings.embedded
                else "server"
            )
            out.print(f"database: {where}")
            migrate.upgrade(db)
            out.print(f"schema at revision {migrate.current(db)}")
            if demo:
                from carelog.cli.demo import (
                    access_lines,
                    dev_webhook_secret,
                    run_seed,
                    stripe_lines,
                )

                summary = run_seed(db)
                out.print(f"demo data: {summary.describe()}", highlight=False)
                lines = access_lines(summary, settings)
                webhook_secret, from_env = dev_webhook_secret(settings)
                lines += stripe_lines(webhook_secret, from_env, f"http://{bind_host}:{bind_port}")
                for line in lines:
                    out.print(line, highlight=False, markup=False)
                # The environment's STRIPE_WEBHOOK_SECRET, when set, is the one used and printed.
                settings = settings.with_changes(stripe_webhook_secret=webhook_secret)
            out.print(
                f"serving on http://{bind_host}:{bind_port} with {workers} worker(s) "
                "(liveness: /health, readiness: /ready, docs: /docs)"
            )
            if workers == 1:
                app = create_app(Runtime(settings, db), sealer=True, freeze_heap=True)
                config = uvicorn.Config(app, log_level="info", **server_options())
                _Server(config).run(sockets=[sock])
            else:
                # Workers reach the same database by URL (they start no server of their own),
                # and read the settings this process decided (the demo's webhook secret).
                shared = {
                    "CARELOG_DATABASE_URL": db.admin_url.render_as_string(hide_password=False)
                }
                if settings.stripe_webhook_secret is not None:
                    shared[Settings.variable("stripe_webhook_secret")] = (
                        settings.stripe_webhook_secret.get_secret_value()
                    )
                export_for_workers(**shared)
                config = uvicorn.Config(
                    WORKER_APP,
                    factory=True,
                    workers=workers,
                    log_level="info",
                    # a worker importing the app on a busy machine is slow to answer its first
                    # health ping; uvicorn's 5 s default killed and restarted them in a loop
                    timeout_worker_healthcheck=60,
                    **server_options(),
                )
                Multiprocess(config, sockets=[sock]).run()
            out.print("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


class _NoQueryStrings(logging.Filter):
    """Access-log lines keep the path and drop the query: query strings carry tokens, subject
    ids and export reasons, none of which belongs in a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def server_options() -> dict[str, Any]:
    """The uvicorn options of ``carelog up`` (one worker or several).

    ``proxy_headers`` is off: uvicorn would otherwise rewrite the peer address from
    ``X-Forwarded-For`` (trusting 127.0.0.1 by default) before carelog sees the request, and
    carelog's own trusted-proxy rule (``CARELOG_TRUSTED_PROXIES``, in
    ``carelog.audit.context``) must be the only one deciding the recorded client address.
    """
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
        access.addFilter(_NoQueryStrings())
    return {"proxy_headers": False, "forwarded_allow_ips": "", "server_header": False}


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """A single-process server with :func:`server_options` (tests serve the app this way)."""
    return uvicorn.Config(app, host=host, port=port, log_level="info", **server_options())
