"""Raw HTTP clients for the tests of the kit's small servers (`sandbox serve`, a pod's metadata
service): a request sent byte for byte as written, and a client that drips its request — the
hostile callers a parser on a socket has to survive."""
from __future__ import annotations

import contextlib
import socket
import time


def exchange(host: str, port: int, raw: bytes, wait: float = 5) -> bytes:
    """Send ``raw`` and read the answer until the server closes (or ``wait`` passes)."""
    with socket.create_connection((host, port), timeout=wait) as c:
        c.sendall(raw)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := c.recv(65536):
                out += chunk
    return out


def drip(host: str, port: int, start: bytes, *, every: float = 0.25, rounds: int = 40) -> float | None:
    """Send ``start`` (a request line), then one more header byte every ``every`` seconds, never
    finishing the request: the seconds until the server hung up, or None if it never did."""
    with socket.create_connection((host, port), timeout=10) as c:
        c.sendall(start)
        t0 = time.monotonic()
        for _ in range(rounds):
            try:
                c.sendall(b"X")
                if c.recv(1, socket.MSG_DONTWAIT) == b"":
                    return time.monotonic() - t0
            except BlockingIOError:         # still open, nothing to read
                pass
            except OSError:                 # reset by the server
                return time.monotonic() - t0
            time.sleep(every)
    return None
