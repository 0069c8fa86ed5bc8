"""rkt's own verifier as an oracle: Go's x/crypto/openpgp (Debian golang-golang-x-crypto-dev),
called as rkt's keystore calls it, built offline from tests/signing/rktverify."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.config import project_root
from sandbox.trust import pgp

SRC = Path(__file__).parent / "rktverify"
XCRYPTO = Path("/usr/share/gocode/src/golang.org/x/crypto/openpgp")


@pytest.fixture(scope="module")
def rktverify(tmp_path_factory) -> Path:
    if shutil.which("go") is None or not XCRYPTO.is_dir():
        pytest.skip("needs golang-go and golang-golang-x-crypto-dev (provision/packages/signing.txt)")
    gopath = tmp_path_factory.mktemp("gopath")
    # a GOPATH with Debian's sources plus our one-file program, built offline (no modules)
    (gopath / "src").mkdir()
    for entry in Path("/usr/share/gocode/src").iterdir():
        (gopath / "src" / entry.name).symlink_to(entry)
    shutil.copytree(SRC, gopath / "src" / "rktverify")
    out = gopath / "rktverify.bin"
    env = dict(os.environ, GOPATH=str(gopath), GO111MODULE="off", GOPROXY="off", CGO_ENABLED="0",
               GOCACHE=str(project_root() / ".tools" / "gocache"))
    subprocess.run(["go", "build", "-o", str(out), "rktverify"], env=env, check=True, timeout=600,
                   capture_output=True)
    return out


def run(tool: Path, keyring: bytes, data: Path, sig: bytes, tmp: Path) -> tuple[int, str]:
    (tmp / "ring.asc").write_bytes(keyring)
    (tmp / "sig").write_bytes(sig)
    p = subprocess.run([str(tool), str(tmp / "ring.asc"), str(data), str(tmp / "sig")],
                       capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode().strip()


@pytest.mark.parametrize("armored", [True, False])
def test_rkt_accepts_our_rsa_signatures(rktverify: Path, payload: Path, tmp_path: Path, armored: bool) -> None:
    k = pgp.generate_key("Alice <alice@example.com>", bits=2048)
    sig = pgp.sign(payload, k, armored=armored)
    rc, out = run(rktverify, k.public().armored(), payload, sig, tmp_path)
    assert (rc, out) == (0, f"GOOD {k.fingerprint}")
    payload.write_bytes(payload.read_bytes() + b"!")
    rc, out = run(rktverify, k.public().armored(), payload, sig, tmp_path)
    assert rc == 1 and out.startswith("BAD")


def test_rkt_accepts_signing_subkeys(rktverify: Path, payload: Path, tmp_path: Path) -> None:
    k = pgp.add_subkey(pgp.generate_key("Sub <sub@example.com>", bits=2048, flags=pgp.FLAG_CERTIFY), bits=2048)
    rc, out = run(rktverify, k.public().armored(), payload, pgp.sign(payload, k), tmp_path)
    assert (rc, out) == (0, f"GOOD {k.fingerprint}")


def test_rkt_cannot_read_ed25519_keys(rktverify: Path, payload: Path, tmp_path: Path) -> None:
    """Why `sandbox key gen` defaults to RSA."""
    k = pgp.generate_key("Ed <ed@example.com>", "ed25519")
    rc, out = run(rktverify, k.public().armored(), payload, pgp.sign(payload, k), tmp_path)
    assert rc == 3 and "public key type: 22" in out


def test_what_rkt_checks_about_key_lifetime(rktverify: Path, payload: Path, tmp_path: Path) -> None:
    """rkt's x/crypto/openpgp judges expiry at signing time (accepts), and treats a revoked key as
    unknown (refuses); gpg and we refuse both. Recorded so docs/signing.md stays true."""
    import time
    now = int(time.time())
    old = pgp.generate_key("Old <old@example.com>", bits=2048, created=now - 10 * 86400, expires=86400)
    sig = pgp.sign(payload, old, created=now - 10 * 86400 + 3600)
    assert run(rktverify, old.public().armored(), payload, sig, tmp_path)[0] == 0
    with pytest.raises(pgp.KeyExpired):
        pgp.verify(payload, sig, [old.public()])
    k = pgp.generate_key("Rev <rev@example.com>", bits=2048)
    sig = pgp.sign(payload, k)
    revoked = pgp.revoke(k, "compromised", code=2).public()
    rc, out = run(rktverify, revoked.armored(), payload, sig, tmp_path)
    assert rc == 1 and "unknown entity" in out
    with pytest.raises(pgp.KeyRevoked):
        pgp.verify(payload, sig, [revoked])
