"""Helpers for the signing tests: a throwaway GnuPG home per use, and its verdicts.

gpg's verdict is read from ``--status-fd`` (doc/DETAILS in GnuPG): exactly one of GOODSIG,
BADSIG, EXPKEYSIG, REVKEYSIG, EXPSIG or ERRSIG (with NO_PUBKEY) per signature.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

GPG = shutil.which("gpg")
needs_gpg = pytest.mark.skipif(GPG is None, reason="Debian's gnupg is not installed (provision/packages/base.txt)")


class GnuPG:
    """One temporary GNUPGHOME (short path: gpg-agent's socket must fit in sun_path)."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="sbxgpg"))
        self.home.chmod(0o700)

    def run(self, *args: str, input: bytes | None = None, faked: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        cmd = [GPG, "--homedir", str(self.home), "--batch", "--no-tty", "--pinentry-mode", "loopback",
               "--passphrase", ""]
        if faked:
            cmd += ["--faked-system-time", faked]
        p = subprocess.run(cmd + list(args), input=input, capture_output=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
        return p

    def fpr(self, who: str) -> str:
        out = self.run("--with-colons", "--list-keys", who).stdout.decode()
        return next(l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")).lower()

    def subkey_fprs(self, who: str) -> list[str]:
        out = self.run("--with-colons", "--list-keys", who).stdout.decode().splitlines()
        return [out[i + 1].split(":")[9].lower() for i, l in enumerate(out) if l.startswith("sub:")]

    def gen(self, uid: str, algo: str = "rsa2048", usage: str = "sign", expire: str = "never",
            faked: str | None = None) -> str:
        self.run("--quick-gen-key", uid, algo, usage, expire, faked=faked)
        return self.fpr(uid)

    def export(self, who: str, secret: bool = False, armor: bool = True) -> bytes:
        args = (["--armor"] if armor else []) + ["--export-secret-keys" if secret else "--export", who]
        return self.run(*args).stdout

    def import_(self, data: bytes) -> subprocess.CompletedProcess:
        return self.run("--import", input=data, check=False)

    def sign(self, path: Path, key: str, *, armor: bool = True, faked: str | None = None,
             digest: str | None = None) -> bytes:
        args = ["--local-user", key, "--detach-sign", "--output", "-"]
        if armor:
            args.insert(0, "--armor")
        if digest:
            args = ["--digest-algo", digest] + args
        return self.run(*args, str(path), faked=faked).stdout

    def verify(self, sig: bytes, data: Path) -> tuple[str, str]:
        """(verdict, status text): good | bad | expired | revoked | sig-expired | unknown | unusable | error.

        ERRSIG without NO_PUBKEY means gpg has the key but cannot use it (e.g. 125: not a
        signing key; 1: a signing subkey that is not cross-certified)."""
        sig_path = self.home / "check.sig"
        sig_path.write_bytes(sig)
        from sandbox.trust import gnupg
        p = self.run("--status-fd", "1", "--verify", str(sig_path), str(data), check=False)
        status = p.stdout.decode("utf-8", errors="replace")   # notations may not be UTF-8
        verdict = gnupg.verdict(gnupg.parse_status(status))
        return verdict, status if verdict != "error" else status + p.stderr.decode(errors="replace")

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def gnupg():
    g = GnuPG()
    try:
        yield g
    finally:
        g.close()


def our_verdict(exc_or_none: BaseException | None) -> str:
    from sandbox.trust import pgp
    if exc_or_none is None:
        return "good"
    for cls, verdict in ((pgp.BadSignature, "bad"), (pgp.KeyExpired, "expired"), (pgp.KeyRevoked, "revoked"),
                         (pgp.SignatureExpired, "sig-expired"), (pgp.UnknownSigner, "unknown"),
                         (pgp.InvalidKey, "unusable"), (pgp.NotSigningKey, "unusable")):
        if isinstance(exc_or_none, cls):
            return verdict
    return f"other:{type(exc_or_none).__name__}"


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    p = tmp_path / "payload.aci"
    p.write_bytes(os.urandom(100_000))
    return p
