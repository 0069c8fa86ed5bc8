"""`sandbox serve` facing hostile clients (any local user can connect to 127.0.0.1): a client that
hangs up leaves no traceback on the terminal, an idle or dripping client is cut off, at most
SERVE_CONNECTIONS requests hold a thread, and the log keeps the newest SERVE_LOG_ENTRIES.

Before: each early hang-up printed a socketserver traceback on serve's stderr; 200 idle
connections were 200 threads for as long as the clients liked; 400 requests with 60 KB paths
were 12 MB of log."""
from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from raw_http import drip, exchange

from sandbox import bounded
from sandbox.dist.serve import DiscoveryServer


@contextlib.contextmanager
def server(tmp_path: Path, monkeypatch, **limits: int) -> Iterator[DiscoveryServer]:
    for name, value in limits.items():
        monkeypatch.setattr(getattr(bounded, name), "default", value)
    (tmp_path / "site").mkdir()
    srv = DiscoveryServer(tmp_path / "site")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def get(port: int, raw: bytes) -> bytes:
    return exchange("127.0.0.1", port, raw, wait=10)


def test_a_client_that_hangs_up_leaves_no_traceback(tmp_path: Path, monkeypatch, capfd) -> None:
    with server(tmp_path, monkeypatch) as srv:
        for _ in range(15):
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            c.close()
        time.sleep(0.5)
        assert get(srv.port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err[:2000]


@pytest.mark.serial     # its verdict is a wall-clock bound
def test_a_client_that_drips_its_request_is_cut_off(tmp_path: Path, monkeypatch) -> None:
    with server(tmp_path, monkeypatch, SERVE_REQUEST_SECONDS=1) as srv:
        cut = drip("127.0.0.1", srv.port, b"GET / HTTP/1.1\r\n")
        assert cut is not None and cut < 5


@pytest.mark.serial     # a wall-clock bound, and the process's thread count
def test_idle_connections_hold_at_most_the_bound_of_threads(tmp_path: Path, monkeypatch) -> None:
    with server(tmp_path, monkeypatch, SERVE_CONNECTIONS=2) as srv:
        assert get(srv.port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        before = threading.active_count()
        idle = []
        try:
            for _ in range(8):      # 2 served, one waiting for a slot, the rest in the backlog
                c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                c.sendall(b"GET / HTTP/1.1\r\n")
                idle.append(c)
            time.sleep(1)
            assert threading.active_count() - before <= 2 * 2 + 1     # a handler and a timer each
        finally:
            for c in idle:
                c.close()
        t0 = time.monotonic()       # the slots free when the idle clients hang up
        assert get(srv.port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        assert time.monotonic() - t0 < 8


def test_the_log_keeps_the_newest_entries_cut_short(tmp_path: Path, monkeypatch) -> None:
    with server(tmp_path, monkeypatch, SERVE_LOG_ENTRIES=10) as srv:
        for _ in range(25):
            assert b" 404 " in get(srv.port, b"GET /" + b"a" * 60000 + b" HTTP/1.0\r\n\r\n")[:40]
        get(srv.port, b"GET /last HTTP/1.0\r\n\r\n")
        assert len(srv.log) == 10
        assert srv.log[-1].path == "/last"
        assert all(len(e.path) <= srv.LOG_PATH_CHARS + 1 for e in srv.log)
