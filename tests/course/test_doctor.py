"""`sandbox doctor`: every check passes on this machine (root, all tools installed), and each one
fails, in a controlled way, when what it looks at is really missing: a process without
CAP_SYS_ADMIN cannot make a netns, a PATH without the tools, a cgroup root with no controllers, a
state dir that cannot be written, a clock before the installed files, a proxy that does not spare
127.0.0.1, a kernel that died with notebook state, a namespace left over. One line per check, each
failure says what to do, never a traceback.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.course import doctor
from sandbox.net import netns

pytestmark = pytest.mark.root


def _sandbox(*args: str, env: dict[str, str] | None = None,
             wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(wrap or []), sys.executable, "-m", "sandbox", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=60)


def test_every_check_passes_here(sandbox_dir: Path) -> None:
    cp = _sandbox("doctor", "root", "netns", "overlay", "cgroups", "openat2", "tools", "widgets",
                  "state", "clock", "kernels")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    lines = cp.stdout.splitlines()
    assert len(lines) == 10 and all(l.startswith("✓ ") for l in lines), cp.stdout


def test_no_cap_sys_admin_fails_netns_with_what_to_do(sandbox_dir: Path) -> None:
    cp = _sandbox("doctor", "netns", "root", wrap=["setpriv", "--bounding-set=-sys_admin", "--"])
    assert cp.returncode == 1, cp.stdout + cp.stderr
    line = next(l for l in cp.stdout.splitlines() if " netns " in l)
    assert line.startswith("✗") and "cannot create a network namespace" in line and "root" in line
    assert "✓ root" in cp.stdout and "Traceback" not in cp.stdout + cp.stderr
    assert "1 check(s) failed" in cp.stdout


def test_root() -> None:
    f = doctor.check_root(euid=1000)
    assert f.status == "fail" and "sudo -i" in f.fix
    assert doctor.check_root().status == "ok"


def test_overlay(tmp_path: Path) -> None:
    fs = tmp_path / "filesystems"
    fs.write_text("nodev\tsysfs\nnodev\ttmpfs\n\text4\n")
    f = doctor.check_overlay(fs)
    assert f.status == "warn" and "no overlay filesystem" in f.detail and "modprobe overlay" in f.fix
    assert "needs root" in doctor.check_overlay(euid=1000).detail
    assert doctor.check_overlay().status == "ok"


def test_cgroups() -> None:
    from sandbox._sys.cgroupfs import Hierarchy
    f = doctor.check_cgroups([])                                   # nothing mounted
    assert f.status == "fail" and "cannot be tracked" in f.detail and "cgroup2" in f.fix
    v2 = Hierarchy(2, Path("/sys/fs/cgroup"), frozenset({"cpuset", "io", "pids"}))
    f = doctor.check_cgroups([v2])
    assert f.status == "warn" and "cgroup v2 (unified) without memory, cpu" in f.detail
    v2 = Hierarchy(2, Path("/sys/fs/cgroup"), frozenset({"cpu", "memory", "pids"}))
    assert doctor.check_cgroups([v2]).status == "ok"
    freezer = Hierarchy(1, Path("/sys/fs/cgroup/freezer"), frozenset({"freezer"}))
    f = doctor.check_cgroups([freezer])
    assert f.status == "warn" and "cgroup v1 without memory, cpu" in f.detail
    assert doctor.check_cgroups().status == "ok"                  # this machine's real mounts


def test_openat2_turned_off() -> None:
    cp = _sandbox("doctor", "openat2", env={"SANDBOX_NO_OPENAT2": "1"})
    assert cp.returncode == 0 and cp.stdout.startswith("! openat2") and "SANDBOX_NO_OPENAT2" in cp.stdout


def test_tools(tmp_path: Path) -> None:
    f = doctor.check_tools(path=str(tmp_path), cni_dir=tmp_path)
    assert f.status == "fail"
    for tool in doctor.TOOLS:
        assert f"{tool} (" in f.detail
    assert "apt-get install" in f.fix and "graphviz" in f.fix and "containernetworking-plugins" in f.fix
    (tmp_path / "dot").write_text("#!/bin/sh\n")
    (tmp_path / "dot").chmod(0o755)
    assert "dot (" not in doctor.check_tools(path=str(tmp_path)).detail


def test_widgets() -> None:
    assert doctor.check_widgets().status == "ok"


def test_state(tmp_path: Path) -> None:
    f = doctor.check_state(Path("/proc/sbx-doctor"))
    assert f.status == "fail" and "cannot write to /proc/sbx-doctor" in f.detail and "SANDBOX_DIR" in f.fix
    f = doctor.check_state(tmp_path, min_free=1 << 62)
    assert f.status == "warn" and "MiB free" in f.detail
    assert doctor.check_state(tmp_path).status == "ok" and list(tmp_path.iterdir()) == []


def test_clock() -> None:
    f = doctor.check_clock(now=0.0)
    assert f.status == "fail" and "1970-01-01" in f.detail and "date -s" in f.fix
    assert doctor.check_clock().status == "ok"


def test_proxy() -> None:
    f = doctor.check_proxy({"https_proxy": "http://10.0.0.1:3128"})
    assert f.status == "fail" and "no_proxy lacks 127.0.0.1, localhost" in f.detail
    assert "LAB_EXTRA_CA_DIR" in f.fix
    ok = doctor.check_proxy({"HTTPS_PROXY": "http://10.0.0.1:3128", "no_proxy": "localhost,127.0.0.1"})
    assert ok.status == "ok"
    assert doctor.check_proxy({}).status == "ok"
    cp = _sandbox("doctor", "proxy", env={"http_proxy": "http://10.0.0.1:3128", "no_proxy": ""})
    assert cp.returncode == 1 and cp.stdout.startswith("✗ proxy") and "export no_proxy" in cp.stdout


def test_kernels(sandbox_dir: Path) -> None:
    assert doctor.check_kernels().status == "ok"
    gone = subprocess.Popen(["true"])
    gone.wait()
    d = sandbox_dir / "notebooks" / "06"
    d.mkdir(parents=True)
    (d / "owner.json").write_text(json.dumps({"pid": gone.pid, "start": "1"}))
    f = doctor.check_kernels()
    assert f.status == "warn" and "06" in f.detail and "first cell" in f.fix


def test_leftovers(sandbox_dir: Path) -> None:
    prefix = netns.unique_name("sbx-wsdoc")
    assert doctor.check_leftovers(prefix).status == "ok"
    netns.create(prefix + "-x")
    try:
        f = doctor.check_leftovers(prefix)
        assert f.status == "warn" and f"netns {prefix}-x" in f.detail and "sandbox reset" in f.fix
    finally:
        netns.delete(prefix + "-x")
    assert doctor.check_leftovers(prefix).status == "ok"


def test_unknown_check_is_one_sentence(run_cli) -> None:
    rc, out, err = run_cli("doctor", "rooot")
    assert rc == 2 and "There is no check rooot" in err and "Traceback" not in err
