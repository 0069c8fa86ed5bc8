"""Leave the machine as the benchmark found it.

A benchmark run on its own (not through bench/run.py) gets a temporary $SANDBOX_DIR
(:func:`private_state`), so nothing lands in /var/lib/sandbox. The CNI runtime bind-mounts a private directory on /var/lib/cni for every plugin it execs
(sandbox.net.cni.invoke), so it creates that mount point when the machine has none; the test
suite removes it at the end (tests/conftest.py), and so does every benchmark that runs pods
or plugins: ``with keep_var_lib_cni(): ...``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

VAR_LIB_CNI = Path("/var/lib/cni")


@contextlib.contextmanager
def keep_var_lib_cni() -> Iterator[None]:
    existed = VAR_LIB_CNI.exists()
    try:
        yield
    finally:
        if not existed:
            with contextlib.suppress(OSError):      # not empty: something else uses it now
                os.rmdir(VAR_LIB_CNI)


@contextlib.contextmanager
def private_state() -> Iterator[None]:
    """A temporary $SANDBOX_DIR for the ``with`` block unless one is set already."""
    if os.environ.get("SANDBOX_DIR"):
        yield
        return
    d = tempfile.mkdtemp(prefix="sbx-bench-state-")
    os.environ["SANDBOX_DIR"] = d
    try:
        yield
    finally:
        os.environ.pop("SANDBOX_DIR", None)
        shutil.rmtree(d, ignore_errors=True)
