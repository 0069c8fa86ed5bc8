"""Tar-level bounds (sandbox.bounded, sandbox.image.aci.BoundedTarInfo): hand-made archives
whose headers would make tarfile read without end, recurse until it dies, or raise something
other than the kit's errors. Each archive is written byte by byte here (tarfile cannot write
most of them), so what is tested is the reader, not a writer that refuses.

Every test failed on the code before the bounds (a traceback, or megabytes read for a manifest).
"""
from __future__ import annotations

import gzip
import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.image import aci
from sandbox.image.aci import InvalidImage

BLOCK = 512
MANIFEST = json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                       "name": "example.com/limits"}).encode()


def header(name: str, typ: bytes, size: int = 0, **raw: bytes) -> bytearray:
    """A ustar header block; ``raw`` patches bytes at offsets ``o<N>=...`` before the checksum."""
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = tarfile.REGTYPE, size
    buf = bytearray(ti.tobuf(format=tarfile.USTAR_FORMAT))
    buf[156:157] = typ
    for key, value in raw.items():
        off = int(key[1:])
        buf[off:off + len(value)] = value
    return checksum(buf)


def checksum(buf: bytearray) -> bytearray:
    buf[148:156] = b" " * 8
    buf[148:155] = b"%06o\0" % (sum(buf) & 0o777777)
    return buf


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def member(name: str, data: bytes = b"", typ: bytes = tarfile.REGTYPE) -> bytes:
    return bytes(header(name, typ, len(data))) + padded(data)


def pax(records: dict[str, str] | bytes, typ: bytes = tarfile.XHDTYPE) -> bytes:
    body = records if isinstance(records, bytes) else b"".join(
        _record(k, v) for k, v in records.items())
    return bytes(header("././@PaxHeader", typ, len(body))) + padded(body)


def _record(k: str, v: str) -> bytes:
    rest = f" {k}={v}\n".encode()
    n = len(rest) + 1
    while len(str(n).encode()) + len(rest) != n:
        n += 1
    return str(n).encode() + rest


def aci_bytes(*parts: bytes, manifest: bytes = MANIFEST) -> bytes:
    """manifest, rootfs/, the parts, and the end-of-archive blocks."""
    return (member("manifest", manifest) + member("rootfs/", typ=tarfile.DIRTYPE)
            + b"".join(parts) + b"\0" * (2 * BLOCK))


def write(tmp_path: Path, name: str, data: bytes, gz: bool = True) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(data, 1) if gz else data)
    return p


def assert_refused(path: Path, match: str, cls: type[SandboxError] = SandboxError) -> None:
    """inspect reports it as a problem; read_manifest raises ``cls``; nothing else escapes."""
    ins = aci.inspect(path)
    assert any(match in p for p in ins.problems), ins.problems
    with pytest.raises(cls, match=match):
        aci.read_manifest(path)  # the manifest comes first, so these reach the bad part only
        with aci.open_tar(path) as tar:   # when the manifest is fine: walk the whole archive
            for _ in tar:
                pass
    with pytest.raises(cls, match=match):
        aci.extract_rootfs(path, path.parent / f"{path.name}.out")
    assert not (path.parent / f"{path.name}.out").exists()


# ------------------------------------------------------------------------- the manifest entry

