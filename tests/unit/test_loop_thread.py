"""The loop thread the loopback stand-ins run on."""

from __future__ import annotations

import asyncio
import socket
import threading

from tests.fixtures.loop_thread import LoopThread


def test_stopping_closes_a_connection_its_server_never_closed() -> None:
    """A stand-in's aiohttp cleanup can miss a connection accepted while it shuts down; the
    loop thread closes it as it stops, rather than leaving the socket to the collector (which
    reports it, under this suite's filters, in whatever test runs then)."""
    looper = LoopThread("loop-thread-test")
    looper.start()
    accepted = threading.Event()
    listening: list[asyncio.Server] = []

    class Holder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set()  # and keeps it open: nothing here ever closes it

    async def listen() -> int:
        server = await asyncio.get_running_loop().create_server(Holder, "127.0.0.1", 0)
        listening.append(server)
        return int(server.sockets[0].getsockname()[1])

    try:
        port = looper.call(listen())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert accepted.wait(5)

            async def stop_listening() -> None:
                listening[0].close()

            looper.call(stop_listening())
            looper.stop()
            assert client.recv(1) == b""  # the server side was closed, not abandoned
    finally:
        looper.stop()
