"""App Container Images (ACI): build, read, validate, identify and safely extract.

Spec: appc 0.8.11 spec/aci.md.

* §Image Archives: an ACI is a tar holding exactly two top-level names, ``manifest`` (a regular
  file, the ImageManifest JSON) and ``rootfs`` (a directory), with no duplicate entries. Files keep
  their timestamps, modes and xattrs. The tar MAY be compressed with gzip, bzip2 or xz; the reader
  tells which by the first bytes (magic numbers), never by the file name.
* §Image ID: ``sha512-`` + the lowercase hex SHA-512 of the *uncompressed* tar. So a plain, gzip,
  bzip2 or xz file holding one tar have one ID.

This module adds what the spec leaves to implementations:

* reproducible builds: entries in sorted order, parents first; no user/group names; the gzip
  header carries no time or file name. The same layout gives the same bytes.
* safe extraction (:func:`extract_rootfs`): nothing is ever written outside the target, and
  nothing already inside it (a symlink) is followed while writing.
"""
from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.image.extract import (ArchiveTooLarge, Extractor, Result, Rules, UnsafeArchive,
                                   entry_type, normalize_entry)
from sandbox.image.manifest import ImageManifest
from sandbox.steps import Steps, record, snapshotting

COMPRESSIONS = ("none", "gzip", "bzip2", "xz")
# aci/file.go DetectFileType uses the same magic numbers.
MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}
TAR_MAGIC_OFFSET = 257        # "ustar" at offset 257 of the first header block
HASH_PREFIX = "sha512-"
SHORT_HEX = 32                # appc types.ShortHash: sha512- + 32 hex
STORE_KEY_HEX = 64            # rkt store key: sha512- + 64 hex (half the digest)
BUFSIZE = 4 << 20             # read/hash in 4 MiB chunks
GZIP_LEVEL = 6                # zlib's default, the same trade-off Go's compress/gzip makes


class InvalidImage(SandboxError):
    """The file is not a valid ACI (or layout, or manifest); ``problems`` lists why."""

    def __init__(self, problems: list[str], source: str = "image") -> None:
        self.problems = list(problems)
        super().__init__(f"{source} is not a valid ACI: " + "; ".join(self.problems))


# What reading a damaged archive raises, besides the kit's own errors: tarfile's, the
# decompressors' (gzip: BadGzipFile/EOFError, bzip2: OSError/EOFError, xz: LZMAError).
CORRUPT = (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error)


@contextlib.contextmanager
def archive_errors(where: str) -> Iterator[None]:
    """Inside the block, what a damaged archive raises becomes :class:`InvalidImage`. An OSError
    with an errno (disk full, permission) is the machine's, not the archive's: it passes."""
    try:
        yield
    except CORRUPT as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise InvalidImage([f"the archive is unreadable ({type(e).__name__}: {e})"], where) from e


# ---------------------------------------------------------------------------- image IDs

def _hex_of(image_id: str) -> str:
    if not image_id.startswith(HASH_PREFIX):
        raise SandboxError(f"'{image_id}' is not an image ID; IDs look like sha512-<hex>.")
    return image_id[len(HASH_PREFIX):]


def short_id(image_id: str) -> str:
    """The short form appc prints (types.ShortHash): ``sha512-`` + the first 32 hex digits."""
    return HASH_PREFIX + _hex_of(image_id)[:SHORT_HEX]


def store_key(image_id: str) -> str:
    """rkt's image-store key: ``sha512-`` + the first 64 hex digits (half the digest)."""
    return HASH_PREFIX + _hex_of(image_id)[:STORE_KEY_HEX]


# ---------------------------------------------------------------------------- compression

def detect_compression(path: str | os.PathLike[str] | bytes) -> str:
    """``none``, ``gzip``, ``bzip2`` or ``xz`` by magic bytes; ``unknown`` if it is none of them.

    ``path`` may also be the first bytes of a file (at least 262 for a plain tar).
    """
    if isinstance(path, (bytes, bytearray)):
        head = bytes(path[:512])
    else:
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except FileNotFoundError:
            raise SandboxError(f"{path} does not exist; give the path of an .aci file.") from None
        except IsADirectoryError:
            raise SandboxError(f"{path} is a directory; give the path of an .aci file.") from None
    for name, magic in MAGIC.items():
        if head.startswith(magic):
            return name
    if head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "none"
    return "unknown"


def _decompressing(raw: BinaryIO, compression: str) -> BinaryIO:
    if compression == "none":
        return raw
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(raw, "rb", format=lzma.FORMAT_XZ)  # type: ignore[return-value]
    raise InvalidImage(["the file is neither a tar nor gzip, bzip2 or xz "
                        "(no magic number matched)"], "file")


class ImageTooLarge(bounded.InputTooLarge):
    """An image's uncompressed tar is over IMAGE_BYTES (a decompression bomb?)."""


def _image_too_large() -> ImageTooLarge:
    return bounded.too_large(bounded.IMAGE_BYTES, "its uncompressed tar",  # type: ignore[return-value]
                             cls=ImageTooLarge)


class _Meter(io.RawIOBase):
    """Reads a stream while hashing (SHA-512) and counting it, with an optional byte limit."""

    def __init__(self, inner: BinaryIO, limit: int | None = None, what: str = "archive",
                 too_large: Any = None) -> None:
        self.inner, self.limit, self.what = inner, limit, what
        self.too_large = too_large          # the error over the limit (default: extraction's)
        self.sha = hashlib.sha512()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # type: ignore[override]
        mv = memoryview(b).cast("B")
        n = self.inner.readinto(mv) if hasattr(self.inner, "readinto") else None
        if n is None:
            data = self.inner.read(len(mv))
            n = len(data)
            mv[:n] = data
        if n:
            self.sha.update(mv[:n])
            self.count += n
            if self.limit is not None and self.count > self.limit:
                if self.too_large is not None:
                    raise self.too_large()
                raise ArchiveTooLarge(
                    f"{self.what} expands to more than {self.limit} bytes, the extraction limit; "
                    "it may be a decompression bomb (raise max_bytes / --max-size if you trust it).")
        return n

    def drain(self) -> None:
        buf = bytearray(BUFSIZE)
        while self.readinto(buf):
            pass

    @property
    def image_id(self) -> str:
        return HASH_PREFIX + self.sha.hexdigest()


