"""`make test`: the whole suite in two parts, on every core it may use, then alone.

1. Everything not marked ``serial``, spread over ``TEST_WORKERS`` pytest-xdist workers (default
   4), a test file per worker at a time (``--dist loadfile``: a file's module fixtures are made
   once). Most of the suite waits on the kernel, subprocesses and kernels of Jupyter rather than
   on the CPU (~400 s of CPU for ~500 s run alone on 2 cores), so the workers overlap the waits:
   on the 2-core CI machine, quiet, this part took 271 s with 2 workers and 223 s with 3 (at
   1,916 tests); at 2,023 tests, 268-307 s with 3 and 245 s with 4.
2. The tests marked ``serial``, alone: their verdict is a real-time deadline (appc's ACE
   validator gives a metadata request 100 ms) or a machine-wide count that another test running
   beside them would change.

Each part is a pytest session with its own guards (tests/conftest.py). Arguments go to both
parts (e.g. ``make test PYTEST_ARGS="tests/pod -x"``); a part that selects nothing is not a
failure unless both select nothing (pytest's exit code 5, which CI turns into a failure).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

NOTHING_COLLECTED = 5
SERIAL_LIST = "SANDBOX_TEST_SERIAL_LIST"   # where part 1's workers write the serial tests' ids


def main(args: list[str]) -> int:
    workers = os.environ.get("TEST_WORKERS", "4")
    pytest = [sys.executable, "-m", "pytest"]
    parts = [[*pytest, "-n", workers, "--dist", "loadfile", "-m", "not serial", *args],
             [*pytest, "-m", "serial", *args]]
    if workers in ("0", "1"):               # one process: the plain way, in one session
        parts = [[*pytest, *args]]
    codes = []
    with tempfile.TemporaryDirectory(prefix="sbx-suite-") as tmp:
        listed = os.path.join(tmp, "serial")
        for i, argv in enumerate(parts):
            if i == 1 and os.path.exists(listed):
                # part 1's workers collected the whole selection: the serial part runs their
                # ids (what -m serial would select, without collecting ~1900 tests again, ~9 s)
                ids = [n for n in open(listed).read().splitlines() if n]
                if not ids:
                    codes.append(NOTHING_COLLECTED)
                    continue
                argv = [*argv, *ids]
            print(f"\n$ {' '.join(argv[1:])}", flush=True)
            env = {**os.environ, SERIAL_LIST: listed} if i == 0 and len(parts) > 1 else None
            codes.append(subprocess.run(argv, env=env).returncode)
    failed = [c for c in codes if c not in (0, NOTHING_COLLECTED)]
    if failed:
        return failed[0]
    return NOTHING_COLLECTED if all(c == NOTHING_COLLECTED for c in codes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
