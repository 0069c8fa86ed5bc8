"""appc's reference validator, actool 0.8.11 (built offline by the bootstrap from Debian's Go
sources), as an oracle next to the kit's own verdict: notebooks and tests put both side by side.
The cases where the two differ on purpose are listed in docs/appc-vs-actool.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from sandbox.config import tool_path
from sandbox.errors import SandboxError
from sandbox.steps import Steps, record


def verdict(data: bytes | str | dict[str, Any], *,
                   steps: Steps | None = None) -> tuple[bool, str]:
    """What appc's reference validator (actool 0.8.11, built by the bootstrap) says about a
    manifest: (valid, its message). For notebooks that put both verdicts side by side; the cases
    where they differ are listed in docs/appc-vs-actool.md."""
    tool = tool_path("actool")
    if tool is None:
        raise SandboxError("actool is not built.", hint="Run `make install` (provision/bootstrap.sh).")
    text = json.dumps(data) if isinstance(data, dict) else data
    fd, path = tempfile.mkstemp(prefix="sbx-manifest-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else bytes(text))
        r = subprocess.run([str(tool), "validate", "--type=manifest", path],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    out = (r.stdout + r.stderr).strip().replace(path + ": ", "")
    if r.returncode not in (0, 1):          # a Go panic: keep its first line only
        out = out.splitlines()[0] if out else f"crashed (exit {r.returncode})"
    record(steps, "exec", "actool validate --type=manifest", rc=r.returncode)
    return r.returncode == 0, out
