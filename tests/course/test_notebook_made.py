"""A notebook removes only what it made (sandbox.course.notebook): a journal of the images it
imported and the keys it trusted, undone at the end — also
after its kernel died (by the next start, or by ``sandbox reset``), never touching what the
learner had before.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox.course import notebook
from sandbox.course import reset as kit_reset
from sandbox.image import catalog
from sandbox.image.store import Store
from sandbox.trust import pgp
from sandbox.trust.truststore import TrustStore


def _image(tmp: Path, name: str) -> Path:
    store = Store(tmp / "scratch-store")
    catalog.tiny_image(store, tmp / "layouts", name)
    return tmp / "layouts" / f"{name}.aci"


@pytest.fixture
def keys() -> tuple[pgp.SecretKey, pgp.SecretKey]:
    return (pgp.generate_key("Mine <mine@example.com>", bits=2048),
            pgp.generate_key("Learner <learner@example.com>", bits=2048))


def test_a_notebook_removes_what_it_made_and_nothing_else(sandbox_dir: Path, tmp_path: Path,
                                                          keys) -> None:
    theirs_aci, mine_aci = _image(tmp_path, "theirs"), _image(tmp_path, "mine")
    mine_key, learner_key = keys
    # the learner's own state before the notebook runs
    Store().import_aci(theirs_aci)
    TrustStore().add("example.com", learner_key.public().armored())

    nb = notebook.start("98")
    assert nb.path == sandbox_dir / "notebooks" / "98" and nb.path.is_dir()
    store, trust = nb.store(), nb.trust_store()
    store.import_aci(theirs_aci)                     # already there: not the notebook's
    mine = store.import_aci(mine_aci)
    trust.add("example.com", learner_key.public().armored())   # already trusted: not the notebook's
    trust.add("example.com/app", mine_key.public().armored())
    (nb.path / "scratch.txt").write_text("work")
    assert [m["kind"] for m in nb.made()] == ["image", "trust"]

    done = nb.close()
    assert any("removed image example.com/mine" in d for d in done)
    assert {i.name for i in Store().list()} == {"example.com/theirs"}
    assert [(k.prefix, k.fingerprint) for k in TrustStore().list()] == [
        ("example.com", learner_key.fingerprint)]
    assert not nb.path.exists()
    assert nb.close() == []                          # idempotent


def test_a_dead_kernel_is_cleaned_up_by_reset_and_by_the_next_start(sandbox_dir: Path,
                                                                     tmp_path: Path, keys) -> None:
    aci = _image(tmp_path, "dead")
    mine_key = keys[0]
    (tmp_path / "key.asc").write_bytes(mine_key.public().armored())
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from sandbox.course import notebook
        nb = notebook.start("97")
        nb.store().import_aci({str(aci)!r})
        nb.trust_store().add("example.com", Path({str(tmp_path / 'key.asc')!r}).read_bytes())
        os.kill(os.getpid(), signal.SIGKILL)         # the kernel dies: no atexit, no last cell
    """)
    p = subprocess.run([sys.executable, "-c", script], env={**os.environ, "SANDBOX_DIR": str(sandbox_dir)},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    journal = json.loads((sandbox_dir / "notebooks" / "97" / "journal.json").read_text())
    assert [m["kind"] for m in journal["made"]] == ["image", "trust"]
    assert "notebook state: 97" in kit_reset.plan()

    # the next start of the same notebook undoes what the dead run made
    nb = notebook.start("97")
    assert Store().list() == [] and TrustStore().list() == []
    assert nb.made() == []
    nb.close()


@pytest.mark.root
def test_sandbox_reset_undoes_a_dead_notebook(sandbox_dir: Path, tmp_path: Path) -> None:
    aci = _image(tmp_path, "left")
    script = textwrap.dedent(f"""
        import os, signal
        from sandbox.course import notebook
        nb = notebook.start("96")
        nb.store().import_aci({str(aci)!r})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "SANDBOX_DIR": str(sandbox_dir)},
                   capture_output=True, timeout=120)
    assert [i.name for i in Store().list()] == ["example.com/left"]
    done = kit_reset.reset(prefix="sbx-nb96-none")     # narrow: only the notebook's records act
    assert any("removed image example.com/left" in d for d in done)
    assert Store().list() == [] and not (sandbox_dir / "notebooks").exists()


def test_running_the_first_cell_again_starts_over(sandbox_dir: Path, tmp_path: Path) -> None:
    first = notebook.start("95")
    first.store().import_aci(_image(tmp_path, "again"))
    second = notebook.start("95")
    assert first.closed and Store().list() == [] and second.path.is_dir()
    second.close()


def test_cli_runs_this_environments_sandbox_on_the_same_state(sandbox_dir: Path, tmp_path: Path) -> None:
    nb = notebook.start("93")
    try:
        nb.store().import_aci(_image(tmp_path, "listed"))
        assert "example.com/listed" in nb.cli("image", "list")
    finally:
        nb.close()


def test_an_image_that_arrives_by_stage_and_commit_is_recorded(sandbox_dir: Path, tmp_path: Path) -> None:
    """fetch stores what it verified through Store.stage(...).commit(): the notebook's store
    records that way in too, so a fetched image is removed at the end."""
    nb = notebook.start("92")
    try:
        store = nb.store()
        with store.stage(_image(tmp_path, "fetched")) as staged:
            staged.commit()
        assert [m["name"] for m in nb.made()] == ["example.com/fetched"]
    finally:
        nb.close()
    assert Store().list() == []
