"""Downloads are bounded in size and time, and `fetch` stores the very bytes it verified.

The hostile servers here are raw sockets on 127.0.0.1 that the tests start and stop (they
drip bytes, stall, lie about sizes, redirect to nonsense). Before sandbox.bounded: a body
dripped one byte every few seconds was read forever (the 20 s timeout was per recv), a
redirect to ``http://h:99999/`` was a ValueError traceback, an image had no size cap, and a
local file swapped after its check was stored as verified.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from sandbox import bounded
from sandbox.dist import discovery as d
from sandbox.dist import fetch
from sandbox.errors import SandboxError
from sandbox.image.store import Store
from sandbox.trust.truststore import TrustStore

from .conftest import build_aci, sign

HTTP = d.Transport(allow_http=True)


@contextlib.contextmanager
def raw_server(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback TCP server running ``handler(conn)`` for each connection; yields its base URL.
    Every connection is closed and the thread joined when the block ends."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            conns.append(c)
            threading.Thread(target=_quietly, args=(handler, c, stop), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        srv.close()


def _quietly(handler: Callable, c: socket.socket, stop: threading.Event) -> None:
    with contextlib.suppress(OSError):
        c.recv(65536)                 # the request
        handler(c, stop)


def drip(data: bytes, every: float) -> Callable:
    def handler(c: socket.socket, stop: threading.Event) -> None:
        for i in range(len(data)):
            if stop.wait(every):
                return
            c.sendall(data[i:i + 1])
    return handler


def headers_then(body_handler: Callable, length: int | None = 10_000_000) -> Callable:
    def handler(c: socket.socket, stop: threading.Event) -> None:
        c.sendall(b"HTTP/1.1 200 OK\r\n" + (b"Content-Length: %d\r\n" % length if length else b"")
                  + b"\r\n")
        body_handler(c, stop)
    return handler


def wait_forever(c: socket.socket, stop: threading.Event) -> None:
    stop.wait(60)


@pytest.mark.timeout(60)
def test_a_body_dripped_byte_by_byte_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """One byte every 0.2 s never trips a per-recv timeout; the whole download's deadline does."""
    with raw_server(headers_then(drip(b"x" * 100_000, 0.2))) as base:
        t0 = time.monotonic()
        with pytest.raises(bounded.TookTooLong, match=r"took longer than 2 s \(the DOWNLOAD_SECONDS"):
            fetch.download(f"{base}/img.aci", tmp_path, HTTP, label="image", deadline=2)
        took = time.monotonic() - t0
    assert 1.9 < took < 5, took


@pytest.mark.timeout(60)
def test_the_deadline_comes_from_the_environment_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_DOWNLOAD_SECONDS", "2")
    with raw_server(headers_then(drip(b"x" * 100_000, 0.2))) as base:
        t0 = time.monotonic()
        with pytest.raises(bounded.TookTooLong, match="SANDBOX_DOWNLOAD_SECONDS"):
            fetch.download(f"{base}/img.aci", tmp_path, HTTP, label="image")
    assert time.monotonic() - t0 < 5