# Tar metadata headers (POSIX.1-2001 pax "x"/"g", GNU "L"/"K" long names) come before the entry
# they describe, and tarfile reads each into memory and recurses once per header; sparse maps
# (old GNU "S" headers, PAX GNU.sparse 0.0/0.1/1.0) are lists it grows as it reads. All of that
# is bounded here (sandbox.bounded: TAR_META_HEADER_BYTES, TAR_HEADER_CHAIN, TAR_SPARSE_ENTRIES),
# and a malformed header is a tarfile.ReadError, never another exception.
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
               tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


_MAX_OFFSET = 1 << 62


class BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that reads hostile headers safely: pass ``tarinfo=BoundedTarInfo`` to every
    ``tarfile.open`` of an archive the kit did not write (or use :func:`bounded_tar`)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        meta = self.type in _META_TYPES
        depth = getattr(tarfile_, "_sbx_chain", 0)
        if meta:
            _meta_header_fits(self, tarfile_, depth)
            tarfile_._sbx_chain = depth + 1  # type: ignore[attr-defined]
        try:
            m = super()._proc_member(tarfile_)
            # no file holds more than 2**63 bytes (off_t); a header claiming more would make
            # tarfile seek past what a file offset can say (a ValueError, not a tar error)
            if not 0 <= m.size < _MAX_OFFSET or not 0 <= tarfile_.offset < _MAX_OFFSET:
                raise tarfile.ReadError(f"the tar entry at byte {self.offset} claims {m.size} "
                                        "bytes, more than any file holds")
            return m
        except (ValueError, IndexError, OverflowError) as e:
            # tarfile's own parsing met a field it cannot read (an int of 5000 digits, a sparse
            # map cut short): the header is malformed
            raise tarfile.ReadError(f"a malformed tar header at byte {self.offset} "
                                    f"({type(e).__name__}: {str(e)[:80]})") from e
        finally:
            if meta:
                tarfile_._sbx_chain = depth  # type: ignore[attr-defined]

    def _proc_sparse(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        """Old GNU sparse ("S"): like tarfile's, but bounded and refusing a map cut short
        (tarfile reads extension blocks while each says another follows)."""
        structs, isextended, origsize = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        limit = bounded.TAR_SPARSE_ENTRIES.value
        while isextended:
            buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
            if len(buf) != tarfile.BLOCKSIZE:
                raise tarfile.ReadError("the archive ends inside a sparse header")
            for pos in range(0, 21 * 24, 24):
                try:
                    offset = tarfile.nti(buf[pos:pos + 12])
                    numbytes = tarfile.nti(buf[pos + 12:pos + 24])
                except tarfile.InvalidHeaderError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            _sparse_fits(len(structs), limit)
            isextended = bool(buf[504])
        self.sparse = structs
        self.offset_data = tarfile_.fileobj.tell()
        tarfile_.offset = self.offset_data + self._block(self.size)
        self.size = origsize
        return self

    def _proc_gnusparse_00(self, next: tarfile.TarInfo, pax_headers: dict,  # type: ignore[override]
                           buf: bytes) -> None:
        _sparse_fits(buf.count(b"GNU.sparse.offset="), bounded.TAR_SPARSE_ENTRIES.value)
        super()._proc_gnusparse_00(next, pax_headers, buf)  # type: ignore[misc]

    def _proc_gnusparse_01(self, next: tarfile.TarInfo, pax_headers: dict) -> None:  # type: ignore[override]
        _sparse_fits(pax_headers["GNU.sparse.map"].count(",") // 2, bounded.TAR_SPARSE_ENTRIES.value)
        super()._proc_gnusparse_01(next, pax_headers)  # type: ignore[misc]

    def _proc_gnusparse_10(self, next: tarfile.TarInfo, pax_headers: dict,  # type: ignore[override]
                           tarfile_: tarfile.TarFile) -> None:
        """PAX sparse 1.0: the map is a count, then numbers, one per line, at the start of the
        data. tarfile trusts the count and reads to EOF for it; here both are bounded."""
        limit = bounded.TAR_SPARSE_ENTRIES.value
        buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        head, nl, buf = buf.partition(b"\n")
        if not nl or not head.isdigit() or len(head) > 12:
            raise tarfile.ReadError("a PAX 1.0 sparse map does not start with its entry count")
        fields = int(head)
        _sparse_fits(fields, limit)
        numbers: list[int] = []
        while len(numbers) < fields * 2:
            if b"\n" not in buf:
                more = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
                if not more or len(buf) > 64:
                    raise tarfile.ReadError("a PAX 1.0 sparse map is cut short or malformed")
                buf += more
                continue
            number, _, buf = buf.partition(b"\n")
            if not number.isdigit() or len(number) > 20:
                raise tarfile.ReadError("a PAX 1.0 sparse map holds something that is not a number")
            numbers.append(int(number))
        next.offset_data = tarfile_.fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2]))


