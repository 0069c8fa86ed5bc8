"""Pods need the lab catalogue in a private state dir, and leave nothing behind."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.image.store import Store


@pytest.fixture(scope="package")
def pod_state(lab_state: Path):
    """The catalogue in a private state dir; at the end every pod is stopped and gc'ed."""
    from sandbox.pod import stage0 as pod
    try:
        yield lab_state
    finally:
        for p in pod.list_pods():
            if p["state"] == "run":
                pod.stop(p["uuid"], timeout=5)
        pod.gc(grace=0)


@pytest.fixture
def store(pod_state: Path) -> Store:
    return Store()


@pytest.fixture
def stop_pods(pod_state: Path):
    """Stop whatever the test started, even when it fails."""
    from sandbox.pod import stage0 as pod
    started: list[str] = []
    yield started
    for u in started:
        try:
            if pod.find(u)[0] == "run":
                pod.stop(u, timeout=5)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def make_image(store: Store, tmp_path: Path):
    """Build and import an image on top of example.com/busybox with the given app section."""
    counter = [0]

    def make(app: dict, name: str | None = None, files: dict[str, str] | None = None,
             path_whitelist: list[str] | None = None,
             owners: dict[str, tuple[int, int]] | None = None) -> str:
        counter[0] += 1
        name = name or f"example.com/test-app-{os.getpid()}-{counter[0]}"
        layout = tmp_path / f"layout{counter[0]}"
        (layout / "rootfs").mkdir(parents=True)
        for rel, text in (files or {}).items():
            p = layout / "rootfs" / rel.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            p.chmod(0o755)
        for rel, (uid, gid) in (owners or {}).items():
            os.chown(layout / "rootfs" / rel.lstrip("/"), uid, gid)
        bb = store.get("example.com/busybox")
        m = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
             "labels": [{"name": "version", "value": "1.0.0"},
                        {"name": "os", "value": "linux"},
                        {"name": "arch", "value": bb.labels["arch"]}],
             "app": {"user": "0", "group": "0", **app},
             "dependencies": [{"imageName": "example.com/busybox", "imageID": bb.id}]}
        if path_whitelist:
            m["pathWhitelist"] = path_whitelist
        (layout / "manifest").write_text(json.dumps(m))
        out = tmp_path / f"img{counter[0]}.aci"
        aci.build(layout, out)
        return store.import_aci(out).id

    return make


@pytest.fixture
def state(tmp_path: Path, catalog_acis: dict[str, Path], monkeypatch) -> Path:
    """A fresh state directory of the test's own, with the catalogue imported; every pod made
    in it is stopped and removed at the end (gc keeps prepared ones: removed too)."""
    from sandbox.pod import stage0 as pod
    d = tmp_path / "state"
    monkeypatch.setenv("SANDBOX_DIR", str(d))
    store = Store()
    for p in catalog_acis.values():
        store.import_aci(p)
    yield d
    for p in pod.list_pods():
        if p["state"].startswith("run"):
            pod.stop(p["uuid"], timeout=5)
    pod.gc(grace=0)
    for p in pod.list_pods():
        pod.remove(p["uuid"])
