"""Conformance: appc's own ACE validator (Go, built offline from Debian's sources) run as a pod
(main + sidekick) by our runtime. The verdict is the validator's: its exit codes and the
``<mode> OK`` lines it prints, read from the pod's logs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.image.store import Store
from sandbox.pod import conformance
from sandbox.pod import stage0 as pod

# serial: appc's validator gives each metadata request 100 ms (ace/validator.go)
pytestmark = [pytest.mark.root, pytest.mark.serial]

MAIN, SIDEKICK = conformance.MAIN, conformance.SIDEKICK


@pytest.fixture(scope="module")
def images(store: Store) -> dict:
    if conformance.config.tool_path("ace-validator") is None:
        pytest.fail("ace-validator is not built; run `bash provision/build-tools.sh`")
    return conformance.build_images(store)


@pytest.fixture(scope="module")
def store(pod_state) -> Store:   # module scope over the package's state dir
    return Store()


def _remove(uuid: str) -> None:
    try:
        pod.remove(uuid)
    except pod.PodError:
        pass


def test_ace_validator_passes_in_our_pod(store: Store, images: dict) -> None:
    assert not os.path.exists("/prestart") and not os.path.exists("/main")
    r = conformance.run(store, manifest=conformance.pod_manifest(images), keep=True)
    try:
        _, d = pod.find(r.uuid)
        # the validator's own verdict: exit codes recorded by stage1 …
        main_status = json.loads((d / "apps" / MAIN / "status.json").read_text())
        side_status = json.loads((d / "apps" / SIDEKICK / "status.json").read_text())
        assert (main_status["preStart"], main_status["exitCode"], main_status["postStop"],
                side_status["exitCode"]) == (0, 0, 0, 0), r.logs
        # … and what it printed, in the hooks' order, with no "==>" complaint
        logs = pod.logs(r.uuid)
        assert logs[MAIN]["stdout"].splitlines() == ["prestart OK", "main OK", "poststop OK"]
        assert logs[SIDEKICK]["stdout"].splitlines() == ["sidekick OK"]
        assert "==>" not in logs[MAIN]["stderr"] + logs[SIDEKICK]["stderr"]
        assert r.passed and r.pod_exit_code == 0
        # it wrote its markers inside the main app's own rootfs, and met the sidekick on the
        # shared volume; nothing on the host's /
        app_root = d / "apps" / MAIN / ("upper" if (d / "apps" / MAIN / "upper").is_dir() else "rootfs")
        assert {p for p in ("prestart", "main", "poststop") if (app_root / p).exists()} == \
            {"prestart", "main", "poststop"}
        side_root = d / "apps" / SIDEKICK / ("upper" if (d / "apps" / SIDEKICK / "upper").is_dir() else "rootfs")
        assert not (side_root / "main").exists()
        assert sorted(os.listdir(d / "volumes" / conformance.VOLUME)) == ["main", "sidekick"]
        assert not os.path.exists("/prestart") and not os.path.exists("/main")
        # it asked the metadata service (manifest, annotations, uuid, image ids, hmac)
        run = json.loads((d / "run.json").read_text())
        asked = " ".join(run["metadataRequests"])
        for path in ("pod/manifest", "pod/annotations", "pod/uuid", f"apps/{MAIN}/image/id",
                     f"apps/{SIDEKICK}/annotations", "pod/hmac/sign", "pod/hmac/verify"):
            assert path in asked, path
    finally:
        _remove(r.uuid)


def test_ace_validator_fails_when_the_environment_is_wrong(store: Store, images: dict) -> None:
    """The oracle can fail: the pod overrides the main app's section (pods.md) with another
    workingDirectory and without IN_ACE_VALIDATOR; the validator must say so."""
    m = conformance.pod_manifest(images)
    app = store.get(images["main"].id).manifest.raw["app"]
    m["apps"][0]["app"] = {**app, "workingDirectory": "/", "environment": []}
    r = conformance.run(store, manifest=m, net=["none"])
    assert not r.passed
    assert r.checks["main"].exit_code == 1 and r.checks["main"].verdict == "FAIL"
    reasons = " ".join(r.checks["main"].reasons)
    assert "working directory not set appropriately" in reasons
    assert "IN_ACE_VALIDATOR" in reasons
    assert r.checks["prestart"].ok and r.checks["sidekick"].ok


def test_cli_conformance(pod_state) -> None:
    p = subprocess.run([sys.executable, "-m", "sandbox", "ace-validate", "--net", "none", "--json"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SANDBOX_DIR": str(pod_state)})
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["passed"] is True
    assert {m: c["verdict"] for m, c in out["checks"].items()} == {
        "prestart": "OK", "main": "OK", "poststop": "OK", "sidekick": "OK"}
    assert not any(x["uuid"] == out["uuid"] for x in pod.list_pods())   # removed afterwards