def _meta_header_fits(info: tarfile.TarInfo, tar: tarfile.TarFile, depth: int) -> None:
    limit = bounded.TAR_META_HEADER_BYTES.value
    if info.size > limit:
        raise bounded.too_large(bounded.TAR_META_HEADER_BYTES, "a tar metadata header (PAX or "
                                f"GNU long name) at byte {info.offset}", info.size,
                                cls=ArchiveTooLarge)
    if info.type == tarfile.XGLTYPE:   # global headers add up for the rest of the archive
        total = getattr(tar, "_sbx_global", 0) + info.size
        if total > limit:
            raise bounded.too_large(bounded.TAR_META_HEADER_BYTES,
                                    "the archive's PAX global headers together", total,
                                    cls=ArchiveTooLarge)
        tar._sbx_global = total  # type: ignore[attr-defined]
    if depth >= bounded.TAR_HEADER_CHAIN.value:
        raise bounded.too_large(bounded.TAR_HEADER_CHAIN, f"the chain of tar metadata headers at "
                                f"byte {info.offset}", depth + 1, cls=ArchiveTooLarge)


def _sparse_fits(n: int, limit: int) -> None:
    if n > limit:
        raise bounded.too_large(bounded.TAR_SPARSE_ENTRIES, "the sparse map of a tar entry", n,
                                cls=ArchiveTooLarge)


