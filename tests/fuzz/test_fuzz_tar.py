"""ACI archives: tar headers and whole archives, random and mutated (fields, checksums, type
flags, PAX records, sparse maps, compression), through every reader of an image: inspect,
read_manifest, the one extractor, and the store. Nothing escapes but the kit's errors."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sandbox.image import aci
from sandbox.image.store import Store

from .conftest import budget
from .kit import byte_mutation, only_kit_errors

BLOCK = 512
MANIFEST = json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                       "name": "example.com/fuzz"}).encode()


def base_tar() -> bytes:
    """A valid ACI tar with one of each entry type and PAX + GNU headers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name: str, typ: bytes = tarfile.REGTYPE, data: bytes = b"", **kw) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.size = typ, len(data)
            for k, v in kw.items():
                setattr(ti, k, v)
            t.addfile(ti, io.BytesIO(data) if data else None)
        add("manifest", data=MANIFEST)
        add("rootfs", tarfile.DIRTYPE, mode=0o755)
        add("rootfs/etc", tarfile.DIRTYPE, mode=0o755)
        add("rootfs/etc/passwd", data=b"root:x:0:0::/:/bin/sh\n", mode=0o644)
        add("rootfs/bin", tarfile.SYMTYPE, linkname="usr/bin")
        add("rootfs/etc/hardlink", tarfile.LNKTYPE, linkname="rootfs/etc/passwd")
        add("rootfs/fifo", tarfile.FIFOTYPE)
        add("rootfs/" + "long" * 40, data=b"x" * 700, pax_headers={"comment": "c" * 50})
    return buf.getvalue()


BASE = base_tar()
HEADER_FIELDS = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "size": (124, 12),
                 "mtime": (136, 12), "type": (156, 1), "linkname": (157, 100),
                 "sparse": (386, 96), "isextended": (482, 1), "realsize": (483, 12),
                 "prefix": (345, 155)}


def header_offsets(data: bytes) -> list[int]:
    """Where the headers of ``data`` start (walking sizes as tar does)."""
    out, i = [], 0
    while i + BLOCK <= len(data) and data[i:i + BLOCK].strip(b"\0"):
        out.append(i)
        try:
            size = int(data[i + 124:i + 136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            break
        i += BLOCK + -(-size // BLOCK) * BLOCK
    return out


def fix_checksum(data: bytearray, at: int) -> None:
    h = data[at:at + BLOCK]
    h[148:156] = b" " * 8
    data[at + 148:at + 155] = b"%06o\0" % (sum(h) & 0o777777)


@st.composite
def mutated_tar(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    heads = header_offsets(BASE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from(heads))
        field = draw(st.sampled_from(list(HEADER_FIELDS)))
        off, n = HEADER_FIELDS[field]
        value = draw(st.one_of(
            st.binary(min_size=n, max_size=n),
            st.sampled_from([b"x", b"g", b"L", b"K", b"S", b"0", b"5", b"2", b"1", b"7", b"\0", b"\xff"]
                            ).map(lambda b: b.ljust(n, b"\0")),
            st.integers(0, 8**(n - 1) - 1).map(lambda v: (b"%o" % v).rjust(n - 1, b"0") + b"\0"),
            st.just(b"\x80" + b"\xff" * (n - 1))))        # base-256 numbers (GNU)
        data[at + off:at + off + n] = value[:n]
        if draw(st.integers(0, 3)):                       # mostly keep the header readable
            fix_checksum(data, at)
    out = bytes(data)
    if draw(st.integers(0, 3)) == 0:
        out = draw(byte_mutation(out))
    return out


def compress(data: bytes, how: str) -> bytes:
    return {"none": lambda d: d, "gzip": lambda d: gzip.compress(d, 1), "bzip2": bz2.compress,
            "xz": lambda d: lzma.compress(d, preset=0)}[how](data)


def read_everything(raw: bytes) -> None:
    d = Path(tempfile.mkdtemp(prefix="sbx-fuzz-tar-"))
    try:
        p = d / "x.aci"
        p.write_bytes(raw)
        ins = only_kit_errors(aci.inspect, p, show=raw)
        assert isinstance(ins, aci.Inspection), ins         # inspect reports, never raises
        only_kit_errors(aci.read_manifest, p, show=raw)
        only_kit_errors(aci.validate, p, show=raw)
        only_kit_errors(aci.extract_rootfs, p, d / "out", show=raw)
        only_kit_errors(Store(d / "store").import_aci, p, show=raw)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_base_archive_is_a_valid_aci() -> None:
    d = Path(tempfile.mkdtemp(prefix="sbx-fuzz-tar-"))
    try:
        (d / "x.aci").write_bytes(BASE)
        assert aci.inspect(d / "x.aci").problems == []
    finally:
        shutil.rmtree(d)


@budget(120)
@given(mutated_tar(), st.sampled_from(["none", "none", "gzip", "xz", "bzip2"]))
def test_mutated_headers(tar: bytes, how: str) -> None:
    read_everything(compress(tar, how))


@budget(40)
@given(st.sampled_from(["gzip", "xz", "bzip2"]), st.data())
def test_damaged_compressed_streams(how: str, data: st.DataObject) -> None:
    read_everything(data.draw(byte_mutation(compress(BASE, how), max_edits=3)))


@budget(40)
@given(st.lists(st.tuples(st.sampled_from([b"0", b"5", b"x", b"g", b"L", b"K", b"S", b"2", b"1"]),
                          st.binary(max_size=600)), max_size=6))
def test_random_header_sequences(entries: list[tuple[bytes, bytes]]) -> None:
    """Headers of any type in any order, with any payload, after a valid manifest."""
    out = bytearray(BASE[:header_offsets(BASE)[2]])       # manifest + rootfs/
    for typ, payload in entries:
        ti = tarfile.TarInfo("rootfs/x")
        ti.size = len(payload)
        h = bytearray(ti.tobuf(format=tarfile.USTAR_FORMAT))
        h[156:157] = typ
        fix_checksum(h, 0)
        out += h + payload + b"\0" * (-len(payload) % BLOCK)
    read_everything(bytes(out) + b"\0" * 1024)
