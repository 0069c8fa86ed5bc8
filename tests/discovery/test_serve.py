"""`sandbox serve`: loopback only, what it publishes, clean shutdown, throwaway TLS."""
from __future__ import annotations

import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from sandbox._sys import platform
from sandbox.dist import discovery as d
from sandbox.dist.serve import DiscoveryServer, make_tls_material

from .conftest import build_aci


def _get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, bytes, dict[str, str]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_binds_loopback_only_and_stops_cleanly(publisher: Path) -> None:
    srv = DiscoveryServer(publisher)
    port = srv.start()
    try:
        host, bound = srv._httpd.socket.getsockname()
        assert (host, bound) == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    srv.stop()   # idempotent


def test_discovery_page_has_tags_for_its_prefix_and_404_elsewhere(server) -> None:
    status, body, _ = _get(f"http://localhost:{server.port}/hello?ac-discovery=1")
    tags = d.parse_meta(body)
    assert status == 200
    assert [(t.name, t.prefix) for t in tags] == [("ac-discovery", "localhost/hello"),
                                                  ("ac-discovery-pubkeys", "localhost/hello")]
    assert tags[0].uri == f"http://localhost:{server.port}/aci/{{os}}/{{arch}}/{{name}}-{{version}}.{{ext}}"
    assert _get(f"http://localhost:{server.port}/nothing?ac-discovery=1")[0] == 404
    # the root page covers every name (prefix "localhost")
    assert {t.prefix for t in d.parse_meta(_get(f"http://localhost:{server.port}/?ac-discovery=1")[1])} \
        == {"localhost"}


def test_latest_is_the_highest_version_unless_one_is_labelled_latest(publisher, keys) -> None:
    os_, arch = platform.appc_os_arch()
    for v in ("1.10.0", "1.9.0"):
        build_aci(publisher / f"hello-{v}.aci", "localhost/hello", {"version": v, "os": os_, "arch": arch})
    with DiscoveryServer(publisher) as srv:
        assert srv.find("localhost/hello", {"version": "latest", "os": os_, "arch": arch}).labels["version"] \
            == "1.10.0"                                    # numeric, not string, order
        build_aci(publisher / "hello-l.aci", "localhost/hello", {"version": "latest"})
        srv.rescan()
        assert srv.find("localhost/hello", {"version": "latest", "os": os_, "arch": arch}).path.name \
            == "hello-l.aci"                               # no os/arch label: serves any
        assert srv.find("localhost/hello", {"version": "3.0", "os": os_, "arch": arch}) is None
        assert srv.find("localhost/hello", {"version": "1.0.0", "os": os_, "arch": "s390x"}) is None


def test_signature_and_keys_are_served_with_etag_and_304(server, publisher) -> None:
    os_, arch = platform.appc_os_arch()
    url = f"http://localhost:{server.port}/aci/{os_}/{arch}/localhost/hello-1.0.0.aci.asc"
    status, body, headers = _get(url)
    assert status == 200 and body == (publisher / "hello-1.0.0.aci.asc").read_bytes()
    req = urllib.request.Request(url, headers={"If-None-Match": headers["ETag"]})
    assert _get(req)[0] == 304   # type: ignore[arg-type]
    status, body, _ = _get(f"http://localhost:{server.port}/pubkeys/alice.pub.asc")
    assert status == 200 and body == (publisher / "alice.pub.asc").read_bytes()
    assert server.problems == []


def test_unreadable_aci_is_reported_not_fatal(publisher) -> None:
    (publisher / "broken.aci").write_bytes(b"not a tar")
    with DiscoveryServer(publisher) as srv:
        assert srv.names == ["localhost/hello"]
        assert len(srv.problems) == 1 and srv.problems[0].startswith("broken.aci")


def test_tls_material_verifies_with_openssl_and_cert_dir_is_removed(publisher, tmp_path) -> None:
    m = make_tls_material(tmp_path / "tls")
    out = subprocess.run(["openssl", "verify", "-CAfile", str(m.ca_cert), str(m.cert)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), out.stderr
    cert = x509.load_pem_x509_certificate(m.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert (m.key.stat().st_mode & 0o777) == 0o600
    srv = DiscoveryServer(publisher, tls=True)
    srv.start()
    ca = Path(srv.ca_file)
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
        assert _get(f"https://localhost:{srv.port}/hello?ac-discovery=1", ctx)[0] == 200
        assert _get(f"https://127.0.0.1:{srv.port}/", ctx)[0] == 200     # the IP SAN
    finally:
        srv.stop()
    assert not ca.parent.exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_cli_serve_runs_until_interrupted_and_stops_cleanly(state, keys, publisher, tmp_path, sig) -> None:
    """`sandbox serve DIR --tls` as a real process: prints the URL and CA path, serves a fetch,
    and exits 0 on Ctrl-C (or SIGTERM) with its port closed."""
    import re
    import signal
    import sys
    sig = getattr(signal, sig)

    from sandbox.dist import fetch
    from sandbox.trust.truststore import TrustStore

    cert_dir = tmp_path / "certs"
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", str(publisher), "--tls",
                             "--cert-dir", str(cert_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        port = int(re.search(r"https://localhost:(\d+)", text).group(1))
        assert f"CA certificate: {cert_dir / 'ca.pem'}" in text
        assert f"Try: sandbox fetch localhost/hello --discovery-port {port} --ca-file {cert_dir / 'ca.pem'}" in text
        TrustStore().add("localhost/hello", keys.alice.public().armored())
        res = fetch.fetch("localhost/hello:1.0.0", discovery_port=port, ca_file=str(cert_dir / "ca.pem"))
        assert res.image.labels["version"] == "1.0.0"
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert "Stopped." in proc.stderr.read()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_static_site_is_served_as_it_is_and_never_outside_it(tmp_path: Path) -> None:
    """static=True (lab 9): URL path = file path under the site, a directory answers its
    index.html, ETag/304 work, and nothing outside the site is reachable — neither by '..' nor
    through a symlink the site holds."""
    site = tmp_path / "site"
    (site / "a" / "b").mkdir(parents=True)
    (site / "a" / "b" / "index.html").write_text('<meta name="ac-discovery" content="x y">')
    (site / "a" / "f.aci").write_bytes(b"\x1f\x8bnot really")
    (site / "a" / "link").symlink_to("/etc/hostname")
    (site / "a" / "up").symlink_to("../../..")
    with DiscoveryServer(site, static=True) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        page = urllib.request.urlopen(f"{base}/a/b?ac-discovery=1")
        assert page.read() == b'<meta name="ac-discovery" content="x y">'
        assert page.headers["Content-Type"].startswith("text/html")
        r = urllib.request.urlopen(f"{base}/a/f.aci")
        assert r.headers["Content-Type"] == "application/vnd.appc.aci"
        etag = r.headers["ETag"]
        req = urllib.request.Request(f"{base}/a/f.aci", headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 304
        for path in ("/a/link", "/a/up/etc/hostname", "/../etc/hostname", "/%2e%2e/etc/hostname",
                     "/a", "/nope", "/a/f.aci%00"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"{base}{path}")
            assert e.value.code == 404, path
        assert [(x.path, x.status) for x in srv.log][:2] == [("/a/b?ac-discovery=1", 200), ("/a/f.aci", 200)]
