"""`carelog up` serves on uvloop and httptools, uvicorn's own fast event loop and HTTP parser.

Both are declared dependencies (pyproject.toml): without them uvicorn falls back, silently, to
the asyncio loop and the pure-Python h11 parser. On this 2-core machine the fallback cost the
minimal FastAPI baseline 27% of its requests per second and carelog's ``/health`` 29% (see
docs/performance.md); the test checks what uvicorn would actually load, no timing involved.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from carelog.cli.up_command import server_config


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never served
    raise AssertionError("not served")


def test_carelog_up_loads_uvloop_and_httptools() -> None:
    config = server_config(_app, "127.0.0.1", 0)
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    factory = config.get_loop_factory()
    assert factory is not None and factory.__module__.startswith("uvloop"), factory
