"""`sandbox fetch` end to end against `sandbox serve` on loopback (http and https with the
throwaway CA): trust fails fast, identity is checked, tampering is refused, the HTTP cache
revalidates with ETag and honours max-age, local files use the signature beside them.

Image IDs are checked against an independent computation: SHA-512 of the gunzipped tar.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest

from sandbox._sys.platform import appc_os_arch as default_os_arch
from sandbox.dist import fetch
from sandbox.dist.serve import DiscoveryServer
from sandbox.image.aci import InvalidImage
from sandbox.image.manifest import ManifestError
from sandbox.image.store import Store
from sandbox.steps import Steps
from sandbox.trust import pgp
from sandbox.trust.truststore import TrustStore, UntrustedSigner

from .conftest import build_aci, sign

HTTP = "http"     # --insecure-options for the plain-HTTP lab server


def independent_id(path: Path) -> str:
    return "sha512-" + hashlib.sha512(gzip.decompress(path.read_bytes())).hexdigest()


def trust_alice(keys, prefix: str = "localhost/hello") -> None:
    TrustStore().add(prefix, keys.alice.public().armored())


# --------------------------------------------------------------------------- happy paths

def test_fetch_over_http_imports_the_highest_version_as_latest(state, keys, server, publisher) -> None:
    trust_alice(keys)
    steps = Steps()
    res = fetch.fetch("localhost/hello", options=HTTP, discovery_port=server.port, steps=steps)
    assert res.id == independent_id(publisher / "hello-1.2.0.aci")
    img = Store().get(res.id)
    assert img.labels["version"] == "1.2.0" and img.latest
    assert res.verification.primary_fingerprint == keys.alice.public().fingerprint
    # rkt's order: discovery page, then the signature, then the image
    served = [e.path.split("?")[0] for e in server.log if e.status == 200]
    base = "/aci/{}/{}/localhost/hello-latest".format(*default_os_arch())
    assert served == ["/hello", f"{base}.aci.asc", f"{base}.aci"]
    order = [(s.action, s.detail.get("purpose")) for s in steps
             if s.action in ("verify", "import") or (s.action == "http" and s.detail["status"] == 200)]
    assert order == [("http", "discovery"), ("http", "signature"), ("http", "image"),
                     ("verify", None), ("import", None)]


def test_fetch_over_https_with_the_throwaway_ca(state, keys, tls_server, publisher) -> None:
    trust_alice(keys)
    res = fetch.fetch("localhost/hello:1.0.0", discovery_port=tls_server.port,
                      ca_file=tls_server.ca_file)
    assert res.id == independent_id(publisher / "hello-1.0.0.aci")
    assert res.aci_url.startswith("https://localhost:")
    assert not Store().get(res.id).latest          # a version was asked for


def test_https_without_the_ca_is_refused_and_tls_option_skips_the_check(state, keys, tls_server) -> None:
    trust_alice(keys)
    with pytest.raises(Exception, match="certificate"):
        fetch.fetch("localhost/hello", discovery_port=tls_server.port)
    assert tls_server.served(".aci") == []
    res = fetch.fetch("localhost/hello", options="tls", discovery_port=tls_server.port)
    assert res.image.name == "localhost/hello"


def test_plain_http_needs_the_insecure_option(state, keys, server) -> None:
    trust_alice(keys)
    with pytest.raises(Exception) as e:
        fetch.fetch("localhost/hello", discovery_port=server.port)
    assert "--insecure-options=http" in str(e.value)
    assert [x for x in server.log if x.method == "GET"] == []      # only TLS hellos reached it


# --------------------------------------------------------------------------- trust: fail fast

def test_untrusted_fails_before_the_aci_download(state, keys, server) -> None:
    with pytest.raises(UntrustedSigner) as e:
        fetch.fetch("localhost/hello", options=HTTP, discovery_port=server.port)
    msg = str(e.value)
    assert "sandbox trust --prefix localhost/hello" in msg
    assert f"http://localhost:{server.port}/pubkeys/alice.pub.asc" in msg
    assert len(server.served(".aci.asc")) == 1
    assert server.served(".aci") == [], "the big download must not start for an untrusted signer"
    assert Store().list() == []


def test_key_trusted_for_another_prefix_or_a_stranger_does_not_count(state, keys, server) -> None:
    TrustStore().add("localhost/hell", keys.alice.public().armored())      # not a whole segment
    TrustStore().add("localhost/hello", keys.mallory.public().armored())   # wrong key
    with pytest.raises(UntrustedSigner):
        fetch.fetch("localhost/hello", options=HTTP, discovery_port=server.port)
    assert server.served(".aci") == []


def test_image_option_skips_signature_entirely(state, server, publisher) -> None:
    res = fetch.fetch("localhost/hello:1.0.0", options="image,http", discovery_port=server.port)
    assert res.verification is None and res.id == independent_id(publisher / "hello-1.0.0.aci")
    assert server.served(".aci.asc") == []


def test_tampered_aci_is_refused_and_not_imported(state, keys, server, publisher) -> None:
    """The mirror serves changed bytes (changed after the server read the manifest): the
    signature check over the bytes as served refuses them, before anything parses them."""
    trust_alice(keys)
    aci = publisher / "hello-1.0.0.aci"
    data = bytearray(aci.read_bytes())
    data[len(data) // 2] ^= 0x01
    aci.write_bytes(bytes(data))
    with pytest.raises(pgp.BadSignature):
        fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=server.port)
    assert len(server.served(".aci")) == 1
    assert Store().list() == []


# --------------------------------------------------------------------------- identity

def test_label_mismatch_is_refused_with_rkts_message(state, keys, publisher) -> None:
    trust_alice(keys)
    os_, arch = default_os_arch()
    base = f"/aci/{os_}/{arch}/localhost/hello"
    redirects = {f"{base}-2.0.aci": f"{base}-1.2.0.aci", f"{base}-2.0.aci.asc": f"{base}-1.2.0.aci.asc"}
    with DiscoveryServer(publisher, redirects=redirects) as srv:
        with pytest.raises(fetch.ImageMismatch) as e:
            fetch.fetch("localhost/hello:2.0", options=HTTP, discovery_port=srv.port)
    assert str(e.value) == ('requested value for label "version": "2.0" differs from fetched aci '
                            'label value: "1.2.0".')
    assert Store().list() == []


def test_name_mismatch_is_refused(state, keys, publisher) -> None:
    TrustStore().add("localhost", keys.alice.public().armored())
    other = build_aci(publisher / "other.aci", "localhost/other", {"version": "1.0.0"})
    sign(other, keys.alice)
    os_, arch = default_os_arch()
    base = f"/aci/{os_}/{arch}/localhost"
    redirects = {f"{base}/hello-9.aci": f"{base}/other-1.0.0.aci",
                 f"{base}/hello-9.aci.asc": f"{base}/other-1.0.0.aci.asc"}
    with DiscoveryServer(publisher, redirects=redirects) as srv:
        with pytest.raises(fetch.ImageMismatch, match='"localhost/hello" expected but "localhost/other"'):
            fetch.fetch("localhost/hello:9", options=HTTP, discovery_port=srv.port)


def test_requested_label_missing_from_manifest_is_refused_but_default_os_arch_are_lenient() -> None:
    with pytest.raises(fetch.ImageMismatch, match='requested label "channel"'):
        fetch.check_identity("a.com/x", {"version": "1"}, "a.com/x", {"channel": "beta"})
    fetch.check_identity("a.com/x", {"version": "1"}, "a.com/x", {"os": "linux", "arch": "amd64"},
                         optional=["os", "arch"])
    with pytest.raises(fetch.ImageMismatch, match='"arch": "amd64" differs'):
        fetch.check_identity("a.com/x", {"arch": "aarch64"}, "a.com/x", {"arch": "amd64"},
                             optional=["arch"])


# --------------------------------------------------------------------------- HTTP cache

def test_etag_revalidation_gives_304_and_the_same_image(state, keys, server) -> None:
    trust_alice(keys)
    first = fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=server.port)
    server.log.clear()
    steps = Steps()
    again = fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=server.port, steps=steps)
    assert again.id == first.id
    statuses = {e.path.split("?")[0].rsplit(".", 1)[-1]: e.status for e in server.log if e.method == "GET"}
    assert statuses == {"/hello": 200, "asc": 304, "aci": 304}
    assert [s.detail["result"] for s in steps.of("cache")] == ["revalidated", "revalidated"]
    assert [d.cache for d in again.downloads] == ["revalidated", "revalidated"]


def test_max_age_serves_from_cache_without_asking(state, keys, publisher) -> None:
    trust_alice(keys)
    with DiscoveryServer(publisher, max_age=300) as srv:
        first = fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=srv.port)
        srv.log.clear()
        again = fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=srv.port)
        assert again.id == first.id
        assert [e.path.split("?")[0] for e in srv.log if e.method == "GET"] == ["/hello"]
        assert [d.cache for d in again.downloads] == ["fresh", "fresh"]
        # without the cache every byte is fetched again
        srv.log.clear()
        fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=srv.port, cache=False)
        assert len(srv.served(".aci")) == 1


def test_republished_image_changes_etag_and_is_downloaded(state, keys, publisher) -> None:
    trust_alice(keys)
    with DiscoveryServer(publisher) as srv:
        first = fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=srv.port)
        os_, arch = default_os_arch()
        (publisher / "new").mkdir()
        new = build_aci(publisher / "new" / "hello-1.0.0.aci", "localhost/hello",
                        {"version": "1.0.0", "os": os_, "arch": arch}, payload="rebuilt\n")
        sign(new, keys.alice)
        (publisher / "hello-1.0.0.aci").unlink()
        (publisher / "hello-1.0.0.aci.asc").unlink()
        srv.rescan()
        srv.log.clear()
        again = fetch.fetch("localhost/hello:1.0.0", options=HTTP, discovery_port=srv.port)
        assert again.id == independent_id(new) != first.id
        assert len(srv.served(".aci")) == 1


# --------------------------------------------------------------------------- files and URLs

def test_local_file_uses_the_signature_beside_it(state, keys, publisher, tmp_path) -> None:
    trust_alice(keys)
    aci = publisher / "hello-1.0.0.aci"
    res = fetch.fetch(str(aci))
    assert res.source == "file" and res.id == independent_id(aci)
    assert res.asc_url == str(publisher / "hello-1.0.0.aci.asc")
    lone = tmp_path / "lone.aci"
    shutil.copy(aci, lone)
    with pytest.raises(fetch.FetchError, match="No signature beside"):
        fetch.fetch(str(lone))
    assert fetch.fetch(str(lone), options="image").id == res.id


def test_local_file_signed_by_untrusted_key_is_refused(state, keys, publisher, tmp_path) -> None:
    trust_alice(keys)
    aci = tmp_path / "m.aci"
    shutil.copy(publisher / "hello-1.0.0.aci", aci)
    sign(aci, keys.mallory)
    with pytest.raises(UntrustedSigner):
        fetch.fetch(str(aci))


def test_direct_url_fetch(state, keys, server, publisher) -> None:
    trust_alice(keys)
    os_, arch = default_os_arch()
    url = f"http://localhost:{server.port}/aci/{os_}/{arch}/localhost/hello-1.0.0.aci"
    res = fetch.fetch(url, options=HTTP)
    assert res.source == "url" and res.asc_url == url + ".asc"
    assert res.id == independent_id(publisher / "hello-1.0.0.aci")


def test_fetch_image_by_name_and_labels_for_rendering(state, keys, server, publisher) -> None:
    trust_alice(keys)
    img = fetch.fetch_image("localhost/hello", {"version": "1.0.0"}, options=HTTP,
                            discovery_port=server.port)
    assert img.id == independent_id(publisher / "hello-1.0.0.aci")


# --------------------------------------------------------------------------- options and CLI

def test_insecure_options_parse() -> None:
    o = fetch.InsecureOptions.parse("all-fetch")
    assert (o.image, o.tls, o.http, o.pubkey) == (True, True, True, True)
    o = fetch.InsecureOptions.parse("http,ondisk")
    assert (o.image, o.tls, o.http, o.pubkey) == (False, False, True, False)
    with pytest.raises(Exception, match="Unknown insecure option 'htp'"):
        fetch.InsecureOptions.parse("htp")


def test_cli_fetch_prints_the_id_and_refusals_are_one_line(state, keys, server, publisher, run_cli) -> None:
    rc, out, err = run_cli("fetch", "localhost/hello:1.0.0", "--insecure-options=http",
                           "--discovery-port", server.port)
    assert rc == 1 and "Traceback" not in err and "sandbox trust --prefix localhost/hello" in err
    trust_alice(keys)
    rc, out, err = run_cli("fetch", "localhost/hello:1.0.0", "--insecure-options=http",
                           "--discovery-port", server.port)
    assert rc == 0 and out.strip() == independent_id(publisher / "hello-1.0.0.aci")
    rc, out, err = run_cli("discover", "localhost/hello:1.0.0", "--insecure-options=http",
                           "--discovery-port", server.port)
    os_, arch = default_os_arch()
    assert rc == 0 and f"/aci/{os_}/{arch}/localhost/hello-1.0.0.aci," in out


def test_sequence_diagram_follows_the_recorded_steps(state, keys, server) -> None:
    from sandbox.viz.discovery import fetch_sequence
    steps = Steps()
    with pytest.raises(UntrustedSigner):
        fetch.fetch("localhost/hello", options=HTTP, discovery_port=server.port, steps=steps)
    src = fetch_sequence(steps).source
    assert f"localhost:{server.port}" in src and "trust store" in src
    assert "NOT trusted: stop" in src and "image store" not in src     # it stopped before import
    gets = [line for line in src.splitlines() if "GET /" in line]
    assert [("asc" in g, "ac-discovery" in g) for g in gets if "aci" in g or "discovery" in g][-2:] \
        == [(False, True), (True, False)]


@pytest.mark.parametrize("tls", [False, True])
def test_the_suggested_trust_command_fixes_the_refusal(state, publisher, run_cli, tls) -> None:
    """Copy the `sandbox trust ...` command out of the refusal, run it (with --yes), fetch again."""
    import re
    import shlex
    with DiscoveryServer(publisher, tls=tls) as srv:
        flags = ["--ca-file", srv.ca_file] if tls else ["--insecure-options=http"]
        rc, _, err = run_cli("fetch", "localhost/hello", "--discovery-port", srv.port, *flags)
        assert rc == 1
        cmd = shlex.split(re.search(r"`(sandbox trust [^`]+)`", err).group(1))
        rc, out, err2 = run_cli(*cmd[1:], "--yes")
        assert rc == 0, err2
        assert "Added key for prefix 'localhost/hello'" in out
        rc, out, err = run_cli("fetch", "localhost/hello", "--discovery-port", srv.port, *flags)
        assert rc == 0 and out.strip() == independent_id(publisher / "hello-1.2.0.aci"), err


@pytest.mark.parametrize("where", [0.3, 0.5, -20, -5])
def test_tampered_local_file_is_refused_with_a_sentence(state, keys, publisher, tmp_path, where) -> None:
    """A local file's keyring needs its manifest name, so the archive is read first: whatever
    the flipped byte breaks (deflate data, gzip CRC, tar header), the answer is a refusal."""
    from sandbox.errors import SandboxError
    trust_alice(keys)
    aci = tmp_path / "t.aci"
    data = bytearray((publisher / "hello-1.0.0.aci").read_bytes())
    data[int(len(data) * where) if isinstance(where, float) else where] ^= 0x01
    aci.write_bytes(bytes(data))
    shutil.copy(publisher / "hello-1.0.0.aci.asc", tmp_path / "t.aci.asc")
    with pytest.raises(SandboxError) as e:
        fetch.fetch(str(aci))
    # a flipped bit in the manifest name changes the keyring (UntrustedSigner); elsewhere the
    # signature (BadSignature) or the archive itself (FetchError, InvalidImage) fails
    assert isinstance(e.value, (pgp.SignatureError, fetch.FetchError, InvalidImage, ManifestError)), \
        repr(e.value)
    assert Store().list() == []
