"""Transport hardening: a request-body limit enforced before anything parses, and headers
that keep PHI out of caches and browsers from guessing content types.

One pure ASGI middleware, so the limit holds for every route (JSON bodies, the Stripe webhook,
the viewer's forms) before FastAPI reads a byte of the body into memory.
"""

from __future__ import annotations

from typing import Any

import orjson

#: Largest request body accepted: a clinical note (100 000 characters, JSON-escaped at up to
#: six bytes each) fits with room to spare; nothing carelog takes is larger.
MAX_BODY_BYTES = 1024 * 1024
#: Every API and viewer response may carry PHI or audit data: never stored by a cache.
_NO_STORE_PREFIXES = ("/api/", "/audit")


def _too_large() -> dict[str, Any]:
    return {
        "error": {
            "field": None,
            "reason": f"request body larger than {MAX_BODY_BYTES} bytes",
            "hint": "send less data per request",
            "code": "BODY_TOO_LARGE",
        }
    }


class HardeningMiddleware:
    def __init__(self, app: Any, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._refuse(send)
            return
        path: str = scope.get("path", "")
        no_store = path.startswith(_NO_STORE_PREFIXES)
        if declared is None and any(k == b"transfer-encoding" for k, _ in scope["headers"]):
            # No declared length: read (at most the limit) before the app sees anything.
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    await self._refuse(send)
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def replayed() -> Any:
                return replay.pop() if replay else await receive()

            receive = replayed

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (no_store and k.lower() == b"cache-control")
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(send: Any) -> None:
        body = orjson.dumps(_too_large())
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
