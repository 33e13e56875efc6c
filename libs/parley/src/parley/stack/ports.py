"""Finding out whether a TCP port on loopback is free, taken, or answering."""

from __future__ import annotations

import socket
import time


class PortTaken(RuntimeError):
    """Another process already listens where a component should."""


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Raise PortTaken with a message an operator can act on."""
    if not is_free(port, host):
        raise PortTaken(
            f"port {port} for {what} is already in use on {host}: stop what holds it "
            f"(`ss -ltnp 'sport = :{port}'`) or choose another port"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    """Wait until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