@pytest.mark.timeout(60)
def test_headers_dripped_byte_by_byte_are_cut_too(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 10_000
    with raw_server(drip(head, 0.2)) as base:
        t0 = time.monotonic()
        with pytest.raises(bounded.TookTooLong):
            fetch.download(f"{base}/img.aci", tmp_path, HTTP, deadline=2)
    assert time.monotonic() - t0 < 5


@pytest.mark.timeout(60)
def test_a_small_document_has_its_own_short_deadline(monkeypatch) -> None:
    """Discovery pages and signatures: SMALL_DOWNLOAD_SECONDS (a dripped page is an attempt
    that failed, and the walk goes on)."""
    monkeypatch.setattr(bounded.SMALL_DOWNLOAD_SECONDS, "default", 2)
    with raw_server(headers_then(drip(b"<html>" * 1000, 0.2), length=6000)) as base:
        t0 = time.monotonic()
        with pytest.raises(bounded.TookTooLong, match="SMALL_DOWNLOAD_SECONDS"):
            d.get(f"{base}/?ac-discovery=1", HTTP, purpose="discovery")
    assert time.monotonic() - t0 < 5


@pytest.mark.timeout(60)
def test_a_stalled_server_is_given_up_after_the_stall_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_STALL_SECONDS", "1")
    with raw_server(headers_then(wait_forever)) as base:
        t0 = time.monotonic()
        with pytest.raises(bounded.TookTooLong, match="stalled: no data for 1 s"):
            fetch.download(f"{base}/img.aci", tmp_path, HTTP)
    assert time.monotonic() - t0 < 4


def test_an_image_over_max_size_is_refused_by_its_content_length(tmp_path: Path) -> None:
    with raw_server(headers_then(wait_forever, length=3 << 20)) as base:
        with pytest.raises(bounded.InputTooLarge, match="DOWNLOAD_BYTES limit of 1048576"):
            fetch.download(f"{base}/img.aci", tmp_path, HTTP, max_bytes=1 << 20)


def test_an_image_without_a_length_is_cut_at_max_size(tmp_path: Path, monkeypatch) -> None:
    def endless(c: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            c.sendall(b"z" * 65536)
    monkeypatch.setenv("SANDBOX_MAX_DOWNLOAD_BYTES", "2M")
    with raw_server(headers_then(endless, length=None)) as base:
        with pytest.raises(bounded.InputTooLarge, match="SANDBOX_MAX_DOWNLOAD_BYTES"):
            fetch.download(f"{base}/img.aci", tmp_path, HTTP)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= (2 << 20) + 65536


@pytest.mark.parametrize("location", ["http://h:99999/x.aci", "http://[::1/x", "http:///x",
                                      "ftp://example.com/x", "http://" + "a" * 300 + "/x"])
def test_a_redirect_to_a_bad_url_is_one_sentence(tmp_path: Path, location: str) -> None:
    def redirect(c: socket.socket, stop: threading.Event) -> None:
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode() + b"\r\n"
                  b"Content-Length: 0\r\n\r\n")
    with raw_server(redirect) as base:
        with pytest.raises(SandboxError) as e:
            fetch.download(f"{base}/img.aci", tmp_path, HTTP)
    assert str(e.value).count("\n") == 0 and "Traceback" not in str(e.value)


def test_sandbox_fetch_max_size_and_deadline_on_the_command_line(run_cli, sandbox_dir) -> None:
    with raw_server(headers_then(wait_forever, length=3 << 20)) as base:
        rc, out, err = run_cli("fetch", f"{base}/img.aci", "--insecure-options", "image,http",
                               "--max-size", "1M", "--no-cache")
    assert rc == 1 and err.startswith("sandbox: ") and "DOWNLOAD_BYTES" in err, err
    rc, out, err = run_cli("fetch", "x.aci", "--max-size", "lots")
    assert rc == 2 and "--max-size 'lots' is not a size" in err


# --------------------------------------------------------------------------- what is imported

def test_a_local_file_swapped_after_its_check_is_not_what_is_stored(state, keys, tmp_path,
                                                                     monkeypatch) -> None:
    """Swap the file between verification and import: the old pipeline read it twice."""
    signed = build_aci(tmp_path / "hello.aci", "localhost/hello", {"version": "1.0.0"})
    sign(signed, keys.alice)
    evil = build_aci(tmp_path / "evil.aci", "localhost/hello", {"version": "1.0.0"},
                     payload="not what was signed\n")
    TrustStore().add("localhost/hello", keys.alice.public().armored())
    real_verify = TrustStore.verify

    def verify_then_swap(self, path, sig, name, steps=None):
        v = real_verify(self, path, sig, name, steps=steps)
        evil.replace(signed)                       # the attacker's move, just after the check
        return v

    monkeypatch.setattr(TrustStore, "verify", verify_then_swap)
    from sandbox.image import aci
    want = aci.image_id(tmp_path / "hello.aci")
    res = fetch.fetch(str(signed))
    assert res.id == want != aci.image_id(signed)   # the signed bytes, not the swapped file
    assert Store().get(res.id).path.read_bytes() != signed.read_bytes()


def test_fetching_a_fifo_or_a_device_is_refused(state, tmp_path) -> None:
    import os
    fifo = tmp_path / "pipe.aci"
    os.mkfifo(fifo)
    with pytest.raises(SandboxError, match="not a regular file"):
        fetch.fetch(str(fifo), options="image")


@pytest.mark.timeout(60)
def test_a_key_url_is_bounded_in_size_and_time(monkeypatch) -> None:
    from sandbox.trust import truststore
    monkeypatch.setattr(bounded.SMALL_DOWNLOAD_SECONDS, "default", 2)
    with raw_server(headers_then(drip(b"k" * 10_000, 0.2), length=10_000)) as base:
        t0 = time.monotonic()
        with pytest.raises(bounded.TookTooLong, match="Fetching the key"):
            truststore.fetch_key(f"{base}/alice.asc", insecure_allow_http=True)
    assert time.monotonic() - t0 < 5

    def big(c: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            c.sendall(b"k" * (2 << 20))
    with raw_server(headers_then(big, length=2 << 20)) as base:
        with pytest.raises(bounded.InputTooLarge, match="KEY_FILE_BYTES"):
            truststore.fetch_key(f"{base}/alice.asc", insecure_allow_http=True)
