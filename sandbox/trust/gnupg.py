"""A second opinion from GnuPG: verify a detached signature with ``gpg`` in a throwaway home.

gpg reports its verdict on ``--status-fd`` (GnuPG doc/DETAILS): lines ``[GNUPG:] KEYWORD args``,
with exactly one of GOODSIG, BADSIG, EXPKEYSIG, REVKEYSIG, EXPSIG or ERRSIG (with NO_PUBKEY when
the key is missing) per signature, and VALIDSIG carrying the full fingerprint of a good one.
Status text may hold bytes that are not UTF-8 (notations), so it is decoded with replacement.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sandbox.errors import SandboxError

# keyword -> the kit's word for the verdict, in the order they decide
VERDICTS = (("BADSIG", "bad"), ("EXPKEYSIG", "expired"), ("REVKEYSIG", "revoked"),
            ("EXPSIG", "sig-expired"), ("NO_PUBKEY", "unknown"), ("ERRSIG", "unusable"),
            ("GOODSIG", "good"))


class GnuPGError(SandboxError):
    """gpg is missing or could not be run."""


def parse_status(text: bytes | str) -> list[tuple[str, list[str]]]:
    """``[GNUPG:] KEYWORD args…`` lines as (KEYWORD, [args]), in order; other lines dropped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "[GNUPG:]":
            out.append((parts[1], parts[2:]))
    return out


def verdict(status: list[tuple[str, list[str]]]) -> str:
    """good | bad | expired | revoked | sig-expired | unknown | unusable | error."""
    keywords = {k for k, _ in status}
    return next((v for k, v in VERDICTS if k in keywords), "error")


@dataclass(frozen=True)
class GpgVerification:
    verdict: str                          # see :func:`verdict`
    status: list[tuple[str, list[str]]]   # every status line
    fingerprint: str | None               # VALIDSIG's fingerprint (lowercase) when good

    def keywords(self) -> list[str]:
        """The status keywords that carry a verdict, in gpg's order (GOODSIG, VALIDSIG…)."""
        wanted = {k for k, _ in VERDICTS} | {"VALIDSIG"}
        return [k for k, _ in self.status if k in wanted]


def available() -> bool:
    return shutil.which("gpg") is not None


@contextlib.contextmanager
def home(keys: list[bytes] = (), *, timeout: float = 60) -> Iterator[Path]:
    """A throwaway GNUPGHOME holding ``keys`` (public or secret, armored or binary), for tools
    that sign or verify through gpg (``skopeo standalone-sign``); removed with its agent."""
    gpg = shutil.which("gpg")
    if gpg is None:
        raise GnuPGError("gpg is not installed; install Debian's gnupg (provision/packages/base.txt).")
    # a short path: gpg-agent's socket name must fit in a unix socket address
    d = Path(tempfile.mkdtemp(prefix="sbxgpg"))
    try:
        d.chmod(0o700)
        for key in keys:
            p = subprocess.run([gpg, "--homedir", str(d), "--batch", "--no-tty", "--import"],
                               input=key, capture_output=True, timeout=timeout)
            if p.returncode != 0:
                raise GnuPGError("gpg could not import a key: "
                                 + p.stderr.decode(errors="replace").strip().splitlines()[-1])
        yield d
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GnuPGError(f"gpg could not be run ({e}).") from e
    finally:
        subprocess.run(["gpgconf", "--homedir", str(d), "--kill", "all"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def verify(signature: bytes, data_path: str | os.PathLike[str], keys: list[bytes],
           *, timeout: float = 60) -> GpgVerification:
    """Import ``keys`` into a fresh GNUPGHOME, run ``gpg --verify`` on the detached
    ``signature`` over ``data_path``, and remove the home (and its agent) again."""
    with home(keys, timeout=timeout) as d:
        sig = d / "check.sig"
        sig.write_bytes(signature)
        try:
            p = subprocess.run([shutil.which("gpg") or "gpg", "--homedir", str(d), "--batch",
                                "--no-tty", "--status-fd", "1", "--verify", str(sig),
                                os.fspath(data_path)], capture_output=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise GnuPGError(f"gpg could not be run ({e}).") from e
    status = parse_status(p.stdout)
    fpr = next((args[0].lower() for k, args in status if k == "VALIDSIG" and args), None)
    return GpgVerification(verdict(status), status, fpr)
