"""Port checks that explain themselves: which port, which setting moves it, who holds it."""

from __future__ import annotations

import socket

import psutil

from shared.errors import ClickstreamError


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def holder(port: int) -> str:
    """'pid 4242 (java)' for the process listening on `port`, if it can be seen."""
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                try:
                    return f"pid {c.pid} ({psutil.Process(c.pid).name()})"
                except psutil.NoSuchProcess:
                    return f"pid {c.pid}"
    except psutil.AccessDenied:
        pass
    return "another process"


def require_free(port: int, setting: str, host: str = "127.0.0.1") -> None:
    if not is_free(port, host):
        raise ClickstreamError(
            f"port {port} ({setting}) is in use by {holder(port)}: stop it, or set "
            f"{setting}=<another port>"
        )


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free loopback port (for tests), below Linux's ephemeral range
    (32768+), so the outgoing connections of a busy test run cannot grab it before the
    server binds it. Never one it returned before in this process: a port handed out but
    not bound yet is still free (a demo test's dashboard port once equalled the storage
    port of its own Cassandra)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        if port not in _handed_out and is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port between 20000 and 32000")
