"""Small network helpers shared by the local service launchers."""
from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1", *, avoid: set[int] | None = None) -> int:
    """A TCP port nobody listens on right now (a race is possible; callers retry on bind errors)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if not avoid or port not in avoid:
            return port
    raise OSError("no free port found")


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.1)
    return False
