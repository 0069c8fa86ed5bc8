"""The road to OCI: an appc image as an OCI image layout, an OCI layout as an ACI, and an app as
an OCI runtime bundle.

OCI image-spec (v1.0/1.1): ``image-layout.md`` (``oci-layout``, ``index.json``, ``blobs/sha256``),
``manifest.md``, ``config.md``, ``layer.md`` (whiteouts); runtime-spec ``config.md``,
``config-linux.md``. The appc side is the kit's own (aci, store, render).

The contrast the slides draw (21–39) is visible in the artefacts:

* appc: one archive, one ID — sha512 of the whole uncompressed tar; dependencies by name.
* OCI: a Merkle DAG — index → manifest → config + layers, each addressed by its sha256; an
  image built from dependencies becomes one layer per dependency ("dependencies ≈ layers").
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import posixpath
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from sandbox import ace, aci
from sandbox.errors import SandboxError
from sandbox.manifest import ImageManifest
from sandbox.steps import Steps, record

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# Our own annotation, so an exported image comes back under its appc name.
APPC_NAME = "org.appc.image.name"

WHITEOUT = ".wh."            # layer.md §Whiteouts
OPAQUE = ".wh..wh..opq"      # layer.md §Opaque Whiteout

# appc arch names (types/labels.go) <-> GOARCH names used by OCI (config.md "architecture")
_APPC_TO_OCI_ARCH = {"amd64": ("amd64", None), "i386": ("386", None), "aarch64": ("arm64", None),
                     "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "ppc64le": ("ppc64le", None),
                     "s390x": ("s390x", None), "x86_64": ("amd64", None)}
_OCI_TO_APPC_ARCH = {("amd64", None): "amd64", ("386", None): "i386", ("arm64", None): "aarch64",
                     ("arm64", "v8"): "aarch64", ("arm", "v7"): "armv7l", ("arm", "v6"): "armv6l",
                     ("ppc64le", None): "ppc64le", ("s390x", None): "s390x"}


class OciError(SandboxError):
    """An OCI layout or bundle problem."""


# --------------------------------------------------------------------------------------------
# Blobs and descriptors (image-layout.md, descriptor.md)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform)
        return d


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory (image-layout.md)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def blob_path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
            raise OciError(f"'{digest}' is not a sha256 digest; this layout reader handles sha256 "
                           "blobs only.")
        return self.root / "blobs" / algo / hexd

    def init(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (self.root / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []})

    def _write_index(self, index: dict[str, Any]) -> None:
        tmp = self.root / ".index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2))
        os.replace(tmp, self.root / "index.json")

    def put_bytes(self, data: bytes, media_type: str, steps: Steps | None = None,
                  **annotations: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        p = self.blob_path(digest)
        if not p.exists():
            p.write_bytes(data)
        record(steps, "write", f"blobs/sha256/{digest[7:19]}…", mediaType=media_type,
               size=len(data))
        return Descriptor(media_type, digest, len(data), dict(annotations))

    def put_json(self, obj: Any, media_type: str, steps: Steps | None = None) -> Descriptor:
        return self.put_bytes(_canonical(obj), media_type, steps)

    def put_file(self, src: Path, media_type: str, digest: str, steps: Steps | None = None
                 ) -> Descriptor:
        p = self.blob_path(digest)
        size = src.stat().st_size
        if not p.exists():
            shutil.move(str(src), p)
        record(steps, "write", f"blobs/sha256/{digest[7:19]}…", mediaType=media_type, size=size)
        return Descriptor(media_type, digest, size)

    def read_blob(self, desc: dict[str, Any], steps: Steps | None = None) -> bytes:
        """Read a blob and check it against its descriptor's digest and size."""
        p = self.blob_path(desc["digest"])
        if not p.exists():
            raise OciError(f"the layout {self.root} lacks blob {desc['digest']}.")
        data = p.read_bytes()
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != desc["digest"] or len(data) != desc.get("size", len(data)):
            raise OciError(f"blob {desc['digest']} in {self.root} is corrupt: its content hashes "
                           f"to {got}.")
        record(steps, "hash", f"blobs/sha256/{desc['digest'][7:19]}…", sha256="ok")
        return data

    def index(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "index.json").read_text())
        except FileNotFoundError:
            raise OciError(f"{self.root} is not an OCI image layout (no index.json).") from None

    def add_manifest(self, desc: Descriptor, tag: str) -> None:
        index = self.index()
        keep = [m for m in index.get("manifests", [])
                if m.get("annotations", {}).get(REF_NAME) != tag]
        d = desc.to_json()
        d.setdefault("annotations", {})[REF_NAME] = tag
        index["manifests"] = keep + [d]
        self._write_index(index)

    def tags(self) -> list[str]:
        return [m.get("annotations", {}).get(REF_NAME, "") for m in self.index().get("manifests", [])]

    def resolve(self, tag: str | None, steps: Steps | None = None) -> dict[str, Any]:
        """The manifest descriptor for ``tag`` (or the only one, when ``tag`` is None)."""
        manifests = self.index().get("manifests", [])
        if tag is None:
            if len(manifests) != 1:
                raise OciError(f"{self.root} holds {len(manifests)} images "
                               f"({', '.join(self.tags()) or 'none'}); name one as DIR:TAG.")
            desc = manifests[0]
        else:
            found = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) == tag]
            if not found:
                raise OciError(f"{self.root} has no image tagged '{tag}' (it has: "
                               f"{', '.join(self.tags()) or 'none'}).")
            desc = found[0]
        if desc.get("mediaType") == MT_INDEX:   # a nested index: take the host's platform
            nested = json.loads(self.read_blob(desc, steps))
            desc = nested["manifests"][0]
        return desc


