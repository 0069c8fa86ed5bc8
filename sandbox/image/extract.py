"""The one extractor: tar entries written into a directory tree by one set of rules, for an
ACI's rootfs (:func:`sandbox.image.aci.extract_rootfs`), each layer of a render
(:mod:`sandbox.render.rootfs`) and each OCI layer (:func:`sandbox.oci.layer.apply_layer`).

The archive's author is not trusted (docs/security.md). The rules, the same for all three:

* **Names**: an absolute name or one with a ``..`` component is refused. Within one archive each
  path is written once: a duplicate entry (aci.md §Image Archives, layer.md §Distributable
  Format: no duplicate entries) and an entry that would replace or go below something the same
  archive wrote a moment earlier (``a/b/`` then ``a`` as a symlink) are refused.
* **Earlier content** (an earlier layer, or what was in the target before) is overwritten
  (ace.md §Filesystem Setup, layer.md §Changeset over existing files): a directory over a
  directory merges, anything else removes what was there first, a whole subtree included; a
  non-directory where a directory is needed is replaced by a directory.
* **Nothing is followed**: every directory is reached from the tree's root with no symlink on the
  way (:mod:`sandbox._sys.inroot`, ``follow=False``), every entry is created relative to its
  parent's descriptor with ``O_NOFOLLOW``/``O_EXCL``, and modes, owners, xattrs and times are set
  on descriptors — directories' at the end of the archive, through a fresh no-follow lookup, so
  a link the archive puts there later cannot redirect them.
* **Links**: a symlink's target is stored as is, but a relative target that climbs above the
  tree's root is refused; a hard link must name an earlier non-directory entry of the same
  archive.
* **Special files**: FIFOs are created; device nodes only for root with ``allow_devices`` (else
  skipped with a warning: the runtime makes /dev); other entry types are refused.
* **Privileges**: setuid/setgid bits and the ``security.capability`` xattr are kept only with
  ``keep_setid`` (trees under the private 0700 tree store, OCI conversion); other xattrs outside
  ``user.*`` and POSIX ACLs (``trusted.*`` — overlayfs reads ``trusted.overlay.*`` —,
  ``security.*``) are dropped with a warning.
* **Limits**: file content may not exceed ``max_bytes`` (default: the free space of the tree's
  file system) nor the archive ``max_entries`` entries (default ``ARCHIVE_ENTRIES`` of
  :mod:`sandbox.bounded`, docs/security.md §Limits).
* **OCI whiteouts** (``whiteouts=True``, layer.md §Whiteouts): ``.wh.NAME`` removes NAME of the
  lower layers, ``.wh..wh..opq`` empties its directory of lower-layer content; both only touch
  what earlier layers wrote, whatever their position in the tar. NAME must be one ordinary
  name; ``.wh.``, ``.wh..``, ``.wh...``, other ``.wh..wh.*`` names and ``.wh.`` directories
  are refused.

Bookkeeping is linear: one dict of what is on disk (type, layer, written by the archive or
implied) and one of each directory's children, so removing a subtree costs its size.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sandbox import bounded
from sandbox._sys import inroot
from sandbox.errors import SandboxError
from sandbox.steps import Steps, record

BUFSIZE = 1 << 20
WHITEOUT = ".wh."            # layer.md §Whiteouts
OPAQUE = ".wh..wh..opq"      # layer.md §Opaque Whiteout
SETID = stat.S_ISUID | stat.S_ISGID
_LINKABLE = ("file", "symlink", "fifo", "device")   # what a hard link may name
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeArchive(SandboxError):
    """An entry would write outside the tree, through a link, or over its own archive's work."""


class ArchiveTooLarge(bounded.InputTooLarge):
    """The archive expands past the size or entry-count limit (a decompression bomb?)."""


@dataclass
class Rules:
    """What an extraction keeps. The defaults are for a directory a user named; the tree store
    and OCI conversion (private directories) keep setid bits (``keep_setid``)."""

    keep_setid: bool = False
    allow_devices: bool = False
    max_bytes: int | None = None          # None: the free space of the tree's file system
    max_entries: int | None = None        # None: bounded.ARCHIVE_ENTRIES


@dataclass
class Result:
    """What the extraction did."""

    dest: Path
    entries: int = 0
    bytes_written: int = 0
    warnings: list[str] = field(default_factory=list)


