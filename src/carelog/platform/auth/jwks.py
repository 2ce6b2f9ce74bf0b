"""The WorkOS signing keys, fetched off the event loop and served from the cache meanwhile.

``PyJWKClient`` fetches synchronously (urllib) inside ``get_signing_key_from_jwt``: called from
a request it blocked the event loop for as long as WorkOS took to answer, every request of every
client waited (``/health`` too), and again at every cache expiry. Here the fetch runs in a
worker thread under a bounded timeout, one at a time (concurrent requests share it), and:

- a key already cached is served at once, even after the cache's lifespan: the expiry only
  starts a background refresh (WorkOS rotates keys with an overlap, so a stale set still
  verifies until the refresh lands);
- an unknown ``kid`` waits for one fetch (bounded); unknown kids cannot make carelog fetch more
  than once per ``min_interval`` (a flood of forged kids is not a flood of fetches).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import jwt

log = logging.getLogger("carelog.auth")


class JwksUnavailableError(Exception):
    """No key for the token's ``kid`` (unknown to WorkOS, or WorkOS not reachable in time)."""


class JwksCache:
    def __init__(
        self,
        client: jwt.PyJWKClient,
        *,
        timeout: float = 3.0,
        lifespan: float = 3600.0,
        min_interval: float = 30.0,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.lifespan = lifespan
        self.min_interval = min_interval
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._attempted_at = 0.0
        self._refresh: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    # ------------------------------------------------------------------ async (requests)

    async def key(self, kid: str) -> jwt.PyJWK:
        found = self._keys.get(kid)
        if found is not None:
            if self._stale():
                self._start_refresh()
            return found
        if self._keys and time.monotonic() - self._attempted_at < self.min_interval:
            raise JwksUnavailableError(f"unknown key id {kid!r}")
        task = self._start_refresh()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except Exception as exc:  # TimeoutError included
            log.warning("WorkOS JWKS fetch failed or timed out: %s", type(exc).__name__)
            raise JwksUnavailableError("the WorkOS keys could not be fetched in time") from None
        found = self._keys.get(kid)
        if found is None:
            raise JwksUnavailableError(f"unknown key id {kid!r}")
        return found

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at > self.lifespan

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._refresh is None or self._refresh.done():
            self._attempted_at = time.monotonic()
            self._refresh = asyncio.get_running_loop().create_task(self._fetch_async())
            self._refresh.add_done_callback(_quiet)
        return self._refresh

    async def _fetch_async(self) -> None:
        await asyncio.to_thread(self._fetch)

    # ------------------------------------------------------------------ sync (CLI, scripts)

    def key_sync(self, kid: str) -> jwt.PyJWK:
        found = self._keys.get(kid)
        if found is None or self._stale():
            try:
                self._fetch()
            except Exception:
                if found is None:
                    raise JwksUnavailableError("the WorkOS keys could not be fetched") from None
            found = self._keys.get(kid)
        if found is None:
            raise JwksUnavailableError(f"unknown key id {kid!r}")
        return found

    def _fetch(self) -> None:
        with self._lock:
            self.fetches += 1
            data: Any = self.client.fetch_data()
            keys = jwt.PyJWKSet.from_dict(data).keys
            self._keys = {
                k.key_id: k for k in keys if k.key_id and k.public_key_use in ("sig", None)
            }
            self._fetched_at = time.monotonic()


def _quiet(task: asyncio.Task[None]) -> None:
    """Consume a background refresh's error (it is logged where awaited, or retried later)."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("WorkOS JWKS refresh failed: %s", type(task.exception()).__name__)
