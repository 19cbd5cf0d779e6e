"""A loopback TCP proxy between the operator and the API server that the chaos runner can
break: cut every connection, or black-hole traffic (a partition: nothing passes, nothing is
reset, and what was sent arrives once it heals, as TCP's retransmits would deliver it).
TLS passes through untouched (the client still verifies the API server's certificate)."""

from __future__ import annotations

import asyncio

CHUNK = 65536


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._open = asyncio.Event()  # set: traffic flows; clear: black-holed
        self._open.set()
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.accepted = 0

    async def start(self) -> int:
        """Listen on 127.0.0.1:<random>; returns the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self) -> int:
        """Reset every open connection (both sides); returns how many."""
        conns, self._conns = self._conns, set()
        for client, upstream in conns:
            for w in (client, upstream):
                if w is not None:
                    w.transport.abort()
        return len(conns)

    def blackhole(self) -> None:
        """From now on nothing passes in either direction, on open and new connections."""
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    @property
    def blackholed(self) -> bool:
        return not self._open.is_set()

    async def close(self, within: float = 10.0) -> None:
        """Stop listening and end every connection (reset, not cancelled: a cancelled
        handler task is logged as an error by asyncio's streams)."""
        self.heal()
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._conns.add(conn)
        try:
            await self._open.wait()  # a new connection in a partition gets no answer
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            if conn not in self._conns:  # cut while connecting
                up_writer.transport.abort()
                return
            self._conns.discard(conn)
            conn = (writer, up_writer)
            self._conns.add(conn)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except OSError:
            pass  # refused, reset or cut: the connection ends either way
        finally:
            self._conns.discard(conn)
            for w in conn:
                if w is not None:
                    w.transport.abort()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            await self._open.wait()  # held, not dropped, while black-holed
            writer.write(data)
            await writer.drain()
        # One side finished: end the other (no half-open connections to reason about).
        writer.transport.abort()