# --------------------------------------------------------------------------------------------
# Layers (layer.md): deterministic tars of a directory subset; applying with whiteouts


def _iter_tree(root: Path) -> Iterator[str]:
    """Relative paths under ``root`` (not following links), parents before children, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for n in sorted(dirnames + filenames):
            yield n if rel == "." else f"{rel}/{n}"


def write_layer(rootfs: Path, paths: Iterable[str], out: Path, *, gzip_level: int = 6
                ) -> tuple[str, str]:
    """Write the entries ``paths`` (relative to ``rootfs``; parents must be listed) as a gzip
    layer to ``out``. Returns (digest of the blob, diff_id = sha256 of the uncompressed tar).

    Deterministic: entries in the given order, PAX format, the gzip header's mtime is 0; owners,
    modes and mtimes come from the files. Hard links inside one layer are kept as links.
    """
    diff = hashlib.sha256()

    class _Tee(io.RawIOBase):
        def __init__(self, inner: BinaryIO) -> None:
            self.inner = inner

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:  # type: ignore[override]
            diff.update(b)
            return self.inner.write(b)

    with open(out, "wb") as raw:
        blob = _HashFile(raw)
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=gzip_level, mtime=0) as gz:
            with tarfile.open(fileobj=_Tee(gz), mode="w|", format=tarfile.PAX_FORMAT) as tar:
                inodes: dict[tuple[int, int], str] = {}
                for rel in paths:
                    full = rootfs / rel
                    st = os.lstat(full)
                    ti = tarfile.TarInfo(rel)
                    ti.mode, ti.uid, ti.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                    ti.mtime = int(st.st_mtime)
                    ti.uname = ti.gname = ""
                    key = (st.st_dev, st.st_ino)
                    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in inodes:
                        ti.type, ti.linkname = tarfile.LNKTYPE, inodes[key]
                        tar.addfile(ti)
                    elif stat.S_ISREG(st.st_mode):
                        inodes[key] = rel
                        ti.size = st.st_size
                        with open(full, "rb") as f:
                            tar.addfile(ti, f)
                    elif stat.S_ISDIR(st.st_mode):
                        ti.type = tarfile.DIRTYPE
                        tar.addfile(ti)
                    elif stat.S_ISLNK(st.st_mode):
                        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
                        tar.addfile(ti)
                    elif stat.S_ISFIFO(st.st_mode):
                        ti.type = tarfile.FIFOTYPE
                        tar.addfile(ti)
                    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                        tar.addfile(ti)
    return "sha256:" + blob.sha.hexdigest(), "sha256:" + diff.hexdigest()


class _HashFile(io.RawIOBase):
    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.sha = inner, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        self.sha.update(b)
        return self.inner.write(b)


def _open_layer(data: bytes, media_type: str) -> tarfile.TarFile:
    if data[:2] == b"\x1f\x8b":
        return tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:")
    if media_type.endswith("+zstd"):
        raise OciError("this layer is zstd-compressed; the kit reads tar and gzip layers only.")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def apply_layer(tar: tarfile.TarFile, rootfs: Path, steps: Steps | None = None) -> dict[str, int]:
    """Apply one layer on ``rootfs`` (layer.md §Applying Changesets).

    Whiteouts first — ``.wh.NAME`` deletes NAME from the lower layers, ``.wh..wh..opq`` empties
    its directory of lower-layer content — then the layer's entries, replacing what exists. The
    same safety rules as ACI extraction hold: no absolute or ``..`` names, no writing through a
    symlink, no hard link to outside the layer stack.
    """
    counts = {"whiteouts": 0, "opaque": 0, "entries": 0}
    members = tar.getmembers()
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        entries = []
        for m in members:
            if m.name.rstrip("/") in ("", "."):      # the layer's root itself (umoci writes ./)
                continue
            name = aci.normalize_entry(m.name)
            if name is None:
                raise OciError(f"layer entry '{m.name}' is absolute or contains '..'; refused.")
            base = posixpath.basename(name)
            parent = posixpath.dirname(name)
            if base == OPAQUE:
                counts["opaque"] += 1
                record(steps, "whiteout", parent + "/", kind="opaque")
                with contextlib.suppress(FileNotFoundError):
                    fd = aci.safe_dir_fd(root_fd, parent.split("/") if parent else [], False)
                    try:
                        for child in os.listdir(fd):
                            aci.remove_existing(fd, child, want_dir=False)
                    finally:
                        os.close(fd)
            elif base.startswith(WHITEOUT):
                counts["whiteouts"] += 1
                target = base[len(WHITEOUT):]
                record(steps, "whiteout", posixpath.join(parent, target), kind="file")
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    fd = aci.safe_dir_fd(root_fd, parent.split("/") if parent else [], False)
                    try:
                        aci.remove_existing(fd, target, want_dir=False)
                    finally:
                        os.close(fd)
            else:
                entries.append((name, m))
        dirs = []
        for name, m in entries:
            _apply_entry(tar, m, name, root_fd, rootfs)
            counts["entries"] += 1
            if m.isdir():
                dirs.append((name, m))
        for name, m in sorted(dirs, key=lambda x: x[0].count("/"), reverse=True):
            fd = aci.safe_dir_fd(root_fd, name.split("/"), False)
            try:
                if os.geteuid() == 0:
                    os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, m.mode & 0o7777)
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    record(steps, "write", f"layer applied to {rootfs}", **counts)
    return counts


def _apply_entry(tar: tarfile.TarFile, m: tarfile.TarInfo, name: str, root_fd: int,
                 rootfs: Path) -> None:
    parts = name.split("/")
    if m.issym() and aci.symlink_escapes(name, m.linkname):
        raise OciError(f"layer symlink '{m.name}' -> '{m.linkname}' climbs above the rootfs; "
                       "refused.")
    pfd = aci.safe_dir_fd(root_fd, parts[:-1], True)
    leaf = parts[-1]
    try:
        aci.remove_existing(pfd, leaf, want_dir=m.isdir())
        if m.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf, 0o755, dir_fd=pfd)
            return
        if m.isreg():
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=pfd)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                if src is not None:
                    shutil.copyfileobj(src, out, 1 << 20)
                if os.geteuid() == 0:
                    os.fchown(out.fileno(), m.uid, m.gid)
                os.fchmod(out.fileno(), m.mode & 0o7777)
                os.utime(out.fileno(), (m.mtime, m.mtime))
        elif m.issym():
            os.symlink(m.linkname, leaf, dir_fd=pfd)
            if os.geteuid() == 0:
                os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(leaf, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            target = aci.normalize_entry(m.linkname)
            if target is None:
                raise OciError(f"layer hard link '{m.name}' -> '{m.linkname}' is unsafe; refused.")
            tparts = target.split("/")
            sfd = aci.safe_dir_fd(root_fd, tparts[:-1], False)
            try:
                os.link(tparts[-1], leaf, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(sfd)
        elif m.isfifo():
            os.mkfifo(leaf, m.mode & 0o777, dir_fd=pfd)
        elif m.isdev() and os.geteuid() == 0:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(leaf, kind | (m.mode & 0o777), os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
    finally:
        os.close(pfd)


# --------------------------------------------------------------------------------------------
# Config mapping: appc app <-> OCI image config (config.md "config")


def _split_user(user: str) -> tuple[str, str]:
    u, _, g = user.partition(":")
    return (u or "0"), (g or u or "0")


def appc_arch_to_oci(arch: str) -> tuple[str, str | None]:
    return _APPC_TO_OCI_ARCH.get(arch, (arch, None))


def oci_arch_to_appc(arch: str, variant: str | None = None) -> str:
    return _OCI_TO_APPC_ARCH.get((arch, variant)) or _OCI_TO_APPC_ARCH.get((arch, None)) or arch


def image_config(m: ImageManifest, diff_ids: list[str], history: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    """The OCI image config for an appc image manifest.

    app.exec → Entrypoint (Cmd empty), environment → Env, user:group → User, workingDirectory →
    WorkingDir, ports → ExposedPorts, labels + annotations → Labels (prefixed ``appc.label.`` /
    ``appc.annotation.`` so nothing collides and the way back is exact), os/arch → os/architecture.
    """
    app = m.raw.get("app") or {}
    arch, variant = appc_arch_to_oci(m.labels.get("arch") or _host_appc_arch())
    cfg: dict[str, Any] = {}
    if app.get("exec"):
        cfg["Entrypoint"] = list(app["exec"])
    env = [f"{e['name']}={e['value']}" for e in app.get("environment") or []]
    if env:
        cfg["Env"] = env
    if app.get("user") is not None:
        cfg["User"] = f"{app.get('user')}:{app.get('group', app.get('user'))}"
    if app.get("workingDirectory"):
        cfg["WorkingDir"] = app["workingDirectory"]
    ports = {f"{p['port']}/{p.get('protocol', 'tcp')}": {} for p in app.get("ports") or []}
    if ports:
        cfg["ExposedPorts"] = ports
    mounts = {mp["path"]: {} for mp in app.get("mountPoints") or []}
    if mounts:
        cfg["Volumes"] = mounts
    labels = {f"appc.label.{k}": v for k, v in m.labels.items()}
    labels.update({f"appc.annotation.{k}": v for k, v in m.annotations.items()})
    # OCI has no names (nor readOnly, count…) for ports and volumes: keep appc's entries as
    # JSON labels so the way back restores them exactly.
    for key in ("ports", "mountPoints"):
        if app.get(key):
            labels[f"appc.app.{key}"] = json.dumps(app[key], separators=(",", ":"))
    labels[APPC_NAME] = m.name
    cfg["Labels"] = labels
    out: dict[str, Any] = {
        "architecture": arch, "os": m.labels.get("os", "linux"),
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    if variant:
        out["variant"] = variant
    if m.annotations.get("created"):
        out["created"] = m.annotations["created"]
    return out


def manifest_from_config(config: dict[str, Any], name: str, tag: str | None) -> dict[str, Any]:
    """An appc ImageManifest (as JSON) for an OCI image config — docker2aci's mapping.

    Entrypoint + Cmd → exec, Env → environment, User → user/group (numbers default to 0),
    WorkingDir → workingDirectory, ExposedPorts → ports, Labels ``appc.label.*`` → labels (other
    labels → annotations when they are valid AC identifiers), os/architecture → labels.
    """
    c = config.get("config") or {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    from sandbox.types import AC_IDENTIFIER_RE  # spec types.md
    kept: dict[str, Any] = {}
    for k, v in (c.get("Labels") or {}).items():
        if k.startswith("appc.label."):
            labels[k[len("appc.label."):]] = v
        elif k.startswith("appc.annotation."):
            annotations[k[len("appc.annotation."):]] = v
        elif k in ("appc.app.ports", "appc.app.mountPoints"):
            kept[k[len("appc.app."):]] = json.loads(v)
        elif k != APPC_NAME and AC_IDENTIFIER_RE.match(k.lower()):
            annotations.setdefault(k.lower(), v)
    labels = {**{k: labels[k] for k in ("version",) if k in labels}, **labels}
    if tag and "version" not in labels:
        labels["version"] = tag
    labels["os"] = config.get("os", "linux")
    labels["arch"] = oci_arch_to_appc(config.get("architecture", "amd64"), config.get("variant"))
    if config.get("created") and "created" not in annotations:
        annotations["created"] = config["created"]
    exec_ = list(c.get("Entrypoint") or []) + list(c.get("Cmd") or [])
    user, group = _split_user(c.get("User") or "0")
    app: dict[str, Any] = {"exec": exec_, "user": user, "group": group}
    env = []
    for e in c.get("Env") or []:
        k, _, v = e.partition("=")
        env.append({"name": k, "value": v})
    if env:
        app["environment"] = env
    if c.get("WorkingDir"):
        app["workingDirectory"] = c["WorkingDir"]
    ports = []
    for spec in sorted(c.get("ExposedPorts") or {}):
        port, _, proto = spec.partition("/")
        proto = proto or "tcp"
        ports.append({"name": f"{proto}-{port}", "protocol": proto, "port": int(port)})
    mps = [{"name": f"volume-{i}", "path": path}
           for i, path in enumerate(sorted(c.get("Volumes") or {}), 1)]
    ports, mps = kept.get("ports", ports), kept.get("mountPoints", mps)
    if ports:
        app["ports"] = ports
    if mps:
        app["mountPoints"] = mps
    m: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                         "labels": [{"name": k, "value": v} for k, v in labels.items()]}
    if exec_:
        m["app"] = app
    if annotations:
        m["annotations"] = [{"name": k, "value": v} for k, v in annotations.items()]
    return m


def _host_appc_arch() -> str:
    mach = platform.machine()
    return {"x86_64": "amd64", "i686": "i386", "arm64": "aarch64"}.get(mach, mach)


# --------------------------------------------------------------------------------------------
# Runtime bundle (runtime-spec config.md, config-linux.md)



def runtime_config(app: dict[str, Any], *, app_name: str, rootfs: str = "rootfs",
                   hostname: str | None = None, uid: int = 0, gid: int = 0,
                   additional_gids: list[int] | None = None) -> dict[str, Any]:
    """An OCI runtime ``config.json`` that runs an appc app the way an ACE would.

    The app's exec, environment (plus the ACE's required PATH, AC_APP_NAME and ``container``),
    workingDirectory and resolved uid/gid; /proc, /dev (tmpfs + pts, shm, mqueue) and a read-only
    /sys; new pid, ipc, uts, mount and network namespaces (an empty netns: only ``lo``).
    """
    env = {"PATH": ace.DEFAULT_PATH}
    for e in app.get("environment") or []:
        env[e["name"]] = e["value"]
    env.update({"AC_APP_NAME": app_name, "container": ace.CONTAINER_NAME})
    if not app.get("exec"):
        raise OciError(f"app '{app_name}' has no exec; an OCI bundle needs a process to run.")
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid,
                     **({"additionalGids": additional_gids} if additional_gids else {})},
            "args": list(app["exec"]),
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": app.get("workingDirectory") or "/",
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname or app_name,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                            "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                              "/proc/sys", "/proc/sysrq-trigger"],
        },
        "annotations": {"org.appc.app.name": app_name},
    }


# --------------------------------------------------------------------------------------------
# Import: OCI layout -> ACI (docker2aci's job, seed slide 30)


def parse_ref(ref: str) -> tuple[Path, str | None]:
    """``DIR[:TAG]`` as skopeo and umoci write it."""
    path, sep, tag = ref.rpartition(":")
    if sep and path and "/" not in tag:
        return Path(path), tag
    return Path(ref), None


@dataclass
class Imported:
    aci: Path
    image_id: str
    manifest: dict[str, Any]
    layers: list[dict[str, Any]]


def import_layout(ref: str, out_aci: str | os.PathLike[str], *, name: str | None = None,
                  compression: str = "gzip", steps: Steps | None = None) -> Imported:
    """Turn the OCI image ``DIR[:TAG]`` into an ACI at ``out_aci``.

    Layers are applied in order with whiteouts into one rootfs (appc has no layers: the result
    is a single image, like docker2aci's squashed mode); the config becomes the manifest.
    """
    root, tag = parse_ref(ref)
    layout = Layout(root)
    desc = layout.resolve(tag, steps)
    tag = tag or desc.get("annotations", {}).get(REF_NAME)
    manifest = json.loads(layout.read_blob(desc, steps))
    config = json.loads(layout.read_blob(manifest["config"], steps))
    if name is None:
        name = (config.get("config") or {}).get("Labels", {}).get(APPC_NAME)
    if name is None:
        raise OciError(f"{ref} does not say its appc name; give one with --name "
                       "(e.g. --name example.com/imported).")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    with tempfile.TemporaryDirectory(prefix="sbx-oci-import-") as tmp:
        rootfs = Path(tmp) / "layout" / "rootfs"
        rootfs.mkdir(parents=True)
        os.chmod(rootfs, 0o755)
        infos = []
        for i, ldesc in enumerate(manifest.get("layers") or []):
            data = layout.read_blob(ldesc, steps)
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            got = "sha256:" + hashlib.sha256(raw).hexdigest()
            if i < len(diff_ids) and got != diff_ids[i]:
                raise OciError(f"layer {i + 1} of {ref} does not match its diff_id in the config "
                               f"({got} != {diff_ids[i]}).")
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
                counts = apply_layer(tar, rootfs, steps)
            infos.append({"digest": ldesc["digest"], "diff_id": got, **counts})
        m = manifest_from_config(config, name, tag)
        (Path(tmp) / "layout" / "manifest").write_text(json.dumps(m, indent=2))
        image_id = aci.build(Path(tmp) / "layout", Path(out_aci), compression=compression,
                             overwrite=True, steps=steps)
    return Imported(Path(out_aci), image_id, m, infos)


# --------------------------------------------------------------------------------------------
# Export: appc image (+ dependencies) -> OCI image layout


@dataclass
class Exported:
    layout: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layers: list[dict[str, Any]]      # per layer: image name, digest, diff_id, size, paths

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{i}</td><td>{l['image']}</td><td><code>{l['digest'][:19]}…</code>"
                       f"</td><td>{l['paths']}</td><td>{l['size']}</td></tr>"
                       for i, l in enumerate(self.layers, 1))
        return (f"<p>OCI layout <code>{self.layout}</code> tag <b>{self.tag}</b>, manifest "
                f"<code>{self.manifest_digest[:19]}…</code></p><table><tr><th>#</th><th>from image"
                f"</th><th>digest</th><th>paths</th><th>bytes</th></tr>{rows}</table>")


def layer_paths(rootfs: Path, owner_of: dict[str, int], n_layers: int) -> list[list[str]]:
    """Split a rendered tree into per-layer path lists: each path goes to the layer whose image
    wrote its final copy; a layer also carries the directories above its paths, so layers
    applied in order rebuild exactly the rendered tree."""
    per: list[list[str]] = [[] for _ in range(n_layers)]
    placed: list[set[str]] = [set() for _ in range(n_layers)]
    for rel in _iter_tree(rootfs):
        i = owner_of.get(rel, n_layers) - 1
        parts = rel.split("/")
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            if parent not in placed[i]:
                placed[i].add(parent)
                per[i].append(parent)
        if rel not in placed[i]:
            placed[i].add(rel)
            per[i].append(rel)
    return per


def export_image(store: Any, ref: str, out_dir: str | os.PathLike[str], *, tag: str | None = None,
                 steps: Steps | None = None, progress: bool = False) -> Exported:
    """Write ``ref`` with its dependencies as an OCI image layout in ``out_dir``.

    The image is rendered (sandbox.treestore), then split into one gzip layer per image of the
    override order, each holding the files that image contributed to the final tree.
    """
    from sandbox import treestore
    image = store.get(ref, steps=steps)
    tree = treestore.render_image(store, image, steps=steps, progress=progress)
    trace = tree.trace()
    owner = {p.lstrip("/"): h.final for p, h in trace.final_paths().items() if h.final}
    per = layer_paths(tree.rootfs, owner, len(trace.layers))
    layout = Layout(out_dir)
    layout.init()
    tag = tag or image.labels.get("version") or "latest"
    layers, diff_ids, history, descs = [], [], [], []
    for info, paths in zip(trace.layers, per):
        if not paths:
            continue
        with tempfile.NamedTemporaryFile(dir=layout.root / "blobs", delete=False) as t:
            tmp = Path(t.name)
        digest, diff_id = write_layer(tree.rootfs, paths, tmp)
        desc = layout.put_file(tmp, MT_LAYER_GZIP, digest, steps)
        descs.append(desc)
        diff_ids.append(diff_id)
        history.append({"created_by": f"appc dependency {info['name']} "
                                      f"({info['id'][:19]}…), layer {info['index']}"})
        layers.append({"image": info["name"], "image_id": info["id"], "digest": digest,
                       "diff_id": diff_id, "size": desc.size, "paths": len(paths)})
    config = image_config(image.manifest, diff_ids, history)
    cdesc = layout.put_json(config, MT_CONFIG, steps)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc.to_json(),
                "layers": [d.to_json() for d in descs],
                "annotations": {APPC_NAME: image.name, "org.appc.image.id": image.id}}
    mdesc = layout.put_json(manifest, MT_MANIFEST, steps)
    arch, variant = appc_arch_to_oci(image.labels.get("arch") or _host_appc_arch())
    plat = {"architecture": arch, "os": image.labels.get("os", "linux")}
    if variant:
        plat["variant"] = variant
    layout.add_manifest(Descriptor(mdesc.media_type, mdesc.digest, mdesc.size, platform=plat), tag)
    record(steps, "write", f"{layout.root}/index.json", tag=tag, manifest=mdesc.digest)
    return Exported(layout.root, tag, mdesc.digest, cdesc.digest, layers)


# --------------------------------------------------------------------------------------------
# Bundle: one app of an image -> an OCI runtime bundle runc can run


def make_bundle(store: Any, ref: str, out_dir: str | os.PathLike[str], *, app: str | None = None,
                steps: Steps | None = None, progress: bool = False) -> Path:
    """Write ``out_dir/config.json`` and ``out_dir/rootfs`` (a plain copy of the rendered tree)
    for the image's app (``app`` names it in config.json; default: the image name's last part).
    """
    from sandbox import treestore
    image = store.get(ref, steps=steps)
    manifest_app = image.manifest.raw.get("app")
    if not manifest_app:
        raise OciError(f"{image.name} has no app section, so there is nothing to run; pick an "
                       "image with an app (e.g. example.com/reduce-worker).")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OciError(f"{out} is not empty; give a new directory for the bundle.")
    tree = treestore.render_image(store, image, steps=steps, progress=progress)
    rootfs = out / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    treestore.copy_tree(tree.rootfs, rootfs, steps)
    for d in ("proc", "sys", "dev"):
        (rootfs / d).mkdir(exist_ok=True)
    uid, gid = ace.resolve_user(rootfs, str(manifest_app.get("user", "0")),
                            str(manifest_app.get("group", "0")))
    name = app or image.name.rsplit("/", 1)[-1]
    cfg = runtime_config(manifest_app, app_name=name, uid=uid, gid=gid,
                         additional_gids=list(manifest_app.get("supplementaryGIDs") or []))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    record(steps, "write", str(out / "config.json"), args=" ".join(cfg["process"]["args"]))
    return out


# --------------------------------------------------------------------------------------------
# What the slides compare (21–39), read off the artefacts


def compare_formats(image: Any, exported: Exported) -> list[dict[str, str]]:
    """Rows of the slides' comparison, each filled from the two real artefacts."""
    layout = Layout(exported.layout)
    index = layout.index()
    mdesc = layout.resolve(exported.tag)
    manifest = json.loads(layout.read_blob(mdesc))
    blobs = sorted(p.name for p in (layout.root / "blobs" / "sha256").iterdir())
    sig = Path(str(image.path) + ".asc")
    return [
        {"property": "content-addressable",
         "appc": f"yes: one ID, {image.id.split('-')[0]} of the whole uncompressed tar",
         "oci": f"yes: every blob by {mdesc['digest'].split(':')[0]} ({len(blobs)} blobs)"},
        {"property": "what the ID covers",
         "appc": "manifest + rootfs, in one archive",
         "oci": f"a Merkle DAG: index → manifest → config + {len(manifest['layers'])} layers"},
        {"property": "serialized format",
         "appc": f"one .aci file ({image.compression}; the ID ignores compression)",
         "oci": f"a directory: oci-layout, index.json, blobs/ (schemaVersion {index['schemaVersion']})"},
        {"property": "dependencies",
         "appc": f"by name + labels in the manifest ({len(image.manifest.dependencies)} listed), "
                 "resolved and rendered at run time",
         "oci": f"frozen in as layers ({len(exported.layers)}), applied in order"},
        {"property": "naming",
         "appc": f"{image.name}: a DNS-based name, found by meta discovery (federated)",
         "oci": f"a tag in index.json ('{exported.tag}'); no discovery in the layout"},
        {"property": "signatures",
         "appc": "detached OpenPGP .aci.asc over the file" + (" (present)" if sig.exists() else ""),
         "oci": "not part of the layout (optional, out of band)"},
    ]


