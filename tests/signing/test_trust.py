"""The trust store (rkt's layout) and the `sandbox trust` / key / sign / verify commands."""
from __future__ import annotations

import http.server
import json
import os
import pty
import select
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox.trust import pgp
from sandbox.trust import truststore as trust

from .conftest import needs_gpg

ALICE = pgp.generate_key("Alice <alice@example.com>", bits=2048)
MALLORY = pgp.generate_key("Mallory <mallory@example.com>", bits=2048)
SANDBOX = Path(sys.executable).parent / "sandbox"


@pytest.fixture
def store(tmp_path: Path) -> trust.TrustStore:
    return trust.TrustStore(tmp_path / "trustedkeys", tmp_path / "system")


def make_aci(tmp_path: Path, name: str = "example.com/app") -> Path:
    from sandbox.image import aci
    layout = tmp_path / "layout"
    (layout / "rootfs" / "etc").mkdir(parents=True)
    (layout / "rootfs" / "etc" / "hello").write_text("hello\n")
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}]}))
    out = tmp_path / "app-1.0.0.aci"
    aci.build(layout, out)
    return out


# ---------------------------------------------------------------- layout and keyrings


def test_add_writes_rkt_layout(store: trust.TrustStore) -> None:
    path = store.add("example.com/app", ALICE.public().armored())
    assert path == store.root / "prefix.d" / "example.com" / "app" / ALICE.fingerprint
    assert path.read_bytes() == ALICE.public().armored()       # stored as given
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    root = store.add(None, MALLORY.public().armored(), root=True)
    assert root == store.root / "root.d" / MALLORY.fingerprint
    # binary keys are stored armored
    p2 = trust.TrustStore(store.root.parent / "b").add("b.org", ALICE.public().to_bytes())
    assert pgp.is_armored(p2.read_bytes())


def test_whole_segment_prefixes(store: trust.TrustStore) -> None:
    store.add("a.com/fo", ALICE.public().armored())
    fprs = lambda name: {c.fingerprint for c in store.keyring_for(name)}
    assert fprs("a.com/fo") == {ALICE.fingerprint}
    assert fprs("a.com/fo/bar") == {ALICE.fingerprint}
    assert fprs("a.com/foo") == set()           # rkt's string-prefix walk would include it
    assert fprs("a.com") == set()
    assert not store.has_key_for("a.com/foo") and store.has_key_for("a.com/fo/x")
    store.add(None, MALLORY.public().armored(), root=True)
    assert fprs("a.com/foo") == {MALLORY.fingerprint}
    assert trust.prefixes_of("a.com/x/y") == ["a.com", "a.com/x", "a.com/x/y"]


def test_system_keys_and_masking(store: trust.TrustStore) -> None:
    sysdir = store.system_root / "prefix.d" / "example.com"
    sysdir.mkdir(parents=True)
    (sysdir / ALICE.fingerprint).write_bytes(ALICE.public().armored())
    assert [c.fingerprint for c in store.keyring_for("example.com/app")] == [ALICE.fingerprint]
    (changed,) = store.remove(ALICE.fingerprint)
    assert changed == store.root / "prefix.d" / "example.com" / ALICE.fingerprint
    assert changed.read_bytes() == b"" and (sysdir / ALICE.fingerprint).exists()   # system dir untouched
    assert store.keyring_for("example.com/app") == []
    assert [k.masked for k in store.list()] == [False, True]


def test_file_name_must_be_the_fingerprint(store: trust.TrustStore) -> None:
    d = store.root / "prefix.d" / "example.com"
    d.mkdir(parents=True)
    (d / MALLORY.fingerprint).write_bytes(ALICE.public().armored())
    with pytest.raises(trust.TrustError, match="holds key"):
        store.keyring_for("example.com/app")


def test_bad_requests_are_refused(store: trust.TrustStore) -> None:
    key = ALICE.public().armored()
    with pytest.raises(trust.TrustError, match="implicit unbounded trust"):
        store.add(None, key)
    with pytest.raises(trust.TrustError, match="looks like a URL"):
        store.add("https://example.com/app", key)
    with pytest.raises(trust.TrustError, match="not an image name prefix"):
        store.add("Example.com/../x", key)
    with pytest.raises(trust.TrustError, match="not trusted"):
        store.remove(ALICE.fingerprint)
    with pytest.raises(trust.TrustError, match="40-hex"):
        store.remove("abc")