class _ForwardOnly(io.RawIOBase):
    """A stream that seeks forward by reading, and stops at its end.

    tarfile's own stream mode (``r|``) skips an entry's data by reading block after block for
    as many blocks as the header claims, even after the input has ended: a header claiming
    2**88 bytes kept it busy for ever (the fuzz suite found it). Through this wrapper tarfile
    reads as if the stream were a file: a skip stops at the end, and tarfile's own check then
    says "unexpected end of data". Seeking backwards is a StreamError, as in ``r|``."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.pos = inner, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:  # type: ignore[override]
        n = self.inner.readinto(b)
        self.pos += n or 0
        return n or 0

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self.pos
        elif whence != 0:
            raise tarfile.StreamError("a stream cannot seek from its end")
        if pos < self.pos:
            raise tarfile.StreamError("seeking backwards is not allowed in a stream")
        buf = bytearray(min(pos - self.pos, BUFSIZE))
        while self.pos < pos:
            view = memoryview(buf)[:min(len(buf), pos - self.pos)]
            n = self.inner.readinto(view)
            if not n:
                break                    # the end: the reader will find the data missing
            self.pos += n
        return self.pos


def bounded_tar(fileobj: BinaryIO, *, stream: bool = True) -> tarfile.TarFile:
    """Open an uncompressed tar the kit did not write, with every header limit applied:
    ``stream`` (read in order from any stream, through :class:`_ForwardOnly`) or random access
    (a seekable file)."""
    if stream:
        fileobj = io.BufferedReader(_ForwardOnly(fileobj), BUFSIZE)  # type: ignore[arg-type]
    return tarfile.open(fileobj=fileobj, mode="r:", tarinfo=BoundedTarInfo)


def read_manifest_entry(tar: tarfile.TarFile, m: tarfile.TarInfo, where: str = "the archive") -> bytes:
    """The bytes of an archive's ``manifest`` entry, at most MANIFEST_BYTES (a few KiB of xz
    can inflate to gigabytes; nothing reads it whole before this check)."""
    if m.size > bounded.MANIFEST_BYTES.value:
        raise bounded.too_large(bounded.MANIFEST_BYTES, f"the manifest entry of {where}", m.size)
    f = tar.extractfile(m)
    return bounded.read_at_most(f, bounded.MANIFEST_BYTES, f"the manifest entry of {where}") if f else b""


@contextlib.contextmanager
def open_uncompressed(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, str]]:
    """The uncompressed tar bytes of an ACI as a stream, and the compression detected."""
    with _open_both(path) as (_raw, stream, comp):
        yield stream, comp


@contextlib.contextmanager
def _open_both(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, BinaryIO, str]]:
    """The file as it is on disk, the uncompressed stream over it, and the compression."""
    comp = detect_compression(path)
    if comp == "unknown":
        raise InvalidImage(["the file is neither a tar nor gzip, bzip2 or xz "
                            "(no magic number matched)"], str(path))
    with open(path, "rb") as raw:
        stream = _decompressing(raw, comp)
        try:
            yield raw, stream, comp
        finally:
            if stream is not raw:
                stream.close()


@contextlib.contextmanager
def open_tar(path: str | os.PathLike[str]) -> Iterator[tarfile.TarFile]:
    """A streaming (``r|``) tarfile over the uncompressed tar of an ACI.

    Members must be read in order (``for m in tar: tar.extractfile(m)``). Header limits apply
    (:class:`BoundedTarInfo`); damage met inside the block is an :class:`InvalidImage`.
    """
    with archive_errors(str(path)), open_uncompressed(path) as (stream, _):
        with bounded_tar(stream) as tar:
            yield tar


def image_id(path: str | os.PathLike[str], steps: Steps | None = None) -> str:
    """The image ID: ``sha512-`` + hex SHA-512 of the uncompressed tar, streamed (aci.md §Image ID).

    With a snapshotting ``steps`` (a stepper asked) the same bytes are hashed entry by entry
    instead, one step per tar entry (its 512-byte header block, its data blocks) with the
    running digest after it (:func:`_hash_by_entry`)."""
    if snapshotting(steps):
        return _hash_by_entry(path, steps)
    sha = hashlib.sha512()
    total = 0
    buf = bytearray(BUFSIZE)
    mv = memoryview(buf)
    with open_uncompressed(path) as (stream, comp):
        readinto = getattr(stream, "readinto", None)
        while True:
            if readinto is not None:
                n = readinto(buf)
                if not n:
                    break
                sha.update(mv[:n])
            else:  # pragma: no cover - all our streams have readinto
                chunk = stream.read(BUFSIZE)
                if not chunk:
                    break
                n = len(chunk)
                sha.update(chunk)
            total += n
    iid = HASH_PREFIX + sha.hexdigest()
    record(steps, "hash", str(path), algorithm="sha512", compression=comp,
           bytes_hashed=total, image_id=iid)
    return iid


_NO_DATA = (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
            tarfile.FIFOTYPE)


def _hash_by_entry(path: str | os.PathLike[str], steps: Steps | None) -> str:
    """:func:`image_id` for a stepper: the uncompressed tar read as a tar is laid out — a
    512-byte header block per entry, then its data rounded up to whole blocks, then the zero
    blocks at the end (POSIX ustar) — every byte into one SHA-512, in order. After each entry a
    step records where the stream is, the running digest and how much of the file on disk the
    decompressor has read. Anything that is not a tar header is hashed as it is (same ID)."""
    sha = hashlib.sha512()
    total = 0
    size = os.stat(path).st_size

    def state(entry: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"kind": "tar", "path": str(path), "size": size, "compression": comp,
                "entry": entry, "offset": total, "read": raw.tell(),
                "digest": sha.hexdigest(), **more}

    with _open_both(path) as (raw, stream, comp):
        while True:
            header = stream.read(tarfile.BLOCKSIZE)
            if not header:
                break
            at = total
            sha.update(header)
            total += len(header)
            if header == bytes(tarfile.BLOCKSIZE) or len(header) < tarfile.BLOCKSIZE:
                rest = 0
                while chunk := stream.read(BUFSIZE):
                    sha.update(chunk)
                    rest += len(chunk)
                total += rest
                entry = {"name": "(end of archive)", "type": "end", "at": at,
                         "header_blocks": 0, "data_blocks": (len(header) + rest) // tarfile.BLOCKSIZE,
                         "size": len(header) + rest}
                record(steps, "hash", "zero blocks: end of archive", bytes=len(header) + rest,
                       after=state(entry))
                break
            try:
                info = tarfile.TarInfo.frombuf(header, tarfile.ENCODING, "surrogateescape")
                length = 0 if info.type in _NO_DATA else info.size
            except tarfile.TarError:
                info, length = None, -1           # not a header: hash the rest as it comes
            if length < 0:
                n = 0
                while chunk := stream.read(BUFSIZE):
                    sha.update(chunk)
                    n += len(chunk)
                total += n
                record(steps, "hash", "bytes that are not a tar header", bytes=n + tarfile.BLOCKSIZE,
                       after=state({"name": "(not a tar header)", "type": "raw", "at": at,
                                    "header_blocks": 0, "data_blocks": (n + tarfile.BLOCKSIZE) // tarfile.BLOCKSIZE,
                                    "size": n + tarfile.BLOCKSIZE}))
                break
            blocks = -(-length // tarfile.BLOCKSIZE)
            left = blocks * tarfile.BLOCKSIZE
            while left:
                chunk = stream.read(min(left, BUFSIZE))
                if not chunk:
                    break
                sha.update(chunk)
                total += len(chunk)
                left -= len(chunk)
            assert info is not None
            kind = {tarfile.XHDTYPE: "pax header", tarfile.XGLTYPE: "pax header",
                    tarfile.GNUTYPE_LONGNAME: "long name", tarfile.GNUTYPE_LONGLINK: "long name"
                    }.get(info.type) or entry_type(info)
            entry = {"name": info.name, "type": kind, "at": at, "header_blocks": 1,
                     "data_blocks": blocks, "size": length}
            record(steps, "hash", info.name, type=kind, header_at=at, data_bytes=length,
                   blocks=1 + blocks, after=state(entry))
        iid = HASH_PREFIX + sha.hexdigest()
        record(steps, "hash", str(path), algorithm="sha512", compression=comp,
               bytes_hashed=total, image_id=iid,
               after=state({"name": "(image ID)", "type": "id", "at": total, "header_blocks": 0,
                            "data_blocks": 0, "size": 0}, image_id=iid))
    return iid


# ---------------------------------------------------------------------------- names

def flip_byte(src: str | os.PathLike[str], dst: str | os.PathLike[str] | None = None, *,
              needle: bytes | None = None, offset: int | None = None) -> int:
    """Content addressing's experiment: copy ``src`` to ``dst`` (default: in place) with one
    byte changed — the lowest bit of the first byte of ``needle``'s first occurrence, or of the
    byte at ``offset`` (default: the middle). Returns the offset."""
    data = bytearray(Path(src).read_bytes())
    if needle is not None:
        i = data.find(needle)
        if i < 0:
            raise SandboxError(f"{needle!r} does not occur in {src}.")
    else:
        i = len(data) // 2 if offset is None else offset
        if not 0 <= i < len(data):
            raise SandboxError(f"{src} has {len(data)} bytes; there is no byte {i}.")
    data[i] ^= 1
    Path(dst if dst is not None else src).write_bytes(bytes(data))
    return i


# ---------------------------------------------------------------------------- reading / validating

@dataclass
class Inspection:
    """What one pass over an ACI found: its ID, manifest, problems and entry list."""

    path: str
    compression: str
    image_id: str | None = None
    manifest: ImageManifest | None = None
    manifest_bytes: bytes | None = None
    problems: list[str] = field(default_factory=list)
    entries: list[tarfile.TarInfo] = field(default_factory=list)
    uncompressed_size: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems


def manifest_problems(data: bytes | str, where: str = "manifest",
                      kind: str | None = "ImageManifest") -> list[str]:
    """Problems of a manifest JSON document, each ``where: json.path: rule``.

    ``kind=None`` checks the document as the kind it declares (an ImageManifest or PodManifest).
    """
    from sandbox.image.manifest import validate_json
    probs = validate_json(data, kind)   # the text itself, so a repeated key is a problem too
    doc = json.loads(data) if not probs else None
    if kind and not probs and isinstance(doc, dict) and doc.get("acKind") != kind:
        probs = [f"acKind: {doc.get('acKind')!r} is not {kind}"]
    return [f"{where}: {p}" for p in probs]


def inspect(path: str | os.PathLike[str], *, keep_entries: bool = False,
            steps: Steps | None = None) -> Inspection:
    """Read an ACI once: hash it, check the archive rules (aci.md §Image Archives) and the manifest."""
    path = str(path)
    comp = detect_compression(path)
    ins = Inspection(path, comp)
    if comp == "unknown":
        ins.problems.append("the file is neither a tar nor gzip, bzip2 or xz (no magic number matched)")
        record(steps, "check", path, rule="compression by magic bytes", ok=False)
        return ins
    record(steps, "check", path, rule="compression by magic bytes", found=comp)
    seen: set[str] = set()
    manifest_bytes: bytes | None = None
    most = bounded.ARCHIVE_ENTRIES.value
    cut_short = False                   # a bound stopped the reading: no ID
    with open(path, "rb") as raw:
        stream = _decompressing(raw, comp)
        # the ID hashes the whole uncompressed stream (trailing blocks too): bounded, or a few
        # KiB of bzip2 keep the import hashing zeros for hours
        meter = _Meter(stream, limit=bounded.IMAGE_BYTES.value, too_large=_image_too_large)
        buffered = io.BufferedReader(meter, BUFSIZE)
        try:
            with bounded_tar(buffered) as tar:
                # read in order, nothing looked up again: tarfile's list of every header read
                # is dropped as it goes (300,000 empty entries, 650 KB of bzip2, took 218 MB),
                # and the entries are as many as extraction takes (ARCHIVE_ENTRIES)
                while (m := tar.next()) is not None:
                    tar.members.clear()
                    if len(seen) >= most:
                        raise bounded.too_large(bounded.ARCHIVE_ENTRIES, "the number of its "
                                                "entries", bound=most, cls=ImageTooLarge)
                    data = _check_entry(ins, tar, m, seen, keep_entries)
                    if data is not None:
                        manifest_bytes = data
            meter.drain()
        except ImageTooLarge as e:
            ins.problems.append(str(e))
            cut_short = True
        except tarfile.TarError as e:
            if isinstance(e.__context__, ImageTooLarge):   # met inside tarfile's read
                ins.problems.append(str(e.__context__))
                cut_short = True
            else:
                ins.problems.append(f"the tar is unreadable ({e})")
        except bounded.InputTooLarge as e:
            ins.problems.append(f"the tar is unreadable: {e}")
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            ins.problems.append(f"the {comp} data is corrupt or truncated ({e})")
        finally:
            if stream is not raw:
                stream.close()
    ins.uncompressed_size = meter.count
    record(steps, "hash", path, algorithm="sha512", bytes_hashed=meter.count)
    _check_whole(ins, seen, manifest_bytes, steps)
    if not cut_short and not any(p.startswith(("the tar", f"the {comp}")) for p in ins.problems):
        ins.image_id = meter.image_id
    return ins


def _check_entry(ins: Inspection, tar: tarfile.TarFile, m: tarfile.TarInfo,
                 seen: set[str], keep_entries: bool) -> bytes | None:
    """aci.md §Image Archives for one entry, in the order the tar gives them: its name, its
    place at the top level, a hard link's target. Returns the manifest's bytes when this is
    the manifest entry and it could be read."""
    data = None
    name = normalize_entry(m.name)
    if name is None:
        ins.problems.append(f"entry {m.name!r}: absolute names and '..' are not allowed")
        return None
    if name in seen:
        ins.problems.append(f"entry {m.name!r}: duplicate entry for {name}")
        return None
    seen.add(name)
    if keep_entries:
        ins.entries.append(m)
    top = name.split("/", 1)[0]
    if top not in ("manifest", "rootfs"):
        ins.problems.append(f"entry {m.name!r}: only 'manifest' and 'rootfs' "
                            "may be at the top level")
    elif top == "manifest" and name != "manifest":
        ins.problems.append(f"entry {m.name!r}: 'manifest' is a file; nothing "
                            "can be below it")
    elif name == "manifest":
        if not m.isreg():
            ins.problems.append("entry 'manifest': must be a regular file")
        else:
            try:
                data = read_manifest_entry(tar, m, ins.path)
            except bounded.InputTooLarge as e:
                ins.problems.append(f"entry 'manifest': {e}")
    elif name == "rootfs" and not m.isdir():
        ins.problems.append("entry 'rootfs': must be a directory")
    if m.islnk():
        target = normalize_entry(m.linkname)
        if target is None or not target.startswith("rootfs/"):
            ins.problems.append(f"entry {m.name!r}: hard link to {m.linkname!r} "
                                "points outside rootfs")
        elif target not in seen:
            ins.problems.append(f"entry {m.name!r}: hard link to {m.linkname!r}, "
                                "which is not an earlier entry")
    return data


def _check_whole(ins: Inspection, seen: set[str], manifest_bytes: bytes | None,
                 steps: Steps | None) -> None:
    """The rules over the whole archive once it is read: both top-level entries are there, and
    the manifest meets the ImageManifest schema (then it is parsed into ``ins.manifest``)."""
    path = ins.path
    record(steps, "check", path, rule="no duplicate, absolute or '..' entries", entries=len(seen))
    if "manifest" not in seen:
        ins.problems.append("no 'manifest' entry at the top level")
    if "rootfs" not in seen:
        ins.problems.append("no 'rootfs' directory entry at the top level")
    record(steps, "check", path, rule="exactly 'manifest' and 'rootfs' at the top level",
           ok="manifest" in seen and "rootfs" in seen)
    if manifest_bytes is not None:
        ins.manifest_bytes = manifest_bytes
        mp = manifest_problems(manifest_bytes)
        ins.problems.extend(mp)
        record(steps, "check", "manifest", rule="ImageManifest schema", problems=len(mp))
        if not mp:
            with contextlib.suppress(Exception):
                ins.manifest = ImageManifest.from_json(manifest_bytes)


def read_manifest(path: str | os.PathLike[str], steps: Steps | None = None) -> ImageManifest:
    """The ImageManifest of an ACI (the ``manifest`` entry), without extracting anything.

    Any damage (a bad gzip CRC, a truncated tar, a hostile header) is an :class:`InvalidImage`;
    a manifest over MANIFEST_BYTES is an :class:`sandbox.bounded.InputTooLarge`."""
    with open_tar(path) as tar:
        for m in tar:
            if normalize_entry(m.name) == "manifest" and m.isreg():
                data = read_manifest_entry(tar, m, str(path))
                record(steps, "read", f"{path}:manifest", bytes=len(data))
                return ImageManifest.from_json(data)
    raise InvalidImage(["no 'manifest' entry at the top level"], str(path))


def validate_layout(layout: str | os.PathLike[str], steps: Steps | None = None) -> list[str]:
    """Problems of an image layout directory (aci.md §Image Layout): ``manifest`` + ``rootfs/``."""
    d = Path(layout)
    probs: list[str] = []
    names = sorted(os.listdir(d))
    for n in names:
        if n not in ("manifest", "rootfs"):
            probs.append(f"{n}: only 'manifest' and 'rootfs' may be at the top level of a layout")
    mf = d / "manifest"
    if not mf.is_file() or mf.is_symlink():
        probs.append("manifest: missing (or not a regular file)")
    else:
        try:
            probs.extend(manifest_problems(bounded.read_file(mf, bounded.MANIFEST_BYTES,
                                                             "the layout's manifest")))
        except bounded.InputTooLarge as e:
            probs.append(f"manifest: {e}")
    rf = d / "rootfs"
    if not rf.is_dir() or rf.is_symlink():
        probs.append("rootfs: missing (or not a directory)")
    record(steps, "check", str(d), rule="layout: manifest + rootfs/", problems=len(probs))
    return probs


def validate(path: str | os.PathLike[str], steps: Steps | None = None) -> list[str]:
    """Problems of an ACI file, an image layout directory, or a manifest JSON file ([] = valid)."""
    p = Path(path)
    if not p.exists():
        return [f"{p}: no such file or directory"]
    if p.is_dir():
        return validate_layout(p, steps)
    comp = detect_compression(p)
    if comp == "unknown":
        with open(p, "rb") as f:
            head = f.read(64).lstrip()[:1]
        if head in (b"{", b"[") or p.suffix == ".json" or p.name == "manifest":
            try:
                data = bounded.read_file(p, bounded.MANIFEST_BYTES, str(p))
            except bounded.InputTooLarge as e:
                return [f"{p.name}: {e}"]
            return manifest_problems(data, p.name, kind=None)
    return inspect(p, steps=steps).problems


# ---------------------------------------------------------------------------- building

class _HashingWriter(io.RawIOBase):
    """Hashes (SHA-512) and counts the uncompressed tar on its way to the compressor."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha = hashlib.sha512()
        self.count = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def write(self, b: Any) -> int:  # type: ignore[override]
        self.sha.update(b)
        n = len(memoryview(b).cast("B")) if not isinstance(b, bytes) else len(b)
        self.count += n
        self.inner.write(b)
        return n


