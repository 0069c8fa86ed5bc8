"""The metadata service facing a hostile app: POST bodies are bounded, Content-Length must be a
plain number, and a client that drips its request is dropped. The service runs here on a
loopback socket of the test's own (host) network namespace, as stage0 runs it in a pod's.

Before: ``Content-Length: -1`` read until the client hung up (a parked thread), a non-number was
a ValueError traceback in the supervisor's log, and any body size was read.
"""
from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
import raw_http

from sandbox import bounded
from sandbox.pod import metadata


@pytest.fixture
def service(monkeypatch) -> Iterator[metadata.MetadataService]:
    with small_service(monkeypatch) as svc:
        yield svc


def address(svc: metadata.MetadataService) -> tuple[str, int]:
    host, port = svc.url.split("//")[1].split("/")[0].split(":")
    return host, int(port)


def exchange(svc: metadata.MetadataService, raw: bytes, wait: float = 5) -> bytes:
    return raw_http.exchange(*address(svc), raw, wait)


def post(length_header: str | None, body: bytes = b"content=hi") -> bytes:
    h = f"Content-Length: {length_header}\r\n" if length_header is not None else ""
    return (f"POST /t0k3n/acMetadata/v1/pod/hmac/sign HTTP/1.1\r\nHost: x\r\n{h}"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n").encode() + body


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/"), answer[:100]
    return int(answer.split()[1])


def test_a_good_form_is_signed(service) -> None:
    assert status(exchange(service, post("10"))) == 200


@pytest.mark.parametrize("value, code", [("-1", 400), ("abc", 400), ("1e3", 400), ("+10", 400),
                                         ("0x10", 400), ("9" * 5000, 413), ("99999999999999999999", 413),
                                         (str(bounded.METADATA_BODY_BYTES.value + 1), 413)])
def test_content_length_must_be_a_small_plain_number(service, value: str, code: int) -> None:
    t0 = time.monotonic()
    answer = exchange(service, post(value))
    assert status(answer) == code and time.monotonic() - t0 < 3


def test_a_post_without_a_length_is_411(service) -> None:
    assert status(exchange(service, post(None, b""))) == 411
    chunked = post(None, b"5\r\nhello\r\n0\r\n\r\n").replace(
        b"Content-Type", b"Transfer-Encoding: chunked\r\nContent-Type")
    assert status(exchange(service, chunked)) == 411


def test_a_client_that_drips_its_request_is_dropped(service, monkeypatch) -> None:
    monkeypatch.setattr(bounded.METADATA_REQUEST_SECONDS, "default", 1)
    cut = raw_http.drip(*address(service), b"GET /t0k3n/acMetadata/v1/pod/uuid HTTP/1.1\r\n")
    assert cut is not None and cut < 4
    assert status(exchange(service, b"GET /t0k3n/acMetadata/v1/pod/uuid HTTP/1.0\r\n\r\n")) == 200


def test_a_stop_while_the_server_is_built_does_not_wait_for_it(monkeypatch) -> None:
    """A short pod (/bin/true) ends before its metadata server is built (http.server's import
    takes 10-30 ms): the teardown does not wait for the build (only, up to BUILD_STEP_WAIT,
    for the import under way); the service's thread closes the socket once it is done, without
    serving and without a traceback."""
    import threading
    real, go_on, built = metadata._make_server, threading.Event(), threading.Event()

    def slow_build(sock, svc):
        go_on.wait(10)                      # a slow import: it ends when the test says so
        try:
            return real(sock, svc)
        finally:
            built.set()
    monkeypatch.setattr(metadata, "_make_server", slow_build)
    errors = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    sock = metadata.listen()
    svc = metadata.MetadataService(sock, token="t0k3n", uuid="u-1",
                                   pod_manifest={"acKind": "PodManifest"}, apps={})
    svc.start()
    t0 = time.monotonic()
    svc.stop()                              # returns while the server is still being built
    assert time.monotonic() - t0 < metadata.BUILD_STEP_WAIT + 2
    assert not built.is_set() and sock.fileno() != -1
    go_on.set()
    assert built.wait(10)
    for _ in range(200):                    # the thread closes the socket right after the build
        if sock.fileno() == -1:
            break
        time.sleep(0.01)
    assert sock.fileno() == -1 and not errors


@contextlib.contextmanager
def small_service(monkeypatch, **limits: int) -> Iterator[metadata.MetadataService]:
    """A service built with some of its bounds lowered (they are read when it is built)."""
    for name, value in limits.items():
        monkeypatch.setattr(getattr(bounded, name), "default", value)
    svc = metadata.MetadataService(metadata.listen(), token="t0k3n", uuid="u-1",
                                   pod_manifest={"acKind": "PodManifest"}, apps={})
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_the_request_log_is_bounded(monkeypatch) -> None:
    """run.json names what the pod asked; an app that asks thousands of times with 60 KiB paths
    made the supervisor keep (and write to the host's disk) every path: 300 requests were 18 MB.
    Now: the first METADATA_LOG_ENTRIES requests, each cut short, and a count."""
    with small_service(monkeypatch, METADATA_LOG_ENTRIES=10) as svc:
        long = b"/t0k3n/acMetadata/v1/" + b"A" * 60000
        for _ in range(25):
            assert status(exchange(svc, b"GET " + long + b" HTTP/1.0\r\n\r\n")) == 404
        assert status(exchange(svc, b"GET /t0k3n/acMetadata/v1/pod/uuid HTTP/1.0\r\n\r\n")) == 200
        assert svc.request_count == 26
        assert len(svc.requests) == 10
        assert all(len(e) <= svc.LOG_ENTRY_CHARS + 1 for e in svc.requests)


@pytest.mark.serial     # a wall-clock bound, and the process's thread count
def test_connections_beyond_the_bound_wait_in_the_backlog(monkeypatch) -> None:
    """Each connection was a thread of the supervisor (and a deadline's timer thread): 1500
    connections an app opened made 260 threads within 2 s, more the faster it connected. Now at
    most METADATA_CONNECTIONS requests are served at once; the others wait in the backlog, and
    are served when a slot frees (here when the idle clients hang up)."""
    import threading
    with small_service(monkeypatch, METADATA_CONNECTIONS=4) as svc:
        assert status(exchange(svc, b"GET /t0k3n/acMetadata/v1/pod/uuid HTTP/1.0\r\n\r\n")) == 200
        before = threading.active_count()
        idle = []
        try:
            for _ in range(12):     # 4 served, the rest in the backlog (16 long)
                c = socket.create_connection(address(svc), timeout=5)
                c.sendall(b"GET /t0k3n/acMetadata/v1/pod/uuid HTTP/1.1\r\n")   # never finished
                idle.append(c)
            time.sleep(1)
            assert threading.active_count() - before <= 2 * 4 + 2
        finally:
            for c in idle:
                c.close()
        t0 = time.monotonic()
        answer = exchange(svc, b"GET /t0k3n/acMetadata/v1/pod/uuid HTTP/1.0\r\n\r\n", wait=20)
        assert status(answer) == 200 and time.monotonic() - t0 < 10