def round_trip_report(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """For each field of an app manifest: did it survive ACI → OCI → ACI?"""
    rows = []
    b_app, a_app = before.get("app") or {}, after.get("app") or {}
    for key in ("exec", "user", "group", "workingDirectory", "environment", "ports",
                "mountPoints", "supplementaryGIDs", "eventHandlers", "isolators"):
        if key in b_app or key in a_app:
            rows.append({"field": f"app.{key}", "kept": b_app.get(key) == a_app.get(key),
                         "note": ""})
    bl = {l["name"]: l["value"] for l in before.get("labels") or []}
    al = {l["name"]: l["value"] for l in after.get("labels") or []}
    rows.append({"field": "labels", "kept": bl == al, "note": ""})
    ba = {a["name"]: a["value"] for a in before.get("annotations") or []}
    aa = {a["name"]: a["value"] for a in after.get("annotations") or []}
    rows.append({"field": "annotations", "kept": ba == aa, "note": ""})
    rows.append({"field": "dependencies", "kept": not before.get("dependencies"),
                 "note": "flattened into the rootfs" if before.get("dependencies") else ""})
    rows.append({"field": "pathWhitelist", "kept": not before.get("pathWhitelist"),
                 "note": "already applied to the rootfs" if before.get("pathWhitelist") else ""})
    return rows
