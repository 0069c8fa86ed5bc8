#!/usr/bin/env python3
"""Verifying (and making) a detached signature over a 100 MiB ACI: sandbox.trust.pgp vs GnuPG, side by side.

    .venv/bin/python bench/bench_sign.py [--size-mib 100] [--repeat 5]

Both verify the same signature over the same file, alternately, so the page cache and CPU state
are shared. gpg runs as a process (`gpg --batch --verify`), so its time includes start-up; the
table also shows gpg on an empty file to make that visible. Prints medians and ours/gpg ratios.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.trust import pgp  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    gpg = shutil.which("gpg")
    if gpg is None:
        print("gpg is not installed (Debian package gnupg); nothing to compare with.")
        return 1
    work = Path(tempfile.mkdtemp(prefix="sbxbench"))
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    try:
        aci = work / "big.aci"
        with open(aci, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        empty = work / "empty"
        empty.write_bytes(b"")
        key = pgp.generate_key("Bench <bench@example.com>", bits=3072)

        def g(*a: str, check: bool = True) -> subprocess.CompletedProcess:
            p = subprocess.run([gpg, "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode",
                                "loopback", "--passphrase", "", *a], capture_output=True)
            if check and p.returncode != 0:
                raise SystemExit(f"gpg {' '.join(a)} failed: {p.stderr.decode(errors='replace')}")
            return p

        g("--import", str(_write(work / "key.asc", key.armored())))
        rows = []
        for hash_algo in ("SHA256", "SHA512"):
            sig = pgp.sign(aci, key, hash_algo=hash_algo)
            sig_path = _write(work / f"big.{hash_algo}.asc", sig)
            esig_path = _write(work / f"empty.{hash_algo}.asc", pgp.sign(empty, key, hash_algo=hash_algo))
            ring = [key.public()]
            ours, theirs, theirs_empty = [], [], []
            for _ in range(args.repeat):
                ours.append(timed(lambda: pgp.verify(aci, sig, ring)))
                theirs.append(timed(lambda: g("--verify", str(sig_path), str(aci))))
                theirs_empty.append(timed(lambda: g("--verify", str(esig_path), str(empty))))
            rows.append((f"verify {hash_algo}", statistics.median(ours), statistics.median(theirs),
                         statistics.median(theirs_empty)))
        # making a signature, for completeness (gpg signs with the same key, imported as a secret key)
        g("--import", str(_write(work / "sec.asc", key.armored())))
        ours_s, theirs_s = [], []
        for _ in range(args.repeat):
            ours_s.append(timed(lambda: pgp.sign(aci, key)))
            theirs_s.append(timed(lambda: g("--digest-algo", "SHA256", "--armor", "--detach-sign", "--yes",
                                            "--output", str(work / "gpg.asc"), str(aci))))
        rows.append(("sign SHA256", statistics.median(ours_s), statistics.median(theirs_s), float("nan")))
        # sanity: gpg accepts our signature and we accept gpg's
        assert "GOODSIG" in g("--status-fd", "1", "--verify", str(work / "big.SHA256.asc"), str(aci)).stdout.decode()
        pgp.verify(aci, (work / "gpg.asc").read_bytes(), [key.public()])

        mib = args.size_mib
        print(f"Detached OpenPGP signature over a {mib} MiB file, RSA 3072, median of {args.repeat} "
              f"(gpg {g('--version').stdout.decode().split()[2]}, Python {sys.version.split()[0]})")
        print(f"{'operation':14} {'sandbox.trust.pgp':>12} {'gpg':>10} {'ours/gpg':>9} {'ours MiB/s':>11} "
              f"{'gpg MiB/s':>10} {'gpg empty file':>15}")
        for name, o, t, e in rows:
            extra = f"{e * 1000:13.0f}ms" if e == e else f"{'-':>15}"
            print(f"{name:14} {o * 1000:10.0f}ms {t * 1000:8.0f}ms {o / t:9.2f} {mib / o:11.0f} "
                  f"{mib / t:10.0f} {extra}")
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


if __name__ == "__main__":
    sys.exit(main())
