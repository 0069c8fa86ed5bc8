"""The content-addressed store: import, lookups, verify, gc, concurrency."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.image.store import (
    AmbiguousImageRef,
    ImageNotFound,
    InvalidImage,
    Store,
    parse_app_string,
)

from .conftest import sha512sum_uncompressed


@pytest.fixture
def store(sandbox_dir: Path) -> Store:
    return Store()


@pytest.fixture
def build(make_layout, tmp_path):
    n = [0]

    def b(name="example.com/hello", version="1.0.0", compression="gzip", files=None, **extra) -> Path:
        n[0] += 1
        out = tmp_path / f"img{n[0]}.aci"
        aci.build(make_layout(name=name, version=version, files=files, **extra), out,
                  compression=compression)
        return out

    return b


def test_store_lives_under_sandbox_dir(store, sandbox_dir, build):
    img = store.import_aci(build())
    assert img.path.parent == sandbox_dir / "images" / "blobs" / "sha512"
    assert img.path.name == img.id[len("sha512-"):]
    # the blob is the ACI byte for byte, and its name is its ID
    assert sha512sum_uncompressed(img.path, "gzip") == img.id


def test_import_is_idempotent_across_compressions(store, build, tmp_path):
    plain = build(compression="none")
    first = store.import_aci(plain)
    index_before = (store.index_path).read_bytes()
    again = store.import_aci(plain)
    xz = tmp_path / "same.aci"
    subprocess.run(["xz", "-c", str(plain)], stdout=open(xz, "wb"), check=True)
    third = store.import_aci(xz)
    assert first.id == again.id == third.id
    assert first.imported_at == third.imported_at
    assert len(store.list()) == 1
    assert len(list(store.blobs.iterdir())) == 1
    assert store.index_path.read_bytes() == index_before
    assert not list(store.tmp.iterdir())


def test_import_refuses_invalid_images(store, tmp_path, write_tar):
    p = write_tar("bad.aci", [{"name": "rootfs/x", "data": b"x"}])
    with pytest.raises(InvalidImage, match="rootfs"):
        store.import_aci(p)
    assert store.list() == [] and not list(store.tmp.iterdir())
    with pytest.raises(Exception, match="does not exist"):
        store.import_aci(tmp_path / "missing.aci")


def test_lookup_by_full_id_prefix_and_store_key(store, build):
    img = store.import_aci(build())
    assert store.get(img.id).id == img.id
    assert store.get(aci.store_key(img.id)).id == img.id
    assert store.get(aci.short_id(img.id)).id == img.id
    assert store.get(img.id[:9]).id == img.id          # sha512- + 2 hex
    other = "sha512-" + ("0" if img.id[7] != "0" else "1") * 8
    with pytest.raises(ImageNotFound):
        store.get(other)
    with pytest.raises(Exception, match="at least 2"):
        store.get(img.id[:8])


def test_ambiguous_prefix_lists_matches(store, build):
    seen: dict[str, str] = {}
    for i in range(400):
        img = store.import_aci(build(name=f"example.com/n{i}", compression="none"))
        prefix = img.id[:9]
        if prefix in seen:
            break
        seen[prefix] = img.id
    else:
        pytest.fail("no two IDs shared 2 hex digits in 400 images")
    with pytest.raises(AmbiguousImageRef) as e:
        store.get(prefix)
    assert set(e.value.matches) == {seen[prefix], img.id}
    assert aci.short_id(img.id) in str(e.value) and aci.short_id(seen[prefix]) in str(e.value)
    assert store.get(img.id[:20]).id == img.id


def test_lookup_by_name_labels_and_version(store, build):
    v1 = store.import_aci(build(version="1.0.0"))
    v2 = store.import_aci(build(version="2.0.0"))
    assert store.get("example.com/hello:1.0.0").id == v1.id
    assert store.get("example.com/hello:2.0.0,os=linux,arch=amd64").id == v2.id
    # no version: the last imported one (nothing is marked latest)
    assert store.get("example.com/hello").id == v2.id
    assert [i.id for i in store.find("example.com/hello", {"os": "linux"})] == [v2.id, v1.id]
    with pytest.raises(ImageNotFound):
        store.get("example.com/hello:3.0.0")
    with pytest.raises(ImageNotFound):
        store.get("example.com/hello,os=freebsd")
    with pytest.raises(ImageNotFound):
        store.get("example.com/other")


def test_latest_means_the_label_not_the_newest(store, build):
    tagged = store.import_aci(build(version="latest"))
    newer = store.import_aci(build(version="9.9.9"))
    assert store.get("example.com/hello:latest").id == tagged.id
    # with no version asked for, an image carrying version=latest is preferred (rkt)
    assert store.get("example.com/hello").id == tagged.id
    assert newer.imported_at > tagged.imported_at


def test_latest_flag_from_a_fetch(store, build):
    fetched = store.import_aci(build(version="1.2.0"), latest=True)
    store.import_aci(build(version="1.3.0"))
    assert store.get("example.com/hello").id == fetched.id
    assert store.get("example.com/hello:latest").id == fetched.id
    assert store.get("example.com/hello:1.3.0").labels["version"] == "1.3.0"


def test_parse_app_string():
    assert parse_app_string("example.com/app:1.0,os=linux,arch=amd64") == (
        "example.com/app", {"version": "1.0", "os": "linux", "arch": "amd64"})
    assert parse_app_string("example.com/app") == ("example.com/app", {})
    for bad in ("example.com/app,os", "example.com/app:", ":1.0", "a,name=x", "a,os=1,os=2"):
        with pytest.raises(Exception):
            parse_app_string(bad)


def test_verify_detects_a_corrupted_blob(store, build):
    img = store.import_aci(build(compression="none", files={"data": os.urandom(5000)}))
    assert store.verify(img.id) == []
    data = bytearray(img.path.read_bytes())
    data[3000] ^= 0x01        # one bit inside a file's content
    img.path.write_bytes(bytes(data))
    probs = store.verify(img.id)
    assert probs and "hashes to" in probs[-1]
    actual = "sha512-" + hashlib.sha512(bytes(data)).hexdigest()
    assert aci.short_id(actual) in probs[-1]


def test_remove_export_and_manifest(store, build, tmp_path):
    src = build(compression="bzip2")
    img = store.import_aci(src)
    assert store.manifest(img.id).name == "example.com/hello"
    out = store.export(img.id[:12], tmp_path / "exported.aci")
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(Exception, match="already exists"):
        store.export(img.id, out)
    store.remove("example.com/hello")
    assert store.list() == [] and not img.path.exists()
    with pytest.raises(ImageNotFound):
        store.get(img.id)


def test_gc_removes_orphans_and_temp_files(store, build):
    img = store.import_aci(build())
    orphan = store.blobs / ("ab" * 64)
    orphan.write_bytes(b"junk")
    leftover = store.tmp / "import.123.deadbeef"
    leftover.write_bytes(b"half")
    removed = store.gc()
    assert str(orphan) in removed and str(leftover) in removed
    assert img.path.exists() and store.get(img.id)
    img.path.unlink()                       # a blob lost behind our back
    assert f"index entry {img.id}" in store.gc()
    assert store.list() == []


def test_extract_through_store(store, build, tmp_path):
    img = store.import_aci(build())
    store.extract(img.id, tmp_path / "x")
    assert (tmp_path / "x" / "etc" / "hello").read_bytes() == b"hello\n"


def test_image_html(store, build):
    img = store.import_aci(build())
    h = img._repr_html_()
    assert "example.com/hello" in h and aci.short_id(img.id) in h


def _import_worker(args):
    root, path = args
    return Store(root).import_aci(path).id


def test_concurrent_imports_keep_a_consistent_index(tmp_path, build):
    paths = [build(name=f"example.com/c{i}", compression="none") for i in range(6)]
    root = tmp_path / "state"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        ids = pool.map(_import_worker, [(root, p) for p in paths * 2])
    st = Store(root)
    assert {i.id for i in st.list()} == set(ids) and len(set(ids)) == 6
    idx = json.loads(st.index_path.read_text())
    assert len(idx) == 6
    assert not list(st.tmp.iterdir())
    assert all(st.verify(i) == [] for i in set(ids))