GZIP_BLOCK = 1 << 20      # input bytes per independently deflated block
_DICT = 32 << 10          # deflate's window: each block starts from the previous 32 KiB


def _incompressible(block: bytes) -> bool:
    """A cheap guess: three 8 KiB samples barely shrink at level 1 (random or compressed data)."""
    if len(block) < 64 << 10:
        return False
    n = len(block)
    sample = b"".join(block[i:i + 8192] for i in (0, n // 2, n - 8192))
    return len(zlib.compress(sample, 1)) > 0.97 * len(sample)


def _deflate_block(block: bytes, zdict: bytes, level: int, final: bool) -> bytes:
    if level and _incompressible(block):
        level = 0       # store it: deflating random bytes costs time and saves nothing
    if zdict:
        co = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        co = zlib.compressobj(level, zlib.DEFLATED, -15)
    return co.compress(block) + co.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


class _GzipBlockWriter(io.RawIOBase):
    """A gzip file (RFC 1952) deflated pigz-style, in parallel and reproducibly.

    The input is cut into 1 MiB blocks; each is deflated with the previous 32 KiB as its
    dictionary and ends with a sync flush (byte-aligned, not final), so the blocks concatenate
    into one ordinary deflate stream that any gunzip reads. zlib releases the GIL, so blocks
    compress on several cores; the bytes do not depend on thread timing. Blocks that do not
    compress are stored. The header has no file name and mtime 0: same input, same bytes.
    """

    def __init__(self, raw: IO[bytes], level: int = GZIP_LEVEL, threads: int | None = None) -> None:
        self.raw, self.level = raw, level
        self.buf = bytearray()
        self.crc = 0
        self.size = 0
        self.tail = b""
        self.workers = threads or max(1, min(4, os.cpu_count() or 1))
        from concurrent.futures import (
            ThreadPoolExecutor,  # (with logging: ~3 ms to import)
        )
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sbx-gzip")
        self.pending: collections.deque = collections.deque()
        # magic, deflate, no flags, mtime 0, no extra flags, OS "unknown"
        raw.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        mv = memoryview(b).cast("B")
        self.crc = zlib.crc32(mv, self.crc)
        self.size += len(mv)
        self.buf += mv
        if len(self.buf) >= GZIP_BLOCK:
            view = memoryview(self.buf)
            whole = len(self.buf) - len(self.buf) % GZIP_BLOCK
            for i in range(0, whole, GZIP_BLOCK):
                self._submit(bytes(view[i:i + GZIP_BLOCK]), final=False)
            view.release()
            del self.buf[:whole]
        return len(mv)

    def _submit(self, block: bytes, final: bool) -> None:
        zdict = self.tail
        self.tail = (self.tail + block)[-_DICT:] if len(block) < _DICT else block[-_DICT:]
        self.pending.append(self.pool.submit(_deflate_block, block, zdict, self.level, final))
        while len(self.pending) > 2 * self.workers:
            self.raw.write(self.pending.popleft().result())

    def abort(self) -> None:
        """Stop without finishing the file (the build failed): no threads are left behind."""
        if not self.closed:
            self.pool.shutdown(wait=True, cancel_futures=True)
            super().close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._submit(bytes(self.buf), final=True)
            while self.pending:
                self.raw.write(self.pending.popleft().result())
            self.raw.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.size & 0xFFFFFFFF))
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            super().close()


