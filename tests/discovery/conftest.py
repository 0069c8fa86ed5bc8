"""Fixtures for the discovery/fetch/serve tests. All traffic stays on 127.0.0.1.

* ``keys``: two lab keys, Alice (the publisher) and Mallory, made once per module.
* ``publisher``: a directory with signed ACIs named ``localhost/...`` and Alice's public key,
  built with sandbox.image.aci.build and signed with sandbox.trust.pgp.
* ``server`` / ``tls_server``: ``sandbox serve`` on that directory, in-process.
* ``pages``: a tiny scriptable loopback HTTP(S) server (path -> status/body/headers) for the
  discovery-walk tests, with a request log.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from sandbox.dist.discovery import APPC_SPEC_SOURCES
from sandbox.dist.serve import DiscoveryServer, make_tls_material
from sandbox.image import aci
from sandbox.trust import pgp

FIXTURES = Path(APPC_SPEC_SOURCES) / "discovery" / "testdata"


@dataclass
class Keys:
    alice: Any
    mallory: Any


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(pgp.generate_key("Alice <alice@example.com>", bits=2048),
                pgp.generate_key("Mallory <mallory@example.com>", bits=2048))


def build_aci(out: Path, name: str, labels: dict[str, str], payload: str = "hello\n") -> Path:
    lay = out.parent / f".layout-{out.name}"
    (lay / "rootfs").mkdir(parents=True)
    (lay / "rootfs" / "greeting").write_text(payload)
    (lay / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": k, "value": v} for k, v in labels.items()]}))
    aci.build(lay, out)
    shutil.rmtree(lay)
    return out


def sign(path: Path, key: Any) -> Path:
    asc = Path(str(path) + ".asc")
    asc.write_bytes(pgp.sign(path, key))
    return asc


@pytest.fixture
def state(sandbox_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $SANDBOX_DIR and an empty system trust dir (nothing trusted by default)."""
    sysdir = tmp_path / "system-trust"
    sysdir.mkdir()
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(sysdir))
    return sandbox_dir


@pytest.fixture
def publisher(tmp_path: Path, keys: Keys) -> Path:
    """hello 1.0.0 and 1.2.0 (linux/amd64), signed by Alice; Alice's public key."""
    from sandbox._sys.platform import appc_os_arch as default_os_arch
    os_name, arch = default_os_arch()
    d = tmp_path / "pub"
    d.mkdir()
    for v in ("1.0.0", "1.2.0"):
        p = build_aci(d / f"hello-{v}.aci", "localhost/hello",
                      {"version": v, "os": os_name, "arch": arch}, payload=f"hello {v}\n")
        sign(p, keys.alice)
    (d / "alice.pub.asc").write_bytes(keys.alice.public().armored())
    return d


@pytest.fixture
def server(publisher: Path) -> Iterator[DiscoveryServer]:
    with DiscoveryServer(publisher) as srv:
        yield srv


@pytest.fixture
def tls_server(publisher: Path) -> Iterator[DiscoveryServer]:
    with DiscoveryServer(publisher, tls=True) as srv:
        yield srv


# --------------------------------------------------------------------------- scriptable pages

@dataclass
class Pages:
    """A loopback server answering from ``routes``: path (no query) -> (status, body, headers)."""

    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    log: list[tuple[str, int]] = field(default_factory=list)
    port: int = 0
    scheme: str = "http"
    ca_file: str | None = None

    def page(self, path: str, body: str | bytes, status: int = 200, **headers: str) -> None:
        self.routes[path] = (status, body.encode() if isinstance(body, str) else body, headers)

    def fixture(self, path: str, name: str, prefix: str = "localhost") -> None:
        """Serve one of Debian's appc meta0*.html with its prefix 'example.com' -> ``prefix``."""
        text = (FIXTURES / name).read_text().replace('content="example.com ', f'content="{prefix} ')
        self.page(path, text)

    def redirect(self, path: str, location: str, status: int = 301) -> None:
        self.routes[path] = (status, b"", {"Location": location})

    def paths(self) -> list[str]:
        return [p for p, _ in self.log]


@contextlib.contextmanager
def _pages_server(tls_dir: Path | None) -> Iterator[Pages]:
    pages = Pages()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            pages.log.append(("(malformed)", code))
            self.close_connection = True
            try:
                super().send_error(code, message, explain)
            except OSError:
                pass

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            status, body, headers = pages.routes.get(path, (404, b"not here\n", {}))
            pages.log.append((self.path, status))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    if tls_dir is not None:
        m = make_tls_material(tls_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(m.cert, m.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        pages.scheme, pages.ca_file = "https", str(m.ca_cert)
    pages.port = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield pages
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)


@pytest.fixture
def pages() -> Iterator[Pages]:
    with _pages_server(None) as p:
        yield p


@pytest.fixture
def tls_pages(tmp_path: Path) -> Iterator[Pages]:
    with _pages_server(tmp_path / "pages-tls") as p:
        yield p


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference tools must talk to loopback directly, never through a proxy."""
    for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
