"""Hostile runtime input (the red run of 2026-12-06): what a pod is asked to do that the kernel
or stage1 cannot do must be refused with one sentence before the pod exists, and whatever still
fails the pod's PID 1 must be the pod's error — not a silent exit 1 with the reason only in
stage1.log. Each test has a state directory of its own, and removes its pods even on failure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.image.store import Store
from sandbox.pod import stage0 as pod

pytestmark = pytest.mark.root


def sandbox(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *argv], capture_output=True, text=True,
                          timeout=120, env=os.environ.copy())


def pods_on_disk(state: Path) -> list[str]:
    return sorted(f"{s.name}/{p.name}" for s in (state / "pods").iterdir() for p in s.iterdir()) \
        if (state / "pods").is_dir() else []


BAD_HOSTNAMES = ["a" * 65, "a" * 64, "web\n10.0.0.1 evil", "../../x", "a b", "-a", "a-", "a..b",
                 "a_b", "é", "a\0b"]


@pytest.mark.parametrize("hostname", BAD_HOSTNAMES, ids=range(len(BAD_HOSTNAMES)))
def test_a_hostname_that_is_not_one_is_refused_before_the_pod_exists(state: Path,
                                                                     hostname: str) -> None:
    """Before: 65 characters ran the pod, whose PID 1 failed at sethostname (EINVAL) — `sandbox
    run` printed nothing and exited 1; a newline wrote a line of its own into the pod's
    /etc/hosts."""
    with pytest.raises(pod.PodError, match="not a host name"):
        pod.prepare(Store(), ["example.com/busybox"], net=["none"], hostname=hostname)
    assert pods_on_disk(state) == []


def test_the_cli_refuses_a_long_hostname_in_one_sentence(state: Path) -> None:
    p = sandbox("run", "--net", "none", "--hostname", "a" * 100, "example.com/busybox",
                "--exec", "true")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sandbox: ") and "host name" in lines[0], p.stderr
    assert pods_on_disk(state) == []


def test_the_longest_hostname_runs(state: Path) -> None:
    name = "a" * 32 + "." + "b" * 31           # 64 characters, labels within 63
    p = sandbox("run", "--net", "none", "--hostname", name, "example.com/busybox",
                "--exec", "hostname")
    assert p.returncode == 0, p.stderr
    assert f"[busybox] {name}" in p.stdout


def test_a_failure_of_the_pods_pid1_is_the_pods_error(state: Path) -> None:
    """A plan PID 1 cannot carry out (here a hostname sethostname refuses, as an older kit's
    prepare let through): `run-prepared` says why in one sentence and `status` shows it."""
    p = pod.prepare(Store(), ["example.com/busybox"], net=["none"], exec_={0: ["true"]})
    plan_file = p.path / "plan.json"
    plan = json.loads(plan_file.read_text())
    plan["hostname"] = "x" * 100
    plan_file.write_text(json.dumps(plan))
    r = sandbox("run-prepared", p.uuid)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"sandbox: pod {p.uuid}: " in r.stderr and "hostname" in r.stderr, r.stderr
    assert "hostname" in (pod.status(p.uuid).get("error") or "")


def cpu_pod_manifest(limit: str) -> dict:
    return {"acKind": "PodManifest", "acVersion": "0.8.11",
            "apps": [{"name": "a", "image": {"name": "example.com/busybox"},
                      "app": {"exec": ["/bin/true"], "user": "0", "group": "0",
                              "isolators": [{"name": "resource/cpu", "value": {"limit": limit}}]}}]}


@pytest.mark.parametrize("limit", ["1m", "0", "9m", "200000000", "9223372036854775807"])
def test_any_cpu_quantity_runs(state: Path, limit: str) -> None:
    """resource/cpu limits the manifest accepts but the kernel's CFS quota does not (below 1 ms or
    above 2^44 - 1 us per period): the pod failed to start with "[Errno 22] Invalid argument;
    check that /sys/fs/cgroup/... is writable". Now the quota is raised to the kernel's minimum
    (as kubelet does), and a limit above its maximum limits nothing."""
    f = state.parent / "pm.json"
    f.write_text(json.dumps(cpu_pod_manifest(limit)))
    p = sandbox("run", "--net", "none", "--pod-manifest", str(f))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("version", [1, 2])
def test_cpu_quota_written_is_within_the_kernels_range(version: int) -> None:
    from sandbox.pod import cgroups
    quota = lambda millis: dict(cgroups._limit_writes(cgroups.Limits(cpu_millis=millis),  # noqa: E731
                                                     version)["cpu"])
    key = "cpu.max" if version == 2 else "cpu.cfs_quota_us"
    text = lambda q: f"{q} 100000" if version == 2 else str(q)  # noqa: E731
    assert quota(250)[key] == text(25000)
    assert quota(1)[key] == text(1000)
    assert quota(175_921_860_000)[key] == text(17_592_186_000_000)     # 175,921,860 cores
    assert quota(10**20)[key] == ("max 100000" if version == 2 else "-1")


def app_pod_manifest(app: dict, volumes: list | None = None) -> dict:
    m = {"acKind": "PodManifest", "acVersion": "0.8.11",
         "apps": [{"name": "a", "image": {"name": "example.com/busybox"},
                   "app": {"user": "0", "group": "0", **app}}]}
    if volumes is not None:
        m["volumes"] = volumes
        m["apps"][0]["mounts"] = [{"volume": v["name"], "path": f"/{v['name']}"} for v in volumes]
    return m


def run_manifest(state: Path, m: dict) -> subprocess.CompletedProcess:
    f = state.parent / "pm.json"
    f.write_text(json.dumps(m))
    return sandbox("run", "--net", "none", "--pod-manifest", str(f))


@pytest.mark.parametrize("m", [
    app_pod_manifest({"exec": ["/bin/true"], "supplementaryGIDs": [4294967295]}),
    app_pod_manifest({"exec": ["/bin/true"]}, [{"name": "v", "kind": "empty", "uid": 4294967295}]),
    app_pod_manifest({"exec": ["/bin/true"]}, [{"name": "v", "kind": "empty", "gid": 4294967295}]),
], ids=["supplementary-gid", "volume-uid", "volume-gid"])
def test_the_id_that_means_no_change_is_refused_before_the_pod_exists(state: Path, m: dict) -> None:
    """4294967295 is a uint32 (the manifest's type) but (uid_t)-1 to the kernel: setgroups said
    EINVAL ("cannot execute /bin/true: Invalid argument") and chown left an empty volume root's."""
    p = run_manifest(state, m)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("sandbox: ") and "4294967295" in p.stderr, p.stderr
    assert pods_on_disk(state) == []


def test_a_failed_pre_start_handler_is_said_in_the_run(state: Path) -> None:
    """Before: exit 1 and not a word (only `sandbox status` named the failed handler)."""
    p = run_manifest(state, app_pod_manifest({
        "exec": ["/bin/true"], "eventHandlers": [{"name": "pre-start", "exec": ["/bin/false"]}]}))
    assert p.returncode == 1 and "pre-start handler exited with 1" in p.stderr, p.stderr


MANY = "9" * 5000


@pytest.mark.parametrize("app", [{"exec": ["/bin/true"], "user": MANY},
                                 {"exec": ["/bin/true"], "group": MANY},
                                 {"exec": ["/bin/true"], "user": "0" * 5000 + "7"}],
                         ids=["user", "group", "leading-zeros"])
def test_a_user_or_group_of_thousands_of_digits_is_one_sentence(state: Path, app: dict) -> None:
    """int() refuses more than 4300 digits: "failed inside the kit (ValueError: Exceeds the limit
    (4300 digits) for integer string conversion)", exit 70."""
    p = run_manifest(state, app_pod_manifest(app))
    assert p.returncode == 1 and p.stderr.startswith("sandbox: ") and "beyond" in p.stderr, p.stderr
    assert pods_on_disk(state) == []


def test_an_id_of_thousands_of_digits_in_the_images_passwd(state: Path, tmp_path: Path) -> None:
    import tarfile

    bb = Store().get("example.com/busybox")
    layout = tmp_path / "layout"
    (layout / "rootfs" / "etc").mkdir(parents=True)
    (layout / "rootfs" / "etc" / "passwd").write_text(f"bob:x:{MANY}:0::/:/bin/sh\n")
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/sbx-rr-passwd",
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": bb.labels["arch"]}],
        "app": {"exec": ["/bin/true"], "user": "bob", "group": "0"},
        "dependencies": [{"imageName": "example.com/busybox", "imageID": bb.id}]}))
    aci = tmp_path / "img.aci"
    with tarfile.open(aci, "w") as t:
        t.add(layout / "manifest", "manifest")
        t.add(layout / "rootfs", "rootfs")
    Store().import_aci(aci)
    p = sandbox("run", "--net", "none", "example.com/sbx-rr-passwd")
    assert p.returncode == 1 and p.stderr.startswith("sandbox: ") and "beyond" in p.stderr, p.stderr


