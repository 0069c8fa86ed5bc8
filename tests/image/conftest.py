"""Fixtures for the image-format tests: layouts, hand-made tars, reference tools."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from sandbox import config

DECOMPRESS = {"none": ["cat"], "gzip": ["gzip", "-dc"], "bzip2": ["bzip2", "-dc"],
              "xz": ["xz", "-dc"]}


def manifest_doc(name: str = "example.com/hello", version: str = "1.0.0", **extra) -> dict:
    d = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
         "labels": [{"name": "version", "value": version}, {"name": "os", "value": "linux"},
                    {"name": "arch", "value": "amd64"}],
         "app": {"exec": ["/bin/hello"], "user": "0", "group": "0"}}
    d.update(extra)
    return d


@pytest.fixture
def make_layout(tmp_path: Path) -> Callable[..., Path]:
    """make_layout(name, files={rel: bytes}, version=...) -> a layout dir (manifest + rootfs/)."""
    counter = [0]

    def make(name: str = "example.com/hello", files: dict[str, bytes] | None = None,
             version: str = "1.0.0", **extra) -> Path:
        counter[0] += 1
        d = tmp_path / f"layout{counter[0]}"
        (d / "rootfs").mkdir(parents=True)
        (d / "manifest").write_text(json.dumps(manifest_doc(name, version, **extra)))
        for rel, data in (files if files is not None else
                          {"etc/hello": b"hello\n", "bin/hello": b"#!/bin/sh\necho hi\n"}).items():
            p = d / "rootfs" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return d

    return make


@pytest.fixture
def write_tar(tmp_path: Path) -> Callable[..., Path]:
    """write_tar(name, entries) -> a plain tar; entries are TarInfo-like dicts:
    {"name", "type" (file|dir|sym|lnk|chr|fifo), "data", "linkname", "mode", "size"}."""

    def write(fname: str, entries: list[dict], manifest: bytes | None = None) -> Path:
        p = tmp_path / fname
        with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as t:
            if manifest is not None:
                ti = tarfile.TarInfo("manifest")
                ti.size = len(manifest)
                t.addfile(ti, io.BytesIO(manifest))
            for e in entries:
                ti = tarfile.TarInfo(e["name"])
                ti.mode = e.get("mode", 0o644)
                kind = e.get("type", "file")
                data = e.get("data", b"")
                if kind == "dir":
                    ti.type, ti.mode = tarfile.DIRTYPE, e.get("mode", 0o755)
                elif kind == "sym":
                    ti.type, ti.linkname = tarfile.SYMTYPE, e["linkname"]
                elif kind == "lnk":
                    ti.type, ti.linkname = tarfile.LNKTYPE, e["linkname"]
                elif kind == "chr":
                    ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
                elif kind == "fifo":
                    ti.type = tarfile.FIFOTYPE
                if kind == "file":
                    if "stream" in e:   # large content without holding it in memory
                        ti.size = e["size"]
                        t.addfile(ti, e["stream"])
                        continue
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
                else:
                    t.addfile(ti)
        return p

    return write


@pytest.fixture
def good_manifest() -> bytes:
    return json.dumps(manifest_doc()).encode()


@pytest.fixture(scope="session")
def actool() -> str:
    p = config.tool_path("actool")
    if p is None:
        pytest.skip("actool is not built; run `bash provision/build-tools.sh` (make install does)")
    return str(p)


def sha512sum_uncompressed(path: Path, compression: str) -> str:
    """The reference image ID: decompress with the compression's own CLI, hash with sha512sum."""
    dec = subprocess.Popen(DECOMPRESS[compression] + [str(path)], stdout=subprocess.PIPE)
    out = subprocess.run(["sha512sum"], stdin=dec.stdout, capture_output=True, text=True,
                         check=True).stdout
    assert dec.wait() == 0
    return "sha512-" + out.split()[0]


def compress_with_cli(plain: Path, compression: str, out: Path) -> Path:
    """The same tar, compressed by the real gzip/bzip2/xz tools."""
    if compression == "none":
        shutil.copyfile(plain, out)
    else:
        with open(out, "wb") as f:
            subprocess.run([{"gzip": "gzip", "bzip2": "bzip2", "xz": "xz"}[compression], "-c",
                            str(plain)], stdout=f, check=True)
    return out


def tree(path: Path) -> list[str]:
    """Every path under ``path`` (relative, sorted), links not followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), path))
    return sorted(out)
