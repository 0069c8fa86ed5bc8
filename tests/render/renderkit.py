"""Helpers for the rendering tests (imported as ``renderkit``; pytest puts this directory on
sys.path): tiny ACIs written with tarfile directly (independent of sandbox.image.aci), an in-memory
image source for the pure-algorithm tests, and a builder over the real image store."""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

from sandbox.image.manifest import ImageManifest

# A rootfs description: {"/etc/hostname": "text" | b"bytes" | ("symlink", target) | ("dir",)
# | ("file", content, mode) | ("dir", mode) | ("hardlink", "/path/in/same/image")}


def aci_bytes(name: str, files: dict[str, Any], *, deps: list[dict[str, Any]] | None = None,
              pwl: list[str] | None = None, labels: dict[str, str] | None = None) -> bytes:
    manifest: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
    if labels:
        manifest["labels"] = [{"name": k, "value": v} for k, v in labels.items()]
    if deps:
        manifest["dependencies"] = deps
    if pwl:
        manifest["pathWhitelist"] = pwl
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime = 1_600_000_000
            t.addfile(info, io.BytesIO(data) if data is not None else None)
        mdata = json.dumps(manifest).encode()
        mi = tarfile.TarInfo("manifest"); mi.size = len(mdata); mi.mode = 0o644
        add(mi, mdata)
        root = tarfile.TarInfo("rootfs"); root.type = tarfile.DIRTYPE; root.mode = 0o755
        add(root)
        done = set()
        for path in sorted(files):  # a parent sorts before its children
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/" + "/".join(parts[:i])
                if d not in done and d not in files:
                    di = tarfile.TarInfo("rootfs" + d); di.type = tarfile.DIRTYPE; di.mode = 0o755
                    add(di); done.add(d)
            spec = files[path]
            info = tarfile.TarInfo("rootfs" + path)
            done.add(path)
            if isinstance(spec, (str, bytes)):
                data = spec.encode() if isinstance(spec, str) else spec
                info.size = len(data); info.mode = 0o644
                add(info, data)
            elif spec[0] == "file":
                data = spec[1].encode() if isinstance(spec[1], str) else spec[1]
                info.size = len(data); info.mode = spec[2]
                add(info, data)
            elif spec[0] == "dir":
                info.type = tarfile.DIRTYPE; info.mode = spec[1] if len(spec) > 1 else 0o755
                add(info)
            elif spec[0] == "symlink":
                info.type = tarfile.SYMTYPE; info.linkname = spec[1]; info.mode = 0o777
                add(info)
            elif spec[0] == "hardlink":
                info.type = tarfile.LNKTYPE; info.linkname = "rootfs" + spec[1]; info.mode = 0o644
                add(info)
            else:
                raise ValueError(spec)
    return buf.getvalue()


def image_id(data: bytes) -> str:
    return "sha512-" + hashlib.sha512(data).hexdigest()


def dep(name: str, labels: dict[str, str] | None = None, image_id: str | None = None) -> dict:
    d: dict[str, Any] = {"imageName": name}
    if labels:
        d["labels"] = [{"name": k, "value": v} for k, v in labels.items()]
    if image_id:
        d["imageID"] = image_id
    return d


class MemSource:
    """An image source over a dict of ACI bytes (what resolve() and render() need)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, ImageManifest] = {}
        self.order: list[str] = []

    def add(self, name: str, files: dict[str, Any] | None = None, **kw: Any) -> str:
        data = aci_bytes(name, files or {}, **kw)
        i = image_id(data)
        self.blobs[i] = data
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            self.manifests[i] = ImageManifest.from_json(t.extractfile("manifest").read())
        self.order.insert(0, i)  # latest first
        return i

    def find(self, name: str, labels: dict[str, str] | None = None) -> list[str]:
        return [i for i in self.order if self.manifests[i].name == name
                and all(self.manifests[i].labels.get(k) == v for k, v in (labels or {}).items())]

    def manifest(self, image_id: str) -> ImageManifest:
        return self.manifests[image_id]

    def open_tar(self, image_id: str) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(self.blobs[image_id]))


def snapshot(root: Path) -> dict[str, tuple]:
    """The rendered tree as {path: (type, payload, mode)} read from disk (lstat, never follow)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = "/" + os.path.relpath(full, root)
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode)
            else:
                out[rel] = ("file", Path(full).read_bytes(), mode)
    return out


class StoreBuilder:
    """Writes ACIs with aci_bytes and imports them into a real sandbox.image.store.Store."""

    def __init__(self, tmp: Path) -> None:
        from sandbox.image.store import Store
        self.tmp = tmp
        self.store = Store()
        self.n = 0

    def add(self, name: str, files: dict[str, Any] | None = None, **kw: Any) -> Any:
        self.n += 1
        p = self.tmp / f"img{self.n}.aci"
        p.write_bytes(aci_bytes(name, files or {}, **kw))
        return self.store.import_aci(p)