def _compressing(raw: BinaryIO, compression: str) -> IO[bytes]:
    if compression == "none":
        return raw
    if compression == "gzip":
        return _GzipBlockWriter(raw, GZIP_LEVEL)
    if compression == "bzip2":
        return bz2.BZ2File(raw, "wb", compresslevel=9)
    if compression == "xz":
        return lzma.LZMAFile(raw, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)
    raise SandboxError(f"unknown compression '{compression}'; use one of: {', '.join(COMPRESSIONS)}.")


def compress(data: bytes, compression: str) -> bytes:
    """``data`` compressed exactly as :func:`build` compresses a tar (reproducible)."""
    buf = io.BytesIO()
    out = _compressing(buf, compression)
    out.write(data)
    if out is not buf:
        out.close()
    return buf.getvalue()


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return {}
    out = {}
    for n in names:
        with contextlib.suppress(OSError):
            out["SCHILY.xattr." + n] = os.getxattr(path, n, follow_symlinks=False).decode(
                "utf-8", "surrogateescape")
    return out


def _tarinfo(name: str, full: str, st: os.stat_result, owner_root: bool) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    # Files keep their timestamps (aci.md §Image Archives); a tar header holds whole seconds.
    # Rounded to the nearest second as actool (Go's archive/tar) does, so both give one entry.
    ti.mtime = (st.st_mtime_ns + 500_000_000) // 1_000_000_000
    ti.uid, ti.gid = (0, 0) if owner_root else (st.st_uid, st.st_gid)
    ti.uname = ti.gname = ""             # no name lookups: no variance between machines
    x = _xattrs(full)
    if x:
        ti.pax_headers = x
    return ti



