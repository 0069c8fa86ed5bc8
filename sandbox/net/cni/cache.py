"""The runtime's result cache, file-compatible with libcni (libcni/api.go cacheAdd,
getCachedResult, GetCachedAttachments).

After a successful ADD the runtime writes ``<cache dir>/results/<network>-<containerID>-<ifname>``
(mode 0600): ``{"kind": "cniCacheV1", "containerId", "config" (base64 of the network config
bytes, as Go marshals []byte), "ifName", "networkName", "netns", "cniArgs", "capabilityArgs",
"result"}``. CHECK and DEL read it to give plugins their ``prevResult``; DEL removes it; GC
lists it to find stale attachments. Plugins never touch it.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError
from sandbox.steps import Steps, record

DEFAULT_CACHE_DIR = "/var/lib/cni"
KIND = "cniCacheV1"


class CacheError(SandboxError):
    """The result cache directory cannot be written (a file, a device, read-only, full)."""


@dataclass
class Attachment:
    """One cached attachment: (container ID, interface) on a network, and its ADD result."""

    network: str
    container_id: str
    ifname: str
    netns: str = ""
    config: bytes = b""
    cni_args: list[list[str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


class Cache:
    """The ``results`` directory under a cache dir (default /var/lib/cni, like libcni)."""

    def __init__(self, cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR) -> None:
        self.dir = Path(cache_dir)

    @property
    def results(self) -> Path:
        return self.dir / "results"

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        return self.results / f"{network}-{container_id}-{ifname}"

    def _error(self, e: OSError) -> CacheError:
        return CacheError(f"the CNI result cache {self.results} cannot be written "
                          f"({e.strerror or e}); give --cache-dir a directory root can write "
                          f"(default {DEFAULT_CACHE_DIR}).")

    def ensure(self) -> None:
        """Make the results directory, or say in one sentence why it cannot be made: the
        runtime asks before an ADD, so that no plugin attaches what could not be cached (a
        --cache-dir that is a file or a device was a crash after the plugins had run)."""
        try:
            self.results.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not os.access(self.results, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")
        except OSError as e:
            raise self._error(e) from e

    def put(self, a: Attachment, steps: Steps | None = None) -> Path:
        doc: dict[str, Any] = {"kind": KIND, "containerId": a.container_id,
                               "config": base64.b64encode(a.config).decode(),
                               "ifName": a.ifname, "networkName": a.network}
        if a.netns:  # Go omitempty
            doc["netns"] = a.netns
        if a.cni_args:
            doc["cniArgs"] = a.cni_args
        if a.capability_args:
            doc["capabilityArgs"] = a.capability_args
        if a.result:
            doc["result"] = a.result
        p = self.path(a.network, a.container_id, a.ifname)
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        try:
            self.results.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, separators=(",", ":"))
            os.replace(tmp, p)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise self._error(e) from e
        record(steps, "write", str(p), kind=KIND, bytes=p.stat().st_size)
        return p

    def get(self, network: str, container_id: str, ifname: str,
            steps: Steps | None = None) -> Attachment | None:
        p = self.path(network, container_id, ifname)
        a = self._read(p)
        record(steps, "read", str(p), found=a is not None)
        return a

    def delete(self, network: str, container_id: str, ifname: str,
               steps: Steps | None = None) -> bool:
        p = self.path(network, container_id, ifname)
        try:
            p.unlink()
        except (FileNotFoundError, NotADirectoryError):     # nothing cached there
            return False
        except OSError as e:
            raise self._error(e) from e
        record(steps, "unlink", str(p))
        return True

    def drop_partial(self, container_id: str) -> list[str]:
        """Remove the half-written entries of ``container_id`` (``put``'s ``.NAME.tmpPID`` files):
        a writer killed between its write and its rename leaves one. Only for a container whose
        processes are gone (the caller collects it), so no live writer owns them."""
        if not container_id or not self.results.is_dir():
            return []
        gone = []
        for p in self.results.iterdir():
            n = p.name
            if n.startswith(".") and f"-{container_id}-" in n and ".tmp" in n.rsplit("-", 1)[-1]:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    gone.append(n)
        return sorted(gone)

    def attachments(self, container_id: str | None = None,
                    network: str | None = None) -> list[Attachment]:
        """Every readable cniCacheV1 entry, sorted by file name (libcni GetCachedAttachments)."""
        if not self.results.is_dir():
            return []
        out = []
        for p in sorted(self.results.iterdir(), key=lambda p: p.name):
            if p.name.startswith("."):
                continue
            a = self._read(p)
            if a is None or not a.ifname or not a.network:
                continue
            if container_id and a.container_id != container_id:
                continue
            if network and a.network != network:
                continue
            out.append(a)
        return out

    @staticmethod
    def _read(p: Path) -> Attachment | None:
        from sandbox import bounded
        try:      # libcni's cache files are shared with other runtimes: read them bounded
            doc = bounded.loads(bounded.read_file(p, bounded.CNI_CONFIG_BYTES), str(p),
                                limit=bounded.CNI_CONFIG_BYTES)
        except (OSError, bounded.BadJSON, bounded.InputTooLarge):
            return None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            return None
        try:
            config = base64.b64decode(doc.get("config") or "")
        except ValueError:
            config = b""
        text = {k: doc.get(k, "") for k in ("networkName", "containerId", "ifName", "netns")}
        if not all(isinstance(v, str) for v in text.values()):
            return None       # not a cache file this runtime could have written
        return Attachment(network=text["networkName"], container_id=text["containerId"],
                          ifname=text["ifName"], netns=text["netns"], config=config,
                          cni_args=doc.get("cniArgs") if isinstance(doc.get("cniArgs"), list) else [],
                          capability_args=doc.get("capabilityArgs") if isinstance(
                              doc.get("capabilityArgs"), dict) else {},
                          result=doc.get("result") if isinstance(doc.get("result"), dict) else {},
                          path=p)
