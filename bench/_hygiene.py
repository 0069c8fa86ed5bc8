"""Leave the machine as the benchmark found it.

The CNI runtime bind-mounts a private directory on /var/lib/cni for every plugin it execs
(sandbox.cni.invoke), so it creates that mount point when the machine has none; the test
suite removes it at the end (tests/conftest.py), and so does every benchmark that runs pods
or plugins: ``with keep_var_lib_cni(): ...``.
"""
from __future__ import annotations

import contextlib
import os
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