def test_remove_by_prefix(store: trust.TrustStore) -> None:
    store.add("a.com", ALICE.public().armored())
    store.add("b.com", ALICE.public().armored())
    store.remove(pgp.group_fingerprint(ALICE.fingerprint), "a.com")
    assert [(k.prefix, k.fingerprint) for k in store.list()] == [("b.com", ALICE.fingerprint)]


# ---------------------------------------------------------------- fail fast and verify_image


def test_check_signer_fails_fast_without_the_data(store: trust.TrustStore) -> None:
    sig = pgp.sign(b"big image bytes", MALLORY)
    store.add("example.com", ALICE.public().armored())
    with pytest.raises(trust.UntrustedSigner) as e:
        store.check_signer(sig, "example.com/app")
    assert "sandbox trust --prefix example.com/app" in str(e.value)
    assert pgp.group_fingerprint(MALLORY.fingerprint) in str(e.value)
    store.add("example.com/app", MALLORY.public().armored())
    assert store.check_signer(sig, "example.com/app") == MALLORY.fingerprint


def test_verify_image_uses_the_manifest_name(store: trust.TrustStore, tmp_path: Path) -> None:
    aci = make_aci(tmp_path, "example.com/app")
    trust.signature_path_for(aci).write_bytes(pgp.sign(aci, ALICE))
    store.add("example.com/other", ALICE.public().armored())
    with pytest.raises(trust.UntrustedSigner, match="example.com/app"):
        store.verify_image(aci)
    store.add("example.com/app", ALICE.public().armored())
    v = store.verify_image(aci)
    assert v.primary_fingerprint == ALICE.fingerprint
    # Mallory re-packs the image and signs it with her key; Bob trusts only Alice for the prefix
    data = bytearray(aci.read_bytes())
    data[len(data) // 2] ^= 0xFF
    aci.write_bytes(bytes(data))
    with pytest.raises(pgp.BadSignature):
        store.verify_image(aci)
    # Mallory builds her own image under the same name and signs it with her key
    (tmp_path / "mallory").mkdir()
    evil = make_aci(tmp_path / "mallory", "example.com/app")
    trust.signature_path_for(evil).write_bytes(pgp.sign(evil, MALLORY))
    with pytest.raises(trust.UntrustedSigner, match="sandbox trust --prefix example.com/app"):
        store.verify_image(evil)


# ---------------------------------------------------------------- key URLs (loopback only)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a) -> None:
        pass


@pytest.fixture
def key_server(tmp_path: Path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "alice.asc").write_bytes(ALICE.public().armored())
    handler = lambda *a, **kw: _Quiet(*a, directory=str(tmp_path / "www"), **kw)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_fetch_key_http_needs_explicit_permission(key_server: str) -> None:
    with pytest.raises(trust.TrustError, match="plain http"):
        trust.fetch_key(f"{key_server}/alice.asc")
    assert trust.fetch_key(f"{key_server}/alice.asc", insecure_allow_http=True) == ALICE.public().armored()
    with pytest.raises(trust.TrustError, match="Could not fetch"):
        trust.fetch_key(f"{key_server}/missing.asc", insecure_allow_http=True)


def test_fetch_key_https_checks_the_certificate(key_server: str) -> None:
    # a plain-http server on that port: the TLS handshake fails, with a sentence, not a traceback
    url = key_server.replace("http://", "https://") + "/alice.asc"
    with pytest.raises(trust.TrustError, match="Could not fetch the key"):
        trust.fetch_key(url, timeout=5)


# ---------------------------------------------------------------- the CLI


def test_cli_trust_requires_yes_without_a_tty(run_cli, sandbox_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(tmp_path / "nosys"))
    kf = tmp_path / "alice.asc"
    kf.write_bytes(ALICE.public().armored())
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    rc, out, err = run_cli("trust", "--prefix", "example.com", kf)
    assert rc == 1 and "Traceback" not in err
    # one sentence: why nothing happened, and the same command with --yes
    assert err.count("\n") == 1 and err.startswith("sandbox: No terminal to ask on")
    assert err.rstrip().endswith("run the same command with --yes.")
    assert pgp.group_fingerprint(ALICE.fingerprint) in out
    assert not (sandbox_dir / "trustedkeys").exists()
    rc, out, err = run_cli("trust", kf, "--yes")
    assert rc == 2 and "implicit unbounded trust" in err
    rc, out, err = run_cli("trust", "--prefix", "example.com", kf, "--yes")
    assert rc == 0, err
    assert (sandbox_dir / "trustedkeys" / "prefix.d" / "example.com" / ALICE.fingerprint).is_file()
    rc, out, _ = run_cli("trust", "--list")
    assert ALICE.fingerprint in out and "prefix example.com" in out and "Alice" in out
    rc, out, _ = run_cli("trust", "--rm", ALICE.fingerprint)
    assert rc == 0 and not list((sandbox_dir / "trustedkeys").rglob(ALICE.fingerprint))


def test_cli_trust_asks_on_a_terminal(tmp_path: Path) -> None:
    """Interactive: a real pty, answers 'maybe' (asked again) then 'y' (yes)."""
    kf = tmp_path / "alice.asc"
    kf.write_bytes(ALICE.public().armored())
    env = dict(os.environ, SANDBOX_DIR=str(tmp_path / "state"), SANDBOX_SYSTEM_TRUSTEDKEYS=str(tmp_path / "ns"))
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(SANDBOX), "trust", "--root", str(kf)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        def wait_for(text: bytes) -> None:
            nonlocal seen
            deadline = time.time() + 60
            while text not in seen and time.time() < deadline:
                r, _, _ = select.select([master], [], [], 1)
                if r:
                    try:
                        seen += os.read(master, 4096)
                    except OSError:
                        break
            assert text in seen, seen.decode(errors="replace")
        wait_for(b"(yes/no)?")
        os.write(master, b"maybe\n")
        wait_for(b"Please answer yes or no.")
        os.write(master, b"y\n")
        wait_for(b"Added key for root")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert b"Are you sure you want to trust this key" in seen
    assert (tmp_path / "state" / "trustedkeys" / "root.d" / ALICE.fingerprint).is_file()


@needs_gpg
def test_cli_key_gen_sign_verify_inspect(run_cli, sandbox_dir: Path, tmp_path: Path, gnupg, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(tmp_path / "nosys"))
    keys = tmp_path / "keys"
    rc, out, err = run_cli("key", "gen", "--uid", "Alice <alice@example.com>", "--out", keys, "--bits", "2048")
    assert rc == 0, err
    sec, pub = keys / "alice.secret.asc", keys / "alice.public.asc"
    assert oct(sec.stat().st_mode & 0o777) == "0o600" and pgp.LAB_KEY_COMMENT in sec.read_text()
    fpr = pgp.read_keys(pub.read_bytes())[0].fingerprint
    assert pgp.group_fingerprint(fpr) in out

    aci = make_aci(tmp_path)
    rc, out, err = run_cli("sign", aci, "--key", sec)
    assert rc == 0, err
    asc = Path(str(aci) + ".asc")
    assert asc.is_file() and pgp.is_armored(asc.read_bytes())
    # gpg agrees
    gnupg.import_(pub.read_bytes())
    assert gnupg.verify(asc.read_bytes(), aci)[0] == "good"

    rc, out, err = run_cli("verify", aci)
    assert rc == 1 and "sandbox trust --prefix example.com/app" in err and "Traceback" not in err
    assert run_cli("trust", "--prefix", "example.com", pub, "--yes")[0] == 0
    rc, out, err = run_cli("verify", aci)
    assert rc == 0 and "Good signature for example.com/app" in out and "Alice" in out, err

    rc, out, err = run_cli("sign", aci, "--key", sec, "--binary")
    assert rc == 0 and Path(str(aci) + ".sig").is_file()
    assert run_cli("verify", aci, "--signature", Path(str(aci) + ".sig"))[0] == 0

    rc, out, _ = run_cli("inspect-signature", asc)
    assert "packet 2 Signature" in out and "0x00 binary document" in out and fpr.upper() in out
    listed = gnupg.run("--list-packets", str(asc)).stdout.decode()
    assert listed.count(":signature packet:") == out.count("packet 2 Signature") == 1

    with open(aci, "r+b") as f:       # tamper
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    rc, out, err = run_cli("verify", aci)
    assert rc == 1 and "does not match the signature" in err

    rc, out, err = run_cli("sign", aci, "--key", pub)
    assert rc == 1 and "no secret key" in err


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (it is its own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sbx test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(k, hashes.SHA256()))
    cpath, kpath = tmp_path / "cert.pem", tmp_path / "key.pem"
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpath.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return cpath, kpath


def test_fetch_key_over_https_with_a_ca_file(tmp_path: Path, run_cli, sandbox_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(tmp_path / "nosys"))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "alice.asc").write_bytes(ALICE.public().armored())
    cpath, kpath = _self_signed(tmp_path)
    handler = lambda *a, **kw: _Quiet(*a, directory=str(tmp_path / "www"), **kw)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cpath, kpath)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    url = f"https://127.0.0.1:{srv.server_address[1]}/alice.asc"
    try:
        with pytest.raises(trust.TrustError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            trust.fetch_key(url, timeout=10)
        assert trust.fetch_key(url, ca_file=str(cpath), timeout=10) == ALICE.public().armored()
        rc, out, err = run_cli("trust", "--prefix", "example.com", url, "--ca-file", cpath, "--yes")
        assert rc == 0, err
        assert (sandbox_dir / "trustedkeys" / "prefix.d" / "example.com" / ALICE.fingerprint).is_file()
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_key_without_valid_self_signature_is_not_stored(store: trust.TrustStore) -> None:
    cert = ALICE.public()
    forged = pgp.PublicKey(cert.primary, [], [pgp.UserID("Eve <eve@example.com>", b"Eve <eve@example.com>",
                                                         list(cert.user_ids[0].sigs))], [])
    with pytest.raises(trust.TrustError, match="no valid self-signature"):
        store.add("example.com", forged.armored())
    assert store.list() == []


def test_cli_trust_discovers_keys_for_a_prefix(run_cli, sandbox_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """rkt trust --prefix P with no key: ac-discovery-pubkeys meta discovery (loopback server)."""
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(tmp_path / "nosys"))
    www = tmp_path / "www"
    (www / "app").mkdir(parents=True)
    (www / "alice.asc").write_bytes(ALICE.public().armored())
    handler = lambda *a, **kw: _Quiet(*a, directory=str(www), **kw)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = srv.server_address[1]
    (www / "app" / "index.html").write_text(
        f'<html><head><meta name="ac-discovery-pubkeys" content="127.0.0.1/app '
        f'http://127.0.0.1:{port}/alice.asc"></head></html>')
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        rc, out, err = run_cli("trust", "--prefix", "127.0.0.1/app", "--discovery-port", port, "--yes")
        assert rc != 0 and "Traceback" not in err            # https first: a plain-http server fails TLS
        rc, out, err = run_cli("trust", "--prefix", "127.0.0.1/app", "--discovery-port", port,
                               "--insecure-allow-http", "--yes")
        assert rc == 0, err
        assert f"http://127.0.0.1:{port}/alice.asc" in out
        assert (sandbox_dir / "trustedkeys" / "prefix.d" / "127.0.0.1" / "app" / ALICE.fingerprint).is_file()
    finally:
        srv.shutdown()
        srv.server_close()


def test_cli_trust_refuses_a_secret_key_file(run_cli, sandbox_dir: Path, tmp_path: Path,
                                             monkeypatch) -> None:
    """`sandbox trust` once read the public part of a SECRET key file and stored the file as
    given, secret and all, in the world-readable trust store. Now: one sentence, nothing stored."""
    monkeypatch.setenv("SANDBOX_SYSTEM_TRUSTEDKEYS", str(tmp_path / "nosys"))
    assert run_cli("key", "gen", "--uid", "Alice <alice@example.com>", "--out", tmp_path / "keys",
                   "--type", "ed25519")[0] == 0
    secret = tmp_path / "keys" / "alice.secret.asc"
    for argv in (["--prefix", "example.com", secret, "--yes"], ["--root", secret, "--yes"]):
        rc, out, err = run_cli("trust", *argv)
        assert rc == 1 and "Traceback" not in err
        assert err.startswith(f"sandbox: {secret} holds a SECRET key") and err.count("\n") == 1
        assert "alice.public.asc" not in err and "public key file" in err
    assert not [p for p in (sandbox_dir / "trustedkeys").rglob("*") if p.is_file()]
    with pytest.raises(trust.TrustError, match="SECRET key"):      # the library refuses too
        trust.TrustStore().add("example.com", secret.read_bytes())
    rc, out, err = run_cli("trust", "--prefix", "example.com", tmp_path / "keys" / "alice.public.asc",
                           "--yes")
    assert rc == 0, err


def test_missing_key_and_signature_files_say_what_to_do(run_cli, sandbox_dir: Path,
                                                        tmp_path: Path) -> None:
    aci = tmp_path / "x.aci"
    aci.write_bytes(b"")
    for argv, start, todo in (
            (["sign", aci, "--key", tmp_path / "nope.asc"], "The secret key file", "sandbox key gen"),
            (["trust", "--prefix", "example.com", tmp_path / "nope.asc", "--yes"], "The key file",
             "sandbox key gen"),
            (["verify", aci, "--keyring", tmp_path / "nope.asc"], "The key file", "NAME.public.asc"),
            (["inspect-signature", tmp_path], "The file", "give a signature")):
        rc, out, err = run_cli(*argv)
        assert rc != 0 and err.count("\n") == 1, err
        assert err.startswith(f"sandbox: {start} ") and todo in err, err
