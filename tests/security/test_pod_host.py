"""What a process inside a pod can do to the HOST once it runs, as the default user (root, with
ace.md's default capabilities — CAP_MKNOD among them) and no help from the image's manifest.

Each test runs a real pod whose app tries one thing and reports what worked; the verdicts are
the kernel's (a device node that opens, a file that opens for writing, a write that lands on
the host's disk), and the host is looked at afterwards. Nothing here writes a kernel setting:
"writable" is tested by opening for append, which writes nothing."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sandbox.image import aci
from sandbox.pod import ace

pytestmark = pytest.mark.root


@pytest.fixture
def run_app(lab_state: Path, tmp_path: Path):
    """Run ``script`` as the app of a fresh image over example.com/busybox; returns its output
    lines (stdout and stderr). ``app``: more of the app section (mountPoints…)."""
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    made: list[str] = []
    count = [0]

    def run(script: str, app: dict | None = None, volumes: list | None = None) -> list[str]:
        count[0] += 1
        name = f"example.com/sbx-rt-pod-host-{os.getpid()}-{count[0]}"
        layout = tmp_path / f"image{count[0]}"
        (layout / "rootfs").mkdir(parents=True)
        (layout / "manifest").write_text(json.dumps({
            "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
            "app": {"exec": ["/bin/sh", "-c", script], "user": "0", "group": "0", **(app or {})},
            "dependencies": [{"imageName": "example.com/busybox"}]}))
        aci.build(layout, tmp_path / f"image{count[0]}.aci")
        store = Store()
        store.import_aci(tmp_path / f"image{count[0]}.aci")
        p = pod.prepare(store, [name], net=["none"], volumes=volumes)
        made.append(p.uuid)
        pod.run_prepared(p.uuid)
        logs = next(iter(pod.logs(p.uuid).values()))
        return (logs["stdout"] + logs["stderr"]).splitlines()

    yield run
    for u in made:
        pod.remove(u)


PLACES = ["/", "/tmp", "/dev", "/dev/shm", "/empty", "/host"]


def test_device_nodes_an_app_makes_open_nothing(run_app, tmp_path: Path) -> None:
    """The app is root with CAP_MKNOD and no device cgroup limits it: a node it makes anywhere
    it can write — its root, /dev, an empty volume, a host volume — must not open (1:5 stands
    for any number: the host's disk, 8:0 or 254:0, is reached the same way). The nodes the
    runtime made in /dev still work."""
    host = tmp_path / "host"
    host.mkdir()
    script = "; ".join(
        f"mknod {p.rstrip('/')}/sbxdev c 1 5 || echo 'NO-MKNOD {p}'; "
        f"head -c1 {p.rstrip('/')}/sbxdev >/dev/null && echo 'OPENED {p}'" for p in PLACES)
    script += "; head -c1 /dev/zero | wc -c; echo x > /dev/null && echo NULL-OK"
    from sandbox.pod import stage0 as pod
    out = run_app(script, {"mountPoints": [{"name": "empty", "path": "/empty"},
                                           {"name": "host", "path": "/host"}]},
                  volumes=[pod.VolumeSpec("host", "host", str(host))])
    assert not [l for l in out if l.startswith(("OPENED", "NO-MKNOD"))], out
    assert "1" in out and "NULL-OK" in out, out


def test_kernel_settings_and_secrets_stay_out_of_reach(run_app) -> None:
    """/proc/sys and the other READONLY_PATHS open for writing nowhere (root in a pod would set
    kernel.core_pattern, and the host's kernel would run the app's program as the host's root
    on the next crash); MASKED_PATHS read as nothing. Every path this kernel has is tried."""
    have = [p for p in ace.READONLY_PATHS if os.path.exists(p)]
    writable = [p for p in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
                            "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger") if os.path.exists(p)]
    masked = [p for p in ace.MASKED_PATHS if os.path.isfile(p)]
    dirs = [p for p in ace.MASKED_PATHS if os.path.isdir(p)]
    assert writable and have and (masked or dirs)
    script = "; ".join([f"(exec 3>>{p}) 2>/dev/null && echo 'WRITABLE {p}'" for p in writable]
                       + [f"grep -q ' {p} ' /proc/self/mountinfo || echo 'NOT-MOUNTED {p}'"
                          for p in have]
                       + [f"test $(cat {p} 2>/dev/null | wc -c) = 0 || echo 'READABLE {p}'"
                          for p in masked]
                       + [f"test -z \"$(ls -A {p})\" || echo 'LISTED {p}'" for p in dirs]
                       + ["cat /proc/sys/kernel/hostname"])
    out = run_app(script)
    assert [l for l in out if l.split(" ")[0] in ("WRITABLE", "NOT-MOUNTED", "READABLE",
                                                  "LISTED")] == [], out
    assert [l for l in out if l.startswith("pod-")], out      # reading a setting still works


def test_read_only_host_volume_keeps_its_submounts_read_only(run_app, tmp_path: Path) -> None:
    """A read-only host volume is bound recursively (pods.md: recursive by default), so the
    mounts below its source come along — and must be read-only too (a remount of the top
    alone leaves them writable, and the app writes into the host's file system there)."""
    from sandbox.pod import stage0 as pod
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sbx-rt-sub", str(src / "sub")],
                   check=True)
    try:
        out = run_app("echo x > /in/top && echo 'WROTE /in/top'; "
                      "echo x > /in/sub/f && echo 'WROTE /in/sub/f'; "
                      "grep ' /in/sub ' /proc/self/mountinfo | cut -d' ' -f6",
                      {"mountPoints": [{"name": "in", "path": "/in", "readOnly": True}]},
                      volumes=[pod.VolumeSpec("in", "host", str(src))])
        assert not [l for l in out if l.startswith("WROTE")], out
        opts = [l.split(",") for l in out if l.startswith(("ro,", "rw,"))]
        assert opts and opts[0][0] == "ro" and "nodev" in opts[0], out
        assert os.listdir(src / "sub") == [] and os.listdir(src) == ["sub"]
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


@pytest.mark.parametrize("way", ["mount_setattr", "remount each"])
def test_restrict_mount_reaches_every_submount(tmp_path: Path, monkeypatch, way: str) -> None:
    """libc.restrict_mount, both ways: mount_setattr(AT_RECURSIVE), and, where the kernel or a
    seccomp filter lacks it, a remount of each mount with the flags it has kept. Done in a
    child in a mount namespace of its own (nothing reaches the host's table)."""
    from sandbox._sys import libc, platform
    if way == "remount each":
        monkeypatch.setattr(platform, "SYS_MOUNT_SETATTR", 100_000)    # ENOSYS
    top, sub = tmp_path / "top", tmp_path / "top" / "sub"
    sub.mkdir(parents=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        res = "died"
        try:
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            libc.mount("tmpfs", str(top), "tmpfs", libc.MS_NOEXEC, "size=1m")
            sub.mkdir()
            libc.mount("tmpfs", str(sub), "tmpfs", libc.MS_NOSUID, "size=1m")
            fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
            libc.restrict_mount(fd, libc.MOUNT_ATTR_RDONLY | libc.MOUNT_ATTR_NODEV, recursive=True)
            res = json.dumps([os.statvfs(top).f_flag, os.statvfs(sub).f_flag])
        except BaseException as e:  # noqa: BLE001
            res = f"{type(e).__name__}: {e}"
        finally:
            os.write(w, res.encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        res = f.read()
    os.waitpid(pid, 0)
    top_flags, sub_flags = json.loads(res)
    ro, nosuid, nodev, noexec = os.ST_RDONLY, os.ST_NOSUID, os.ST_NODEV, os.ST_NOEXEC
    assert top_flags & (ro | nodev | noexec) == ro | nodev | noexec     # noexec kept
    assert sub_flags & (ro | nodev | nosuid) == ro | nodev | nosuid     # nosuid kept