def normalize_entry(name: str) -> str | None:
    """The entry name as a relative path, or None when it is unsafe.

    ``./rootfs/bin/`` -> ``rootfs/bin``. Absolute names and names with a ``..`` component are
    unsafe (None): an archive must never address anything outside its own tree.
    """
    if name.startswith("/") or not name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return "/".join(parts)


def symlink_escapes(entry: str, target: str) -> bool:
    """True when the relative symlink target of ``entry`` (a path in the tree, with or without a
    leading "/") climbs above the tree's root, resolved lexically ("../../etc")."""
    if target.startswith("/"):
        return False   # absolute targets mean the container's root; they are never followed here
    depth = len([p for p in posixpath.dirname(entry.lstrip("/")).split("/") if p])
    for p in target.split("/"):
        if p == "..":
            depth -= 1
            if depth < 0:
                return True
        elif p not in ("", "."):
            depth += 1
    return False


def entry_type(m: tarfile.TarInfo) -> str:
    """dir, file, symlink, hardlink, fifo, device or other."""
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    if m.isfifo():
        return "fifo"
    if m.ischr() or m.isblk():
        return "device"
    if m.isreg():
        return "file"
    return "other"


def rmtree_at(parent_fd: int, name: str) -> None:
    """Remove the directory ``name`` below ``parent_fd`` and all it holds, never following a
    symlink (every level is opened with O_NOFOLLOW relative to its parent)."""
    fd = os.open(name, _NOFOLLOW_DIR, dir_fd=parent_fd)
    try:
        with os.scandir(fd) as it:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for n, is_dir in names:
            if is_dir:
                rmtree_at(fd, n)
            else:
                os.unlink(n, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def _check_header(m: tarfile.TarInfo, refuse: Callable[[tarfile.TarInfo, str], Exception]) -> None:
    """Numbers and names the kernel will be given must fit its types (a PAX header can say
    anything: a NUL in a name, link target or xattr name, which no system call takes)."""
    if "\0" in m.name or "\0" in m.linkname or any("\0" in k for k in m.pax_headers or {}):
        raise refuse(m, "has a NUL byte in its name, link target or an xattr name")
    for what, v in (("owner", m.uid), ("group", m.gid)):
        if not isinstance(v, int) or not 0 <= v < 0xFFFFFFFF:   # 2^32-1 means "unchanged"
            raise refuse(m, f"has the {what} id {v!r}, outside 0..4294967294")
    if not isinstance(m.mtime, (int, float)) or not -(1 << 62) < m.mtime < (1 << 62) \
            or m.mtime != m.mtime:
        raise refuse(m, f"has the modification time {m.mtime!r}, which is not a time")
    if m.size < 0:
        raise refuse(m, f"has the negative size {m.size}")
    if m.isdev() and not (0 <= m.devmajor < 1 << 12 and 0 <= m.devminor < 1 << 20):
        raise refuse(m, f"is a device {m.devmajor}:{m.devminor}, outside Linux's numbers")


class _Node:
    """What is at one path of the tree: its type, the layer that put it there, and whether an
    entry named it (False: a directory made for an entry below it)."""

    __slots__ = ("type", "layer", "explicit")

    def __init__(self, type: str, layer: int, explicit: bool) -> None:
        self.type, self.layer, self.explicit = type, layer, explicit


EventFn = Callable[..., None]
AdmitFn = Callable[[str, bool], list]


class Extractor:
    """Writes archives into the tree at ``root``, one after the other (layers), by the rules
    above. ``on_event(path, kind, layer, type="", other=None, by=None, at=None)`` hears every
    decision (the render trace): ``wrote``, ``overrode``, ``merged``, ``implicit``,
    ``shadowed``, ``filtered``, ``skipped``. Paths in events start with "/". Close it (or use
    it as a context manager) to release its descriptors."""

    def __init__(self, root: str | os.PathLike[str], rules: Rules | None = None, *,
                 steps: Steps | None = None, on_event: EventFn | None = None,
                 show: str = "/", log_entries: bool = False) -> None:
        self.root = Path(root)
        self.rules = rules or Rules()
        self.steps = steps
        self.on_event = on_event
        self.show = show                    # prefix of paths in warnings and steps
        self.log_entries = log_entries      # one "write" step per entry
        self.is_root = os.geteuid() == 0
        self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with os.scandir(self.fd) as it:     # an empty tree: the bookkeeping knows all of it
            self.fresh = next(it, None) is None
        sv = os.fstatvfs(self.fd)
        self.max_bytes = (self.rules.max_bytes if self.rules.max_bytes is not None
                          else sv.f_bavail * sv.f_frsize)
        self.result = Result(self.root)
        self.nodes: dict[str, _Node] = {"": _Node("dir", 0, False)}
        self.children: dict[str, set[str]] = {"": set()}
        self.layer = 0
        self._dirfds: dict[str, int] = {}   # parent directories open right now (by path)

    # -- the public part

    def apply(self, tar: tarfile.TarFile, *, layer: int | None = None, prefix: str | None = None,
              admit: AdmitFn | None = None, whiteouts: bool = False, root_meta: bool = True,
              what: str = "the archive") -> dict[str, int]:
        """Write every entry of ``tar`` (read once, in order). ``prefix``: only entries below
        it count (an ACI's ``rootfs``), the prefix itself is the tree's root. ``admit(path,
        is_dir)`` returns who refuses a path (a pathWhitelist); ``whiteouts``: OCI semantics;
        ``root_meta``: apply the root entry's mode/owner to the tree's root. Returns counts."""
        self.layer = layer if layer is not None else self.layer + 1
        self.what = what
        counts = {"entries": 0, "filtered": 0, "skipped": 0, "whiteouts": 0, "opaque": 0}
        self.members: dict[str, str] = {}   # this archive's entries: path -> type
        self.sizes: dict[str, int] = {}     # its files' sizes (a hard link may need a copy)
        self.sparse: dict[str, list] = {}   # its sparse files' data regions (offset, length)
        self.pending: dict[str, tarfile.TarInfo] = {}   # this archive's directories' metadata
        self.root_seen = False
        self.archive_bytes = 0              # the sizes of this archive's files (sparse: apparent)
        seen = 0
        most = (self.rules.max_entries if self.rules.max_entries is not None
                else bounded.ARCHIVE_ENTRIES.value)
        try:
            for m in tar:
                seen += 1
                if len(self._dirfds) > 64:      # between entries: none of them is in use
                    self._drop_dirfds()
                if seen > most:
                    raise bounded.too_large(bounded.ARCHIVE_ENTRIES, f"the number of entries of {what}",
                                            bound=most, cls=ArchiveTooLarge)
                self._entry(tar, m, prefix, admit, whiteouts, root_meta, counts)
            self._finish_dirs()
        finally:
            self._drop_dirfds()
        return counts

    def owners(self) -> dict[str, int]:
        """{"/path": layer} of everything in the tree the bookkeeping knows (not the root)."""
        return {"/" + p: n.layer for p, n in self.nodes.items() if p}

    # close and the context manager as _sys.inroot.Root's: each owns its own descriptors
    def close(self) -> None:
        self._drop_dirfds()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Extractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one entry

    def _refuse(self, m: tarfile.TarInfo, why: str) -> UnsafeArchive:
        return UnsafeArchive(f"the entry '{m.name}' of {self.what} {why}; the archive is refused.")

    def _event(self, rel: str, kind: str, typ: str = "", **kw: object) -> None:
        if self.on_event is not None:
            self.on_event("/" + rel, kind, self.layer, typ, **kw)

    def _warn(self, rel: str, msg: str, **step: object) -> None:
        self.result.warnings.append(f"{self.show}{rel}: {msg}")
        if step:
            record(self.steps, "skip" if "reason" in step else "check", f"{self.show}{rel}", **step)

    def _entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo, prefix: str | None,
               admit: AdmitFn | None, whiteouts: bool, root_meta: bool,
               counts: dict[str, int]) -> None:
        # Long on purpose: one entry's security rules in the order they must be applied (name,
        # header, whiteouts, type, duplicates and links, devices, the filter, the size budget, what
        # it replaces, then the write); split, that order would no longer show in one place.
        name = normalize_entry(m.name)
        if name is None:
            if m.name.rstrip("/") in ("", ".") and prefix is None:
                rel = ""              # the layer's own root ("./", umoci writes it)
            else:
                raise self._refuse(m, "is absolute or contains '..', so it would write outside "
                                      "the tree")
        elif prefix is not None:
            if name == prefix:
                rel = ""
            elif name.startswith(prefix + "/"):
                rel = name[len(prefix) + 1:]
            else:
                return                # e.g. an ACI's manifest: not part of the tree
        else:
            rel = name
        typ = entry_type(m)
        _check_header(m, self._refuse)
        if rel == "":
            if typ != "dir":
                raise self._refuse(m, "is the tree's root but not a directory")
            if self.root_seen:
                raise self._refuse(m, "appears twice (no duplicate entries)")
            self.root_seen = True
            if root_meta:
                self.pending[""] = m
            return
        parts = rel.split("/")
        if len(parts) > bounded.PATH_DEPTH.value:
            raise bounded.too_large(bounded.PATH_DEPTH, f"the depth of the entry '{m.name[:200]}' "
                                    f"of {self.what}", len(parts), cls=ArchiveTooLarge)
        if whiteouts:
            if any(p.startswith(WHITEOUT) for p in parts[:-1]):
                raise self._refuse(m, "lies below a whiteout name ('.wh.' is reserved, layer.md)")
            if parts[-1].startswith(WHITEOUT):
                self._whiteout(m, rel, parts, counts)
                return
        if typ == "other":
            raise self._refuse(m, f"has the unsupported tar type {m.type!r}")
        if rel in self.members:
            raise self._refuse(m, "appears twice (an archive has no duplicate entries)")
        self.members[rel] = typ
        if typ == "symlink" and not 0 < len(os.fsencode(m.linkname)) < 4096:
            raise self._refuse(m, f"is a symlink whose target has {len(os.fsencode(m.linkname))} "
                                  "bytes (Linux takes 1 to 4095)")
        if typ == "symlink" and symlink_escapes(rel, m.linkname):
            raise self._refuse(m, f"is a symlink to '{m.linkname}', which climbs above the "
                                  "rootfs")
        link_to = None
        if typ == "file":
            self.sizes[rel] = m.size
            if m.issparse():
                self.sparse[rel] = list(m.sparse or [])
        elif typ == "hardlink":
            link_to = self._link_target(m, prefix)
            # a hard link is what it links to (a link to a link to a device is a device)
            self.members[rel] = self.members[link_to]
            if link_to in self.sizes:
                self.sizes[rel] = self.sizes[link_to]
            if link_to in self.sparse:
                self.sparse[rel] = self.sparse[link_to]
        devices = self.rules.allow_devices and self.is_root
        if typ == "hardlink" and self.members[rel] == "device" and not devices:
            self._event(rel, "skipped", typ)
            self._warn(rel, "hard link to a skipped device node skipped", reason="device node")
            counts["skipped"] += 1
            return
        if typ == "device" and not devices:
            self._event(rel, "skipped", typ)
            self._warn(rel, "device node skipped (only root with allow_devices may create "
                            "devices; the runtime makes /dev)", reason="device node")
            counts["skipped"] += 1
            return
        if admit is not None:
            refused = admit("/" + rel, typ == "dir")
            if refused:
                self._event(rel, "filtered", typ, by=refused)
                counts["filtered"] += 1
                return
        if typ == "file":
            self._room(m, m.size)
        self._parents(m, parts)
        pfd = self._dirfd("/".join(parts[:-1]))
        leaf = parts[-1]
        have = self._have(rel, pfd, leaf)
        if have is not None and have.type == "dir" and typ == "dir":
            self._event(rel, "merged", typ, other=have.layer)
            have.layer, have.explicit = self.layer, True
            self.pending[rel] = m
            counts["entries"] += 1
            self.result.entries += 1
            return
        if have is not None:
            if have.layer == self.layer:
                how = ("wrote before it" if have.explicit
                       else "made as the directory of its earlier entries")
                raise self._refuse(m, f"would replace '{self.show}{rel}', which the same archive "
                                      f"{how}")
            self._remove(rel, pfd, leaf, have)
            self._event(rel, "overrode", typ, other=have.layer)
        else:
            self._event(rel, "wrote", typ)
        self._create(tar, m, typ, rel, pfd, leaf, link_to)
        self._add(rel, self.members[rel] if typ == "hardlink" else typ, True)
        if typ == "dir":
            self.pending[rel] = m
        counts["entries"] += 1
        self.result.entries += 1
        if self.log_entries and self.steps is not None:
            self.steps.add("write", f"{self.show}{rel}", type=typ)

    def _room(self, m: tarfile.TarInfo, size: int) -> None:
        # one archive makes files of at most IMAGE_BYTES, as its tar may hold at most that much
        # (aci.inspect): a sparse entry's holes would otherwise be hashed for the tree store's
        # index however large it claims them
        if self.archive_bytes + size > bounded.IMAGE_BYTES.value:
            raise bounded.too_large(bounded.IMAGE_BYTES, f"the files of {self.what} (the entry "
                                    f"'{m.name[:200]}' brings them to "
                                    f"{self.archive_bytes + size} bytes)", cls=ArchiveTooLarge)
        left = self.max_bytes - self.result.bytes_written
        if size > left:
            raise ArchiveTooLarge(
                f"the entry '{m.name}' of {self.what} is {size} bytes, more than the {left} "
                "bytes left under the extraction limit (by default the free space of the file "
                "system); it may be a decompression bomb.")

    def _link_target(self, m: tarfile.TarInfo, prefix: str | None) -> str:
        t = normalize_entry(m.linkname)
        if t is not None and prefix is not None:
            t = t[len(prefix) + 1:] if t.startswith(prefix + "/") else None
        if t is None or self.members.get(t) not in _LINKABLE or t == "":
            raise self._refuse(m, f"is a hard link to '{m.linkname}', which is not an earlier "
                                  "file of the same archive")
        return t

    # -- the tree

    def _have(self, rel: str, pfd: int, leaf: str) -> _Node | None:
        node = self.nodes.get(rel)
        if node is not None or self.fresh:
            return node
        return self._on_disk(rel, pfd, leaf)

    def _on_disk(self, rel: str, pfd: int, leaf: str) -> _Node | None:
        """What was in the tree before this extractor (an earlier layer, number 0)."""
        try:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        kind = ("dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode)
                else "file")
        return self._add(rel, kind, False, layer=0)

    def _add(self, rel: str, typ: str, explicit: bool, layer: int | None = None) -> _Node:
        node = _Node(typ, self.layer if layer is None else layer, explicit)
        self.nodes[rel] = node
        parent = rel.rpartition("/")[0]
        self.children.setdefault(parent, set()).add(rel)
        if typ == "dir":
            self.children.setdefault(rel, set())
        return node

    def _forget(self, rel: str, at: str | None) -> None:
        """Drop ``rel`` and everything below it from the bookkeeping (``at``: emit 'shadowed'
        for what is below, caused by a write at ``at``)."""
        stack = [rel]
        while stack:
            p = stack.pop()
            self.nodes.pop(p, None)
            self.pending.pop(p, None)
            below = self.children.pop(p, ())
            for c in below:
                if at is not None:
                    self._event(c, "shadowed", at="/" + at)
                stack.append(c)
        self.children.get(rel.rpartition("/")[0], set()).discard(rel)

    def _remove(self, rel: str, pfd: int, leaf: str, have: _Node) -> None:
        if have.type == "dir":
            self._drop_dirfds(below=rel)
            rmtree_at(pfd, leaf)
        else:
            os.unlink(leaf, dir_fd=pfd)
        self._forget(rel, rel)

    def _parents(self, m: tarfile.TarInfo, parts: list[str]) -> None:
        """Every directory above the entry exists, as a directory (made if missing; an earlier
        layer's non-directory there is replaced)."""
        cur = ""
        for part in parts[:-1]:
            parent, cur = cur, f"{cur}/{part}" if cur else part
            node = self.nodes.get(cur)
            if node is not None and node.type == "dir":
                continue
            pfd = self._dirfd(parent)
            if node is None and not self.fresh:
                node = self._have(cur, pfd, part)
                if node is not None and node.type == "dir":
                    continue
            if node is not None:
                if node.layer == self.layer:
                    raise self._refuse(m, f"lies below '{self.show}{cur}', which the same archive "
                                          f"made a {node.type}")
                self._remove(cur, pfd, part, node)
                self._event(cur, "overrode", "dir", other=node.layer)
            else:
                self._event(cur, "implicit", "dir")
            os.mkdir(part, 0o755, dir_fd=pfd)
            self._add(cur, "dir", False)

    def _dirfd(self, rel: str) -> int:
        """A descriptor of the directory ``rel``, reached from the root with no symlink on the
        way (kept open for the next entries of the same directory)."""
        if rel == "":
            return self.fd
        fd = self._dirfds.get(rel)
        if fd is None:
            try:
                fd = inroot.open_in(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY, follow=False)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeArchive(f"'{self.show}{rel}' is a symlink or a file where "
                                        f"{self.what} needs a directory; extraction never "
                                        "follows links, so it is refused.") from e
                raise
            self._dirfds[rel] = fd
        return fd

    def _drop_dirfds(self, below: str | None = None) -> None:
        for p in list(self._dirfds):
            if below is None or p == below or p.startswith(below + "/"):
                os.close(self._dirfds.pop(p))

    def _create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, typ: str, rel: str, pfd: int,
                leaf: str, link_to: str | None) -> None:
        if typ == "dir":
            os.mkdir(leaf, 0o700, dir_fd=pfd)   # private until its metadata is applied
        elif typ == "file":
            self._write(m, m.size, rel, pfd, leaf, tar.extractfile(m), self.sparse.get(rel))
        elif typ == "hardlink":
            assert link_to is not None
            node = self.nodes.get(link_to)
            if node is not None and node.layer == self.layer and node.explicit \
                    and node.type != "dir":
                tparts = link_to.rpartition("/")
                os.link(tparts[2], leaf, src_dir_fd=self._dirfd(tparts[0]), dst_dir_fd=pfd,
                        follow_symlinks=False)
                return
            # its target was filtered out (a pathWhitelist): the content, as a file of its own
            if self.members.get(link_to) != "file":
                raise self._refuse(m, f"is a hard link to '{m.linkname}', which is not in the tree")
            try:
                src = tar.extractfile(m)
            except (KeyError, tarfile.StreamError) as e:
                raise self._refuse(m, f"is a hard link to '{m.linkname}', whose content cannot "
                                      "be read again from this archive") from e
            self._room(m, self.sizes[link_to])
            self._write(m, self.sizes[link_to], rel, pfd, leaf, src, self.sparse.get(link_to))
        elif typ == "symlink":
            os.symlink(m.linkname, leaf, dir_fd=pfd)   # stored as is; never followed here
            if self.is_root:
                os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(leaf, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        else:                                   # fifo, device
            kind = (stat.S_IFIFO if typ == "fifo" else stat.S_IFCHR if m.ischr()
                    else stat.S_IFBLK)
            dev = os.makedev(m.devmajor, m.devminor) if typ == "device" else 0
            os.mknod(leaf, kind | 0o600, dev, dir_fd=pfd)
            # never opened for I/O (a FIFO blocks, a device acts): an O_PATH fd of the node
            fd = os.open(leaf, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
                    raise self._refuse(m, "was replaced while it was being created")
                self._meta(fd, rel, m, path_fd=True)
                os.utime(leaf, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(fd)

    def _write(self, m: tarfile.TarInfo, size: int, rel: str, pfd: int, leaf: str,
               src: object, sparse: list | None = None) -> None:
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            read = getattr(src, "read", None)
            # a sparse entry: only its data regions are written, its holes stay holes (written
            # out, a few KiB of archive claiming gigabytes of holes filled the disk with zeros)
            regions = [(0, size)] if sparse is None else \
                [(o, min(n, size - o)) for o, n in sparse if n > 0 and 0 <= o < size]
            for offset, length in regions:
                if sparse is not None:
                    src.seek(offset)            # type: ignore[attr-defined]
                done = 0
                while done < length:
                    chunk = read(min(BUFSIZE, length - done)) if read is not None else b""
                    if not chunk:
                        raise UnsafeArchive(f"the entry '{m.name}' of {self.what} is truncated; "
                                            "the archive is damaged.")
                    os.pwrite(fd, chunk, offset + done)
                    done += len(chunk)
            if sparse is not None:
                os.ftruncate(fd, size)
            self.result.bytes_written += size
            self.archive_bytes += size
            self._meta(fd, rel, m)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def _meta(self, fd: int, rel: str, m: tarfile.TarInfo, path_fd: bool = False) -> None:
        """Owner, mode and xattrs of the object ``fd`` holds (owner first: chown clears setid)."""
        mode = m.mode & 0o7777
        if mode & SETID and not self.rules.keep_setid:
            mode &= ~SETID
            self._warn(rel, "setuid/setgid bits dropped (keep_setid to keep them)",
                       rule="setuid/setgid dropped", mode=oct(m.mode))
        if path_fd:
            if self.is_root:
                inroot.chown_fd(fd, m.uid, m.gid)
            inroot.chmod_fd(fd, mode)
            return
        if self.is_root:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, mode)
        self._xattrs(fd, rel, m)

    def _xattrs(self, fd: int, rel: str, m: tarfile.TarInfo) -> None:
        """aci.md: files keep their xattrs; layer.md: so do layers'. File capabilities grant
        privileges like setuid does; ``trusted.*`` and other ``security.*`` names steer the
        kernel (overlayfs reads trusted.overlay.* on its lower layers): dropped."""
        for key, value in (m.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name == "security.capability":
                if not self.rules.keep_setid:
                    self._warn(rel, "file capabilities dropped (keep_setid to keep them)")
                    continue
            elif not (name.startswith("user.") or name in ("system.posix_acl_access",
                                                           "system.posix_acl_default")):
                self._warn(rel, f"xattr {name} dropped (only user.*, POSIX ACLs and file "
                                "capabilities are restored)")
                continue
            try:
                os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
                record(self.steps, "write", f"{self.show}{rel}", xattr=name)
            except OSError as e:
                self._warn(rel, f"xattr {name} not restored ({e.strerror})")

    def _finish_dirs(self) -> None:
        """Directories' metadata last (a read-only directory must not stop its own extraction),
        deepest first, each directory looked up again from the root with no link followed."""
        for rel in sorted(self.pending, key=lambda p: p.count("/") + (p != ""), reverse=True):
            m = self.pending[rel]
            fd = (os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.fd)
                  if rel == "" else
                  inroot.open_in(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY, follow=False))
            try:
                self._meta(fd, rel, m)
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
        self.pending = {}

    # -- OCI whiteouts

    def _whiteout(self, m: tarfile.TarInfo, rel: str, parts: list[str],
                  counts: dict[str, int]) -> None:
        base = parts[-1]
        parent = "/".join(parts[:-1])
        if rel in self.members:
            raise self._refuse(m, "appears twice (an archive has no duplicate entries)")
        self.members[rel] = "whiteout"
        if base == OPAQUE:
            counts["opaque"] += 1
            record(self.steps, "whiteout", f"{self.show}{parent}/", kind="opaque")
            fd = self._lookup_dir(parent)
            if fd is not None:
                self._opaque(parent, fd)
            return
        target = base[len(WHITEOUT):]
        if target in ("", ".", "..") or target.startswith(WHITEOUT):
            raise self._refuse(m, f"is not a whiteout layer.md defines ('.wh.' and one ordinary "
                                  f"name, or '{OPAQUE}')")
        counts["whiteouts"] += 1
        trel = f"{parent}/{target}" if parent else target
        record(self.steps, "whiteout", f"{self.show}{trel}", kind="file")
        fd = self._lookup_dir(parent)
        if fd is None:
            return
        have = self._have(trel, fd, target)
        if have is not None and have.layer != self.layer:   # only lower layers' content
            self._remove(trel, fd, target, have)

    def _lookup_dir(self, rel: str) -> int | None:
        """The directory ``rel`` if it is one (no link followed), else None: a whiteout below a
        file or a link removes nothing."""
        node = self.nodes.get(rel)
        if node is not None and node.type != "dir":
            return None
        try:
            return self._dirfd(rel)
        except (UnsafeArchive, FileNotFoundError, NotADirectoryError):
            return None

    def _opaque(self, rel: str, fd: int) -> None:
        """Remove what lower layers put in the directory ``rel``; what this layer wrote stays
        (and directories it wrote lose their lower-layer content too)."""
        with os.scandir(fd) as it:
            names = [e.name for e in it]
        for n in names:
            crel = f"{rel}/{n}" if rel else n
            node = self.nodes.get(crel) or self._on_disk(crel, fd, n)
            if node is None:
                continue
            if node.layer != self.layer:
                self._remove(crel, fd, n, node)
            elif node.type == "dir":
                sub = os.open(n, _NOFOLLOW_DIR, dir_fd=fd)   # not cached: a deep tree needs many
                try:
                    self._opaque(crel, sub)
                finally:
                    os.close(sub)