def test_a_huge_manifest_entry_is_refused_without_reading_it(tmp_path: Path) -> None:
    """64 MiB of spaces gzip to 64 KiB: the old reader read them all into memory."""
    big = 64 << 20
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        gz.write(bytes(header("manifest", tarfile.REGTYPE, big)))
        chunk = b" " * (1 << 20)
        for _ in range(big // len(chunk)):
            gz.write(chunk)
        gz.write(member("rootfs/", typ=tarfile.DIRTYPE) + b"\0" * 1024)
    p = tmp_path / "bomb.aci"
    p.write_bytes(raw.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(bounded.InputTooLarge, match="MANIFEST_BYTES"):
            aci.read_manifest(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"read_manifest held {peak >> 20} MiB for a refused manifest"
    ins = aci.inspect(p)
    assert any("MANIFEST_BYTES" in x for x in ins.problems), ins.problems


def test_the_manifest_limit_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(MANIFEST)
    doc["annotations"] = [{"name": "example.com/blob", "value": "x" * 5000}]
    p = write(tmp_path, "big-manifest.aci", aci_bytes(manifest=json.dumps(doc).encode()))
    monkeypatch.setenv("SANDBOX_MAX_MANIFEST_BYTES", "4K")
    with pytest.raises(bounded.InputTooLarge, match=r"SANDBOX_MAX_MANIFEST_BYTES"):
        aci.read_manifest(p)
    monkeypatch.setenv("SANDBOX_MAX_MANIFEST_BYTES", "1M")
    assert aci.read_manifest(p).annotations["example.com/blob"] == "x" * 5000


# ------------------------------------------------------------------------- header chains

def test_an_endless_chain_of_pax_headers_is_cut_at_the_limit(tmp_path: Path) -> None:
    """tarfile recursed once per header: 3000 in a row was a RecursionError."""
    chain = pax({"comment": "x"}) * 3000
    p = write(tmp_path, "chain.aci", aci_bytes(chain + member("rootfs/a", b"a")))
    assert_refused(p, "TAR_HEADER_CHAIN")


def test_gnu_long_names_chained_are_cut_too(tmp_path: Path) -> None:
    chain = member("././@LongLink", b"rootfs/" + b"n" * 200 + b"\0", tarfile.GNUTYPE_LONGNAME) * 3000
    p = write(tmp_path, "longlinks.aci", aci_bytes(chain + member("rootfs/b", b"b")))
    assert_refused(p, "TAR_HEADER_CHAIN")


def test_a_usual_chain_still_reads(tmp_path: Path) -> None:
    """pax + GNU long name + long link before one entry: what real tools write."""
    name = "rootfs/" + "d" * 150
    parts = (pax({"path": name, "mtime": "1.5"})
             + member("././@LongLink", b"rootfs/target\0", tarfile.GNUTYPE_LONGLINK)
             + member("rootfs/short", b"data"))
    p = write(tmp_path, "usual.aci", aci_bytes(parts))
    ins = aci.inspect(p, keep_entries=True)
    assert [e.name for e in ins.entries][-1] == name
    assert ins.image_id == "sha512-" + __import__("hashlib").sha512(gzip.decompress(p.read_bytes())).hexdigest()


def test_global_pax_headers_add_up(tmp_path: Path) -> None:
    """Each 'g' header adds keys for the rest of the archive; small ones between entries
    escape the chain limit, so their total is bounded."""
    parts = b"".join(pax({f"k{i}": "v" * 60_000}, tarfile.XGLTYPE) + member(f"rootfs/f{i}")
                     for i in range(40))
    p = write(tmp_path, "globals.aci", aci_bytes(parts))
    assert_refused(p, "PAX global headers together")


def test_one_huge_metadata_header_is_refused(tmp_path: Path) -> None:
    body = _record("comment", "c" * (3 << 20))
    p = write(tmp_path, "bigpax.aci", aci_bytes(pax(body) + member("rootfs/c")))
    assert_refused(p, "TAR_META_HEADER_BYTES")


# ------------------------------------------------------------------------- sparse maps

def sparse_member(name: str, ext_blocks: int, last_extended: bool = False) -> bytes:
    """An old-GNU sparse entry ("S") followed by ``ext_blocks`` extension blocks, each holding
    21 map entries and saying that another block follows (the last one too, if asked)."""
    h = header(name, tarfile.GNUTYPE_SPARSE, 0, o482=b"\x01", o483=b"%011o\0" % 4096)
    h[345:345 + 12] = b"\0" * 12
    out = bytearray(checksum(h))
    entry = b"%011o\0" % 512 + b"%011o\0" % 1
    for i in range(ext_blocks):
        blk = bytearray(entry * 21 + b"\0" * (BLOCK - 21 * 24))
        blk[504] = 1 if (i < ext_blocks - 1 or last_extended) else 0
        out += blk
    return bytes(out)


def test_endless_old_gnu_sparse_headers_are_cut_at_the_limit(tmp_path: Path) -> None:
    """Each extension block adds 21 entries and may say "another follows": the old reader
    grew its list for as long as the stream went on."""
    p = write(tmp_path, "sparse.aci", aci_bytes(sparse_member("rootfs/s", 5000)))
    assert_refused(p, "TAR_SPARSE_ENTRIES")


def test_a_sparse_header_cut_short_is_an_invalid_image(tmp_path: Path) -> None:
    """The stream ends where another extension block was promised: an IndexError before."""
    data = aci_bytes()[:-2 * BLOCK] + sparse_member("rootfs/s", 2, last_extended=True)
    p = write(tmp_path, "sparse-cut.aci", data)
    assert_refused(p, "sparse header", InvalidImage)


@pytest.mark.parametrize("records, why", [
    ({"GNU.sparse.map": "1,2,x,4", "GNU.sparse.name": "rootfs/s"}, "0.1 map with a word"),
    ({"GNU.sparse.size": "many", "GNU.sparse.offset": "0"}, "0.0 size with a word"),
    ({"comment": "x"}, "a record whose length has 5000 digits"),
])
def test_malformed_pax_values_are_invalid_images(tmp_path: Path, records: dict, why: str) -> None:
    body = b"".join(_record(k, v) for k, v in records.items())
    if "5000" in why:
        body = b"9" * 5000 + b" comment=x\n"
    p = write(tmp_path, "badpax.aci", aci_bytes(pax(body) + member("rootfs/s", b"s")))
    assert_refused(p, "malformed tar header", InvalidImage)


def test_a_pax_1_0_sparse_map_that_never_ends_is_refused(tmp_path: Path) -> None:
    records = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "rootfs/s",
               "GNU.sparse.realsize": "10"}
    data = b"99999999999\n" + b"1\n" * 1000
    p = write(tmp_path, "sparse10.aci", aci_bytes(pax(records) + member("rootfs/GNUSparseFile.0/s", data)))
    assert_refused(p, "TAR_SPARSE_ENTRIES")
    cut = b"3\n1\n2\n"          # promises 3 pairs, gives one number and a half
    p = write(tmp_path, "sparse10-cut.aci",
              aci_bytes()[:-2 * BLOCK] + pax(records) + bytes(header("rootfs/s", tarfile.REGTYPE, len(cut))) + cut)
    assert_refused(p, "sparse map", InvalidImage)


def test_bounded_tar_is_what_others_open_archives_with() -> None:
    """One place for the header limits: the stream and random-access openers both use it."""
    raw = io.BytesIO(aci_bytes(pax({"comment": "x"}) * 100 + member("rootfs/z")))
    with pytest.raises(bounded.InputTooLarge, match="TAR_HEADER_CHAIN"):
        with aci.bounded_tar(raw, stream=False) as tar:
            tar.getmembers()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_an_entry_claiming_more_than_any_file_holds_is_refused_at_once(tmp_path: Path, gz: bool) -> None:
    """Found by tests/fuzz: a base-256 size of 2**88 made tarfile's stream mode skip empty
    blocks for ever (a gzip ACI), and overflowed a file offset (a plain one: ValueError)."""
    import time
    h = header("rootfs/huge", tarfile.REGTYPE, 0)
    h[124:136] = b"\x80" + b"\xff" * 11
    p = write(tmp_path, "huge.aci", aci_bytes(bytes(checksum(h))), gz=gz)
    t0 = time.monotonic()
    assert_refused(p, "claims", InvalidImage)
    assert time.monotonic() - t0 < 10