def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Paths under ``root`` (relative), depth-first pre-order, siblings in byte order.

    Each directory comes right before its contents; links are never followed.
    """
    full = os.path.join(root, rel) if rel else root
    with os.scandir(full) as it:
        names = sorted((e.name for e in it), key=os.fsencode)
    for n in names:
        r = f"{rel}/{n}" if rel else n
        st = os.lstat(os.path.join(root, r))
        yield r, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, r)


def _add_entry(tar: tarfile.TarFile, root: str, rel: str, st: os.stat_result, owner_root: bool,
               inodes: dict[tuple[int, int], str]) -> str | None:
    """Archive one rootfs path as its own kind of tar entry (a second link to a regular file
    becomes a hard link entry); returns the kind, or None for a socket (tar cannot hold one)."""
    full = os.path.join(root, rel)
    name = "rootfs/" + rel
    ti = _tarinfo(name, full, st, owner_root)
    mode = st.st_mode
    key = (st.st_dev, st.st_ino)
    if not stat.S_ISDIR(mode) and st.st_nlink > 1 and key in inodes:
        ti.type, ti.linkname = tarfile.LNKTYPE, inodes[key]
        tar.addfile(ti)
        return "hardlink"
    if stat.S_ISREG(mode):
        ti.size = st.st_size
        with open(full, "rb") as f:
            tar.addfile(ti, f)
        if st.st_nlink > 1:
            inodes[key] = name
        return "file"
    if stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
        kind = "dir"
    elif stat.S_ISLNK(mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
        kind = "symlink"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        kind = "device"
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
        kind = "fifo"
    else:
        return None
    tar.addfile(ti)
    return kind


def _write_archive(tar: tarfile.TarFile, layout: Path, owner_root: bool,
                   steps: Steps | None) -> int:
    """``manifest``, ``rootfs/`` and everything below it, in _walk's order; returns the count."""
    mf = layout / "manifest"
    st = os.lstat(mf)
    ti = _tarinfo("manifest", str(mf), st, owner_root)
    ti.size = st.st_size
    with open(mf, "rb") as f:
        tar.addfile(ti, f)
    record(steps, "write", "manifest", size=st.st_size)
    root = str(layout / "rootfs")
    ti = _tarinfo("rootfs", root, os.lstat(root), owner_root)
    ti.type = tarfile.DIRTYPE
    tar.addfile(ti)
    record(steps, "write", "rootfs/", type="dir")
    entries = 2
    inodes: dict[tuple[int, int], str] = {}
    for rel, st in _walk(root):
        kind = _add_entry(tar, root, rel, st, owner_root, inodes)
        if kind is None:
            record(steps, "skip", "rootfs/" + rel, reason="sockets cannot be stored in a tar")
            continue
        entries += 1
        if steps is not None:
            steps.add("write", "rootfs/" + rel + ("/" if kind == "dir" else ""), type=kind,
                      **({"size": st.st_size} if kind == "file" else {}))
    return entries


