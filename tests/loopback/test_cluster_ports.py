"""The harness waits for a fixed registry port held by someone else, then gives up clearly."""

from __future__ import annotations

import socket

import pytest

from tests.cluster.errors import HarnessError
from tests.cluster.registry import wait_for_free_port


def test_a_held_port_is_waited_for_then_refused_with_its_number() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(HarnessError, match=f"port {port} stayed in use"):
            wait_for_free_port(port, timeout=0.3)
    wait_for_free_port(port, timeout=5)  # released: returns at once


def test_a_connection_holding_the_port_as_its_local_port_blocks_the_bind() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            local = client.getsockname()[1]
            with pytest.raises(HarnessError):
                wait_for_free_port(local, timeout=0.3)