@pytest.mark.parametrize("app", [
    {"exec": ["/bin/echo", "a\0b"]},
    {"exec": ["/bin/true"], "environment": [{"name": "X", "value": "a\0b"}]},
    {"exec": ["/bin/true"], "workingDirectory": "/tmp\0/x"},
    {"exec": ["/bin/true"], "user": "ro\0ot"},
    {"exec": ["/bin/true"], "group": "0\0"},
    {"exec": ["/bin/true"], "eventHandlers": [{"name": "pre-start", "exec": ["/bin/true", "\0"]}]},
], ids=["exec", "environment", "workingDirectory", "user", "group", "pre-start"])
def test_a_nul_byte_where_a_c_string_goes_is_refused_before_the_pod_exists(state: Path,
                                                                           app: dict) -> None:
    """Before: the manifest passed, and the pod failed at exec (or ran with the value cut)."""
    p = run_manifest(state, app_pod_manifest(app))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("sandbox: ") and "NUL byte" in p.stderr, p.stderr
    assert pods_on_disk(state) == []


@pytest.mark.parametrize("exec_", ["echo 'unbalanced", 'echo "x', "echo x\\", "", "   "])
def test_an_exec_that_is_no_command_line_is_a_usage_error(state: Path, exec_: str) -> None:
    """Before: an unclosed quote was "failed inside the kit (ValueError: No closing quotation)",
    exit 70; an empty --exec ran the image's own exec as if none were given."""
    p = sandbox("run", "--net", "none", "example.com/busybox", "--exec", exec_)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("sandbox: --exec"), p.stderr
    assert pods_on_disk(state) == []
