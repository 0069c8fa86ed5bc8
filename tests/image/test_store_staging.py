"""Store.stage: an import copies its source once, into a temporary file that `gc` leaves alone
while the import runs (before: gc deleted it and the import died with FileNotFoundError)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sandbox.errors import SandboxError
from sandbox.image import aci
from sandbox.image.store import Store


@pytest.fixture
def image(make_layout, tmp_path: Path) -> Path:
    out = tmp_path / "hello.aci"
    aci.build(make_layout(), out)
    return out


def test_gc_during_an_import_leaves_the_import_alone(sandbox_dir, image, monkeypatch) -> None:
    """gc runs while the import is hashing its temp file (the moment the old gc deleted it)."""
    store = Store()
    real_inspect = aci.inspect
    removed: list[list[str]] = []

    def inspect_while_gc_runs(path, **kw):
        t = threading.Thread(target=lambda: removed.append(Store().gc()))
        t.start()
        t.join(30)
        return real_inspect(path, **kw)

    monkeypatch.setattr(aci, "inspect", inspect_while_gc_runs)
    img = store.import_aci(image)
    assert img.id == real_inspect(image).image_id
    assert removed == [[]]                           # gc saw the temp file in use, took nothing
    monkeypatch.setattr(aci, "inspect", real_inspect)
    assert store.verify(img.id) == []
    assert list(store.tmp.iterdir()) == []           # and the import left nothing behind


def test_gc_still_removes_leftovers_of_dead_imports(sandbox_dir, image) -> None:
    store = Store()
    store.import_aci(image)
    stale = store.tmp / "import.1.deadbeef"
    stale.write_bytes(b"half an image")
    assert store.gc() == [str(stale)]


def test_a_staged_copy_is_checked_and_committed_as_it_was_copied(sandbox_dir, image, tmp_path) -> None:
    store = Store()
    with store.stage(image) as staged:
        seen = aci.inspect(staged.path).image_id
        image.write_bytes(b"changed after staging")    # the source changes: the copy does not
        img = staged.commit()
    assert img.id == seen and img.path.read_bytes() != b"changed after staging"
    assert list(store.tmp.iterdir()) == []


def test_a_staged_copy_not_committed_is_removed(sandbox_dir, image) -> None:
    store = Store()
    with pytest.raises(RuntimeError):
        with store.stage(image):
            raise RuntimeError("a check failed")
    assert list(store.tmp.iterdir()) == [] and store.list() == []


def test_a_move_keeps_the_file_locked_under_its_new_name(sandbox_dir, image, tmp_path) -> None:
    store = Store()
    mine = tmp_path / "download.aci"
    mine.write_bytes(image.read_bytes())
    with store.stage(mine, move=True) as staged:
        assert not mine.exists() and staged.path.exists()
        assert Store().gc() == []                       # locked: not a leftover
        img = staged.commit()
    assert img.id == aci.image_id(image)


@pytest.mark.parametrize("what", ["/dev/zero", "fifo", "missing", "dir"])
def test_importing_what_is_not_a_regular_file_is_one_sentence(sandbox_dir, tmp_path, what) -> None:
    import os
    p = Path(what) if what.startswith("/") else tmp_path / what
    if what == "fifo":
        os.mkfifo(p)
    elif what == "dir":
        p.mkdir()
    with pytest.raises(SandboxError, match="regular file|does not exist|is a directory"):
        Store().import_aci(p)
