"""OCI layers (image-spec layer.md): a layer is a tar changeset; files removed in a later layer
are whiteouts (``.wh.<name>``), a directory replaced as a whole is an opaque whiteout
(``.wh..wh..opq``). Writing layers from a rootfs and applying them onto one.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from sandbox.image import aci
from sandbox.oci.layout import OciError
from sandbox.steps import Steps, record

WHITEOUT = ".wh."            # layer.md §Whiteouts


OPAQUE = ".wh..wh..opq"      # layer.md §Opaque Whiteout


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
