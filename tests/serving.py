"""The app served by a real uvicorn on a loopback port, in a background thread.

For tests that need what an in-process ASGI transport does not give: a browser, a client that
hangs up mid-stream. The socket comes from ``carelog up``'s own :func:`bind`, so connections
behave as in production (TCP_NODELAY on every accepted connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from carelog.cli.up_command import bind

START_TIMEOUT = 30.0


@contextmanager
def served_in_thread(app: Any) -> Iterator[str]:
    """The app's base URL while it is served (lifespan run); stopped and joined on exit."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
