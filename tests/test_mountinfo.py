"""The one mountinfo parser against the kernel: real mounts with awkward names."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from sandbox._sys import libc, mountinfo


def test_parse_unescapes_octal_and_keeps_utf8() -> None:
    line = ("36 35 98:0 /mnt\\040a /tmp/sbx\\040x/caf\xc3\xa9\\011t rw,noatime master:1 - ext3 "
            "/dev/root rw,errors=continue\n").encode("latin-1")
    (m,) = mountinfo.parse(line)
    assert m.target == "/tmp/sbx x/café\tt" and m.root == "/mnt a"
    assert (m.mount_id, m.parent_id, m.fstype, m.source) == (36, 35, "ext3", "/dev/root")
    assert m.optional == ("master:1",) and m.super_options == "rw,errors=continue"


@pytest.mark.root
@pytest.mark.parametrize("name", ["sbx plain", "sbx-café ünï", "sbx\ttab", "sbx\\back"])
def test_real_mounts_with_odd_names_are_found_and_removed(tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    inner = root / "in ner"
    inner.mkdir(parents=True)
    libc.mount("tmpfs", str(root), "tmpfs")
    try:
        (root / "in ner").mkdir()
        libc.mount("tmpfs", str(root / "in ner"), "tmpfs")
        # the kernel's own view, independently: findmnt prints the same targets
        seen = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True,
                              check=True).stdout
        # findmnt -r writes every unsafe byte as \xHH
        seen = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), seen)
        assert os.fsencode(str(root)) in seen.splitlines()
        assert mountinfo.is_mount_point(root) and mountinfo.is_mount_point(root / "in ner")
        assert mountinfo.below(root) == [str(root / "in ner"), str(root)]     # deepest first
        assert mountinfo.umount_below(root) == [str(root / "in ner"), str(root)]
        assert not mountinfo.below(root)
    finally:
        for p in (root / "in ner", root):
            try:
                libc.umount(str(p), libc.MNT_DETACH)
            except OSError:
                pass


def test_a_process_that_is_exiting_has_no_mounts() -> None:
    """A zombie has no mount namespace left: the kernel answers EINVAL for its mountinfo (a pod's
    app that exits while a picture reads it), which is "gone", not an error."""
    import errno
    import time
    p = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        with pytest.raises(OSError) as e:       # the kernel's own answer, read directly
            open(f"/proc/{p.pid}/mountinfo", "rb").read()
        assert e.value.errno == errno.EINVAL
        assert mountinfo.mounts(p.pid) == [] and mountinfo.mount_points(p.pid) == set()
    finally:
        p.wait()
