"""Where the kit keeps its state.

``$SANDBOX_DIR`` (default ``/var/lib/sandbox``; the CLI's global ``--dir`` sets it) holds the
image store, the tree store, trusted keys and pods. Everything the kit makes elsewhere on the
machine (netns handles under /run/netns, CNI results under /var/lib/cni) carries the prefix
:data:`NAME_PREFIX` so ``sandbox reset`` can find it.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DIR = "/var/lib/sandbox"
NAME_PREFIX = "sbx"  # prefix of every netns, link, bridge and chain the kit names itself


def sandbox_dir() -> Path:
    """The state directory: ``$SANDBOX_DIR`` or /var/lib/sandbox."""
    return Path(os.environ.get("SANDBOX_DIR") or DEFAULT_DIR)


def project_root() -> Path:
    """The repository checkout this package lives in (for notebooks, labs, tools)."""
    return Path(__file__).resolve().parent.parent


def tool_path(name: str) -> Path | None:
    """A reference tool built by provision/build-tools.sh (e.g. ``actool``), if present."""
    p = project_root() / ".tools" / "bin" / name
    return p if p.exists() else None
