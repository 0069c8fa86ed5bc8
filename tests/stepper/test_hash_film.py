"""The image ID computed for the stepper: the same ID as the fast path, one step per tar entry at
the offsets tarfile finds, and at each step the SHA-512 of exactly the bytes before it (checked
with hashlib over the decompressed stream)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.steps import Steps
from sandbox.trust import pgp
from sandbox.viz import image as vi
from sandbox.viz.stepper import Stepper, frame_of, to_svg


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    d = tmp_path / "hello"
    (d / "rootfs" / "bin").mkdir(parents=True)
    (d / "rootfs" / "etc").mkdir()
    (d / "rootfs" / "etc" / "greeting").write_text("hello\n" * 300)     # 1800 bytes: 4 blocks
    (d / "rootfs" / "bin" / "hello").write_text("#!/bin/sh\ncat /etc/greeting\n")
    os.symlink("/bin/hello", d / "rootfs" / "bin" / "hi")
    (d / "manifest").write_text(json.dumps({"acKind": "ImageManifest", "acVersion": "0.8.11",
                                            "name": "example.com/hello"}))
    return d


@pytest.mark.parametrize("compression", aci.COMPRESSIONS)
def test_step_by_step_is_the_same_hash_at_every_step(layout: Path, tmp_path: Path,
                                                     compression: str) -> None:
    out = tmp_path / f"hello-{compression}.aci"
    iid = aci.build(layout, out, compression=compression)
    steps = Steps(snapshots=True)
    assert aci.image_id(out, steps=steps) == iid == aci.image_id(out)
    tar = vi.uncompressed_bytes(out)
    assert "sha512-" + hashlib.sha512(tar).hexdigest() == iid
    states = [s.after for s in steps]
    for st in states:                       # the running digest is the hash of the prefix
        assert st["digest"] == hashlib.sha512(tar[:st["offset"]]).hexdigest()
    with tarfile.open(fileobj=__import__("io").BytesIO(tar)) as t:
        members = [(m.name, m.offset) for m in t.getmembers()]
    entries = [(st["entry"]["name"], st["entry"]["at"]) for st in states
               if st["entry"]["type"] not in ("end", "id")]
    assert entries == members
    assert states[-1]["image_id"] == iid and states[-2]["entry"]["type"] == "end"
    assert states[-1]["offset"] == len(tar) and states[-1]["size"] == out.stat().st_size


def test_any_file_gets_its_id_even_when_it_is_no_tar(tmp_path: Path) -> None:
    junk = tmp_path / "junk.aci"
    junk.write_bytes(gzip.compress(b"not a tar at all, " * 200))
    steps = Steps(snapshots=True)
    assert aci.image_id(junk, steps=steps) == aci.image_id(junk)
    assert steps[0].what == "bytes that are not a tar header"
    for kind in vi.HOSTILE_KINDS:
        bad = vi.hostile_archive(tmp_path / f"{kind}.aci", kind)
        assert aci.image_id(bad, steps=Steps(snapshots=True)) == aci.image_id(bad)


def test_the_picture_fills_blocks_as_they_are_hashed(layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.aci"
    aci.build(layout, out)
    steps = Steps(snapshots=True)
    aci.image_id(out, steps=steps)
    total = steps[-1].after["offset"] // 512
    pictures = [to_svg(frame_of(steps, k).pictures[0]) for k in range(len(steps))]
    white = [len(re.findall(r'class="block"[^>]*fill="white"', p)) for p in pictures]
    assert white == sorted(white, reverse=True) and white[-1] == 0
    assert white[0] == total - 2                    # the manifest: its header and one data block
    assert "image ID = sha512-" in pictures[-1] and "running hash" in pictures[0]
    assert Stepper(steps, static=True).static_html().count("<svg") == len(steps)


def test_which_breaks_asks_both_checks(layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.aci"
    aci.build(layout, out)
    key = pgp.generate_key("Test <test@example.com>", type="ed25519")
    rows = {r[0].split(",")[0]: (r[1], r[2]) for r in vi.which_breaks(out, key, tmp_path).rows}
    assert rows["gzip header"] == ("same", "BROKEN")          # the ID covers the tar only
    assert rows["tar byte 0"] == ("CHANGED", "BROKEN")
    assert rows["compressed data"][1] == "BROKEN"
