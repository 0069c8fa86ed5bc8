"""Run every benchmark (bench/bench_*.py) one after the other and print their reports.

    .venv/bin/python bench/run.py            # all of them (several minutes on 2 cores)
    .venv/bin/python bench/run.py image cni  # only bench_image.py and bench_cni.py

Each script measures the kit side by side with the reference tool (sha512sum, actool, gpg,
the upstream CNI plugins, runc…) in one run and prints medians and ratios; see its docstring.
State goes to a temporary SANDBOX_DIR, removed afterwards.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
        if not scripts:
            print(f"bench: no benchmark named {', '.join(argv)}; have: "
                  + ", ".join(s.stem.removeprefix("bench_") for s in sorted(HERE.glob("bench_*.py"))),
                  file=sys.stderr)
            return 2
    failed = []
    for s in scripts:
        print(f"\n===== {s.name} =====", flush=True)
        with tempfile.TemporaryDirectory(prefix="sbx-bench-") as state:
            env = {**os.environ, "SANDBOX_DIR": state}
            t0 = time.monotonic()
            rc = subprocess.call([sys.executable, str(s)], env=env)
            print(f"----- {s.name}: exit {rc}, {time.monotonic() - t0:.1f} s", flush=True)
        if rc:
            failed.append(s.name)
    if failed:
        print(f"\nbench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
