"""OCI layers (image-spec layer.md): a layer is a tar changeset; files removed in a later layer
are whiteouts (``.wh.<name>``), a directory replaced as a whole is an opaque whiteout
(``.wh..wh..opq``). Writing layers from a rootfs and applying them onto one.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from sandbox.image.extract import ArchiveTooLarge, Extractor, Rules, UnsafeArchive
from sandbox.oci.layout import OciError
from sandbox.steps import Steps, record



def _iter_tree(root: Path) -> Iterator[str]:
    """Relative paths under ``root`` (not following links), parents before children, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for n in sorted(dirnames + filenames):
            yield n if rel == "." else f"{rel}/{n}"


def write_layer(rootfs: Path, paths: Iterable[str], out: Path, *, gzip_level: int = 6,
                algorithm: str = "sha256") -> tuple[str, str]:
    """Write the entries ``paths`` (relative to ``rootfs``; parents must be listed) as a gzip
    layer to ``out``. Returns (digest of the blob, diff_id = digest of the uncompressed tar),
    both with ``algorithm`` (sha256, the convention, or sha512).

    Deterministic: entries in the given order, PAX format, the gzip header's mtime is 0; owners,
    modes and mtimes come from the files. Hard links inside one layer are kept as links.
    """
    diff = hashlib.new(algorithm)

    class _Tee(io.RawIOBase):
        def __init__(self, inner: BinaryIO) -> None:
            self.inner = inner

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:  # type: ignore[override]
            diff.update(b)
            return self.inner.write(b)

    with open(out, "wb") as raw:
        blob = _HashFile(raw, algorithm)
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
    return f"{algorithm}:{blob.sha.hexdigest()}", f"{algorithm}:{diff.hexdigest()}"


class _HashFile(io.RawIOBase):
    def __init__(self, inner: BinaryIO, algorithm: str = "sha256") -> None:
        self.inner, self.sha = inner, hashlib.new(algorithm)

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        self.sha.update(b)
        return self.inner.write(b)




def apply_layer(tar: tarfile.TarFile, rootfs: Path, steps: Steps | None = None, *,
                extractor: Extractor | None = None) -> dict[str, int]:
    """Apply one layer on ``rootfs`` (layer.md §Applying Changesets) with the one extractor
    (:mod:`sandbox.image.extract`): ``.wh.NAME`` deletes NAME from the lower layers,
    ``.wh..wh..opq`` empties its directory of lower-layer content (wherever they sit in the
    tar), the layer's entries replace what exists; the same safety rules as ACI extraction and
    rendering. ``extractor``: one that applied the layers below (its bookkeeping then knows the
    tree; without it, what is on disk counts as lower layers)."""
    own = extractor is None
    try:
        ex = extractor or Extractor(rootfs, Rules(keep_setid=True), steps=steps, show="")
        try:
            c = ex.apply(tar, whiteouts=True, root_meta=False, what=f"the layer applied to {rootfs}")
        finally:
            if own:
                ex.close()
    except (UnsafeArchive, ArchiveTooLarge) as e:
        raise OciError(str(e)) from e
    except OSError as e:
        raise OciError(f"applying a layer to {rootfs} failed: {e.strerror or e}"
                       + (f" ({e.filename})" if e.filename else "") + ".") from e
    except (tarfile.TarError, EOFError) as e:
        raise OciError(f"a layer applied to {rootfs} is unreadable ({e}).") from e
    counts = {"whiteouts": c["whiteouts"], "opaque": c["opaque"], "entries": c["entries"]}
    record(steps, "write", f"layer applied to {rootfs}", **counts)
    return counts


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
