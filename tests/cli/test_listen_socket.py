"""The listening socket `carelog up` binds gives every accepted connection TCP_NODELAY.

asyncio disables Nagle's algorithm only on connections accepted from a socket whose
``proto`` is IPPROTO_TCP. Without it, a keep-alive response written in two parts (headers,
then body) waits for the client's delayed ACK, about 40 ms, so one connection managed ~23
requests/s whatever the application did. The test reads the option on the server side of a
real loopback connection; no timing is involved.
"""

from __future__ import annotations

import asyncio
import socket

from carelog.cli.up_command import bind


def test_accepted_connections_have_nagle_off() -> None:
    async def scenario() -> tuple[int, int]:
        listener = bind("127.0.0.1", 0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        try:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(seen, 10)
            writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return listener.proto, nodelay

    proto, nodelay = asyncio.run(scenario())
    assert proto == socket.IPPROTO_TCP
    assert nodelay != 0, "accepted connections keep Nagle's algorithm on"
