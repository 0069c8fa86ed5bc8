"""Pictures and the byte-flip widget of notebook 01."""
from __future__ import annotations

import hashlib
import io
import tarfile

from sandbox.image import aci
from sandbox.viz import image as viz


def test_archive_tree_shows_layers_and_entries(make_layout, tmp_path):
    layout = make_layout(files={f"bin/f{i}": b"x" for i in range(12)} | {"etc/hello": b"hi"})
    out = tmp_path / "a.aci"
    iid = aci.build(layout, out, compression="bzip2")
    src = viz.archive_tree(out, max_children=5).source
    assert "compression: bzip2" in src and aci.short_id(iid) in src
    assert "manifest" in src and "rootfs/" in src and "hello" in src
    assert "+7 more" in src                       # bin/ has 12 entries, 5 shown


def test_flipped_id_and_byte_owner_against_tarfile_offsets(make_layout, tmp_path):
    out = tmp_path / "a.aci"
    iid = aci.build(make_layout(files={"etc/hello": b"hello world\n"}), out, compression="gzip")
    data = viz.uncompressed_bytes(out)
    assert "sha512-" + hashlib.sha512(data).hexdigest() == iid
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        hello = t.getmember("rootfs/etc/hello")
    r = viz.flipped_id(data, hello.offset_data + 4)
    assert r["before"] == iid and r["after"] != iid
    assert r["where"] == "the content of rootfs/etc/hello (byte 4)"
    flipped = bytearray(data)
    flipped[hello.offset_data + 4] ^= 0xFF
    assert r["after"] == "sha512-" + hashlib.sha512(bytes(flipped)).hexdigest()
    assert viz.byte_owner(data, hello.offset) == "the header of rootfs/etc/hello"
    assert viz.byte_owner(data, len(data) - 1) == "the end-of-archive zero blocks"
    assert "hex digits changed" in viz.flip_html(r)


def test_flip_widget_callback_updates_output(make_layout, tmp_path):
    out = tmp_path / "a.aci"
    aci.build(make_layout(), out)
    w = viz.flip_byte_widget(out)
    slider, output = w.children
    slider.value = 100
    assert "header of manifest" in output.value
    slider.value = slider.max
    assert "end-of-archive" in output.value


def test_compression_table_one_id_and_each_compressed_file_smaller(make_layout):
    rows = viz.compression_table(make_layout())
    assert [r["compression"] for r in rows] == list(aci.COMPRESSIONS)
    assert [r["detected"] for r in rows] == list(aci.COMPRESSIONS)
    assert len({r["image_id"] for r in rows}) == 1
    # the plain tar is whole 512-byte blocks; every compressor shrinks this small tree (two of
    # them may happen to give the same size: 4 distinct sizes is not a property to assert)
    size = {r["compression"]: r["size"] for r in rows}
    assert size["none"] % 512 == 0
    assert all(size[c] < size["none"] for c in aci.COMPRESSIONS if c != "none")
    assert "<table>" in viz.rows_html(rows)


def test_hostile_samples_are_refused_or_neutralised(tmp_path):
    from sandbox.viz.image import HOSTILE_KINDS, hostile_archive
    for kind in HOSTILE_KINDS:
        p = hostile_archive(tmp_path / f"{kind}.aci", kind)
        dest = tmp_path / f"x-{kind}"
        if kind == "setuid":
            res = aci.extract_rootfs(p, dest)
            assert (dest / "rootshell").stat().st_mode & 0o7777 == 0o755 and res.warnings
        else:
            try:
                aci.extract_rootfs(p, dest)
            except aci.UnsafeArchive:
                pass
            else:
                raise AssertionError(f"{kind} was extracted")
            assert not dest.exists()
    import os
    assert not os.path.exists("/tmp/sbx-evil") and not (tmp_path / "evil").exists()
