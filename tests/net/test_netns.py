"""Named network namespaces: created the slide's way, checked against iproute2 and the kernel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sandbox._sys import mountinfo
from sandbox.errors import SandboxError
from sandbox.net import netns
from sandbox.steps import Steps

pytestmark = pytest.mark.root


def ip_json(*args: str) -> list[dict]:
    """iproute2 as an independent oracle (the library itself never shells out to ip)."""
    return json.loads(subprocess.run(["ip", "-j", *args], check=True, capture_output=True,
                                     text=True).stdout)


def test_create_list_delete_seen_by_iproute2() -> None:
    name = netns.unique_name()
    steps = Steps()
    path = netns.create(name, steps=steps)
    try:
        assert path == Path("/run/netns") / name
        assert name in netns.list()
        assert name in {n["name"] for n in ip_json("netns", "list")}
        # a real, different namespace: its inode differs from ours, and the helper saw the same
        ino = netns.ns_inode(path)
        assert ino != netns.ns_inode("/proc/self/ns/net")
        # (on a fresh machine the first mount step is /run/netns made shared, without an inode)
        assert [s.detail["netns_inode"] for s in steps.of("mount") if s.what == str(path)] == [ino]
        # the handle is a bind mount of nsfs
        mounts = Path("/proc/self/mountinfo").read_text()
        assert f" {path} " in mounts and "nsfs" in mounts
    finally:
        netns.delete(name)
    assert not path.exists()
    assert name not in netns.list()
    assert name not in {n["name"] for n in ip_json("netns", "list") or []}
    assert f" {path} " not in Path("/proc/self/mountinfo").read_text()


def test_new_netns_has_only_lo_and_it_is_down(netns_factory) -> None:
    path = netns_factory()
    with netns.iproute(path) as ipr:
        links = ipr.get_links()
        assert [l.get("ifname") for l in links] == ["lo"]
        assert links[0]["flags"] & 1 == 0          # IFF_UP not set
        assert ipr.get_addr() == () or list(ipr.get_addr()) == []
    oracle = ip_json("-n", path.name, "addr")
    assert [(l["ifname"], l["operstate"], l["addr_info"]) for l in oracle] == [("lo", "DOWN", [])]


def test_node_has_lo_up_and_forwarding_but_host_is_untouched(node: Path) -> None:
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    out = netns.run(node, ["cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True)
    assert out.stdout.strip() == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward
    lo = ip_json("-n", node.name, "link", "show", "lo")[0]
    assert "UP" in lo["flags"]


def test_slide_way_with_a_plain_file(tmp_path: Path) -> None:
    """`touch myns; unshare -n mount --bind /proc/self/ns/net myns` with a path, not a name."""
    myns = tmp_path / "myns"
    netns.create(str(myns))
    try:
        assert netns.is_netns(myns)
        # nsenter (util-linux) agrees it is a network namespace different from ours
        out = subprocess.run(["nsenter", f"--net={myns}", "readlink", "/proc/self/ns/net"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == f"net:[{netns.ns_inode(myns)}]"
        assert out != os.readlink("/proc/self/ns/net")
    finally:
        netns.delete(str(myns))
    assert not myns.exists()


def test_enter_moves_only_the_calling_thread_and_restores(netns_factory) -> None:
    path = netns_factory()
    before = netns.current_inode()
    seen: dict[str, int] = {}
    go, done = threading.Event(), threading.Event()

    def other() -> None:  # a thread that already exists when we enter
        go.wait(10)
        seen["other"] = netns.current_inode()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with netns.enter(path):
        seen["inside"] = netns.current_inode()
        go.set(); done.wait(10)
        # a thread started inside inherits the namespace (clone copies it)
        t2 = threading.Thread(target=lambda: seen.__setitem__("child", netns.current_inode()))
        t2.start(); t2.join()
        # a netlink socket opened inside sees the namespace's links only
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            seen["links"] = len(ipr.get_links())
    assert seen["inside"] == netns.ns_inode(path)
    t.join()
    assert seen["other"] == before                 # other threads stay put
    assert seen["child"] == seen["inside"]
    assert seen["links"] == 1                      # only lo
    assert netns.current_inode() == before         # restored


def test_run_executes_inside(netns_factory) -> None:
    path = netns_factory()
    cp = netns.run(path, ["readlink", "/proc/self/ns/net"], capture_output=True, text=True)
    assert cp.stdout.strip() == f"net:[{netns.ns_inode(path)}]"


def test_handles_propagate_to_other_mount_namespaces(tmp_path: Path) -> None:
    """The netns dir is made a shared mount (like ip netns): a process in a mount namespace
    cloned earlier sees a handle made later *as a namespace* (nsfs), not just as an empty file.
    Once the last handle is gone the dir stops being a mount point again."""
    d = tmp_path / "netns"
    first = netns.create(netns.unique_name(), d)
    probe = subprocess.Popen(["unshare", "-m", "--propagation", "unchanged", "sh", "-c",
                              f"read name; stat -f -c %T {d}/$name"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    second = netns.unique_name()
    try:
        netns.create(second, d)
        out, _ = probe.communicate(second + "\n", timeout=10)
        assert out.strip() == "nsfs"
    finally:
        if probe.poll() is None:
            probe.kill(); probe.wait()
        netns.delete(second, d, missing_ok=True)
        netns.delete(first.name, d, missing_ok=True)
    assert f" {d} " not in Path("/proc/self/mountinfo").read_text()


def test_shared_dir_is_released_by_whichever_process_deletes_the_last_handle(tmp_path: Path) -> None:
    """A pod's supervisor (another process) often makes the dir a shared mount and exits before
    the last handle goes: the process deleting that handle undoes the mount (as on a fresh VM)."""
    d = tmp_path / "netns"
    name = netns.unique_name()
    made = subprocess.run([sys.executable, "-c", "import sys; from sandbox.net import netns; "
                           "netns.create(sys.argv[1], sys.argv[2])", name, str(d)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    try:
        assert str(d) in mountinfo.mount_points()                      # outlived its maker
        assert netns.is_netns(d / name)
        netns.delete(name, d)
        assert str(d) not in mountinfo.mount_points()
        assert list(tmp_path.iterdir()) == [d]                         # no marker left either
    finally:
        netns.delete(name, d, missing_ok=True)
        if str(d) in mountinfo.mount_points():                         # nothing left on failure
            subprocess.run(["umount", str(d)], check=True)


def test_user_mistakes_are_clear_errors(netns_factory) -> None:
    path = netns_factory()
    with pytest.raises(SandboxError, match="already exists"):
        netns.create(path.name)
    with pytest.raises(SandboxError, match="no network namespace"):
        netns.delete("sbx-never-made-123")
    netns.delete("sbx-never-made-123", missing_ok=True)
    with pytest.raises(SandboxError, match="not a valid"):
        netns.create("bad name!")
    with pytest.raises(SandboxError, match="no network namespace"):
        with netns.enter("sbx-never-made-123"):
            pass
    with pytest.raises(SandboxError, match="no network namespace"):
        netns.iproute("sbx-never-made-123")
    assert not Path("/run/netns/sbx-never-made-123").exists()   # flags=0: nothing created


def test_cli_netns_add_list_exec_del(run_cli) -> None:
    name = netns.unique_name()
    try:
        rc, out, err = run_cli("netns", "add", name, "--node")
        assert rc == 0 and f"/run/netns/{name}" in out, err
        ino = netns.ns_inode(f"/run/netns/{name}")
        rc, out, _ = run_cli("netns", "list")
        assert f"{name}\tnet:[{ino}]" in out.splitlines()
        # exec replaces the process: run it as a real CLI process
        import sys
        p = subprocess.run([sys.executable, "-m", "sandbox", "netns", "exec", name, "--",
                            "cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout.strip() == "1", p.stderr
        p = subprocess.run([sys.executable, "-m", "sandbox", "netns", "exec", name, "--",
                            "readlink", "/proc/self/ns/net"], capture_output=True, text=True)
        assert p.stdout.strip() == f"net:[{ino}]"
        rc, _, err = run_cli("netns", "add", name)
        assert rc == 1 and "already exists" in err and "Traceback" not in err
    finally:
        rc, _, _ = run_cli("netns", "del", name)
    assert rc == 0 and not Path(f"/run/netns/{name}").exists()
    rc, _, err = run_cli("netns", "del", name)
    assert rc == 1 and "no network namespace" in err


def test_cli_net_plugin_dir_and_its_guard(run_cli, monkeypatch) -> None:
    import sys

    from sandbox.net.plugins import plugin_dir
    rc, out, _ = run_cli("net", "plugin-dir")
    assert rc == 0 and Path(out.strip()) == plugin_dir()
    assert (Path(out.strip()) / "bridge").exists()
    monkeypatch.setitem(sys.modules, "sandbox.net.plugins", None)   # as if B2's module were missing
    rc, _, err = run_cli("net", "plugin-dir")
    assert rc == 1 and "not installed yet" in err and "Traceback" not in err


def test_a_handle_made_the_slides_way_first_is_never_hidden_by_the_kits_dir_mount() -> None:
    """Lab 4's flake, with its exact sequence: a netns made the slide's way in /run/netns while
    that is still a plain directory, *then* one made by the kit, then both deleted. The kit used
    to bind /run/netns onto itself over the first handle (hiding it: umount EINVAL, unlink
    EBUSY, the handle left forever). Run in a private mount namespace with its own /run, so
    the machine's /run/netns and other sessions' handles are never touched."""
    a, b = netns.unique_name("sbx-slide"), netns.unique_name("sbx-kit")
    kit = textwrap.dedent(f"""
        from sandbox._sys import mountinfo
        from sandbox.net import netns
        netns.create({b!r})
        assert netns.exists({a!r}) and netns.exists({b!r})
        netns.delete({a!r})
        netns.delete({b!r})
        assert not mountinfo.is_mount_point("/run/netns")   # still a plain directory
        print(sorted(__import__("os").listdir("/run/netns")), mountinfo.below("/run/netns"))
    """)
    # (the machine's /run/netns may be a mount point: detached here first, in this namespace
    # only; so is /run when it is one - under systemd it is a shared tmpfs, where the handles
    # below /run/netns have propagated copies that would still be listed under the new /run)
    script = ("set -e; if mountpoint -q /run/netns; then umount -l /run/netns; fi; "
              "if mountpoint -q /run; then umount -l /run; fi; "
              f"mount -t tmpfs sbx-run /run; mkdir /run/netns; touch /run/netns/{a}; "
              f"unshare -n mount --bind /proc/self/ns/net /run/netns/{a}; "
              f'"{sys.executable}" -c "$KIT"')
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       env={**os.environ, "KIT": kit}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[] []"          # both handles gone, nothing mounted below


def test_delete_takes_off_every_mount_stacked_on_a_handle(tmp_path: Path) -> None:
    """A handle bound twice (the slide's command run again over a kit handle) is deleted whole."""
    d = tmp_path / "netns"
    name = netns.unique_name()
    path = netns.create(name, d)
    try:
        once = [m.target for m in mountinfo.mounts()].count(str(path))
        subprocess.run(["unshare", "-n", "mount", "--bind", "/proc/self/ns/net", str(path)],
                       check=True)
        # stacked: twice as many mounts (under systemd / is shared, so each also propagates
        # to the peer under the directory's bind: 2 then 4; elsewhere 1 then 2)
        assert [m.target for m in mountinfo.mounts()].count(str(path)) == 2 * once >= 2
    finally:
        netns.delete(name, d)
    assert not path.exists() and mountinfo.below(d) == []


def test_a_node_whose_maker_died_half_way_is_made_again(tmp_path: Path) -> None:
    """A process killed between `touch` and the bind leaves an empty handle: the node netns of
    a state dir would then never start again (every pod: "already exists" / setns EINVAL)."""
    d = tmp_path / "netns"
    d.mkdir()
    name = netns.unique_name("sbx-node")
    (d / name).touch(0)                             # what the killed maker left
    try:
        path = netns.node_ensure(name, d)
        assert netns.is_netns(path)
        out = netns.run(path, ["cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True,
                        text=True)
        assert out.stdout.strip() == "1"
        ino = netns.ns_inode(path)
        assert netns.node_ensure(name, d) == path and netns.ns_inode(path) == ino   # kept
    finally:
        netns.delete(name, d, missing_ok=True)