def build(layout: str | os.PathLike[str], out: str | os.PathLike[str], *,
          compression: str = "gzip", owner_root: bool = False, overwrite: bool = False,
          steps: Steps | None = None) -> str:
    """Build an ACI from a layout directory (``manifest`` + ``rootfs/``); return its image ID.

    Reproducible: the same layout gives the same bytes (sorted entries, no user/group names,
    a gzip header with no time or name). ``owner_root`` records every file as uid/gid 0.
    The file is written to a temporary name and renamed into place when complete.
    """
    layout, out = Path(layout), Path(out)
    if compression not in COMPRESSIONS:
        raise SandboxError(f"unknown compression '{compression}'; use one of: {', '.join(COMPRESSIONS)}.")
    if not layout.is_dir():
        raise SandboxError(f"{layout} is not a directory; an image layout is a directory "
                           "holding 'manifest' and 'rootfs/'.")
    probs = validate_layout(layout, steps)
    if probs:
        raise InvalidImage(probs, f"layout {layout}")
    if out.exists() and not overwrite:
        raise SandboxError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it.")
    if not out.parent.is_dir():
        raise SandboxError(f"the directory {out.parent} does not exist; create it first.")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    comp: IO[bytes] | None = None
    try:
        with open(tmp, "wb") as raw:
            comp = _compressing(raw, compression)
            hw = _HashingWriter(comp)
            with tarfile.open(fileobj=hw, mode="w", format=tarfile.PAX_FORMAT,
                              copybufsize=1 << 20) as tar:
                entries = _write_archive(tar, layout, owner_root, steps)
            if comp is not raw:
                comp.close()
            raw.flush()
        os.replace(tmp, out)
    except BaseException as e:
        if isinstance(comp, _GzipBlockWriter):
            comp.abort()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, SandboxError):
            raise SandboxError(f"building {out} from {layout} failed: {e.strerror or e}"
                               + (f" ({e.filename})" if e.filename else "") + ".") from e
        raise
    iid = HASH_PREFIX + hw.sha.hexdigest()
    record(steps, "hash", str(out), algorithm="sha512", bytes_hashed=hw.count, image_id=iid)
    record(steps, "write", str(out), entries=entries, compression=compression,
           size=out.stat().st_size)
    return iid


# ---------------------------------------------------------------------------- safe extraction

ExtractResult = Result      # what extract_rootfs did (entries, bytes, warnings)


def extract_rootfs(aci: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                   allow_devices: bool = False, keep_setid: bool = False,
                   max_bytes: int | None = None, max_entries: int | None = None,
                   steps: Steps | None = None) -> ExtractResult:
    """Extract the ``rootfs`` of an ACI into ``dest`` (its contents become dest's contents).

    By the rules of the one extractor (:mod:`sandbox.image.extract`, docs/security.md): nothing
    is written outside ``dest`` nor through a symlink; absolute and ``..`` names, duplicate
    entries, relative symlinks climbing above the rootfs and hard links to anything but an
    earlier entry are refused (:class:`UnsafeArchive`); device nodes are skipped unless
    ``allow_devices`` (and root); setuid/setgid bits and file capabilities are dropped unless
    ``keep_setid``; the uncompressed stream and the files may not exceed ``max_bytes`` (default:
    the free space of dest's file system) nor ``max_entries`` entries (default ARCHIVE_ENTRIES, :mod:`sandbox.bounded`)
    (:class:`ArchiveTooLarge`); tar headers are bounded by :class:`BoundedTarInfo`.

    Existing paths in ``dest`` are replaced (ace.md: a path that exists MUST be overwritten; a
    symlink is replaced, never followed).
    """
    dest = Path(dest)
    comp = detect_compression(aci)     # before touching dest: a missing file creates nothing
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SandboxError(f"cannot create the directory {dest}: {e.strerror}.") from e
    if max_bytes is None:
        sv = os.statvfs(dest)
        max_bytes = sv.f_bavail * sv.f_frsize
    ok = False
    ex: Extractor | None = None
    try:
        ex = Extractor(dest, Rules(keep_setid=keep_setid, allow_devices=allow_devices,
                                   max_bytes=max_bytes, max_entries=max_entries),
                       steps=steps, show="rootfs/", log_entries=True)
        with open(aci, "rb") as raw:
            if comp == "unknown":
                raise InvalidImage(["the file is neither a tar nor gzip, bzip2 or xz"], str(aci))
            stream = _decompressing(raw, comp)
            meter = _Meter(stream, limit=max_bytes, what=str(aci))
            try:
                with bounded_tar(io.BufferedReader(meter, BUFSIZE)) as tar:  # type: ignore[arg-type]
                    ex.apply(tar, prefix="rootfs", what=str(aci))
            finally:
                if stream is not raw:
                    stream.close()
        if not ex.root_seen:
            raise InvalidImage(["no 'rootfs' directory entry at the top level"], str(aci))
        ok = True
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise InvalidImage([f"the archive is unreadable ({e})"], str(aci)) from e
    except OSError as e:
        raise SandboxError(f"extracting {aci} into {dest} failed: {e.strerror or e}"
                           + (f" ({e.filename})" if e.filename else "") + ".") from e
    finally:
        if ex is not None:
            ex.close()
        if not ok and created:
            shutil.rmtree(dest, ignore_errors=True)
    res = ex.result
    record(steps, "write", str(dest), entries=res.entries, bytes=res.bytes_written,
           warnings=len(res.warnings))
    return res
