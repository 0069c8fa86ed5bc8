"""`sandbox reset` removes what the kit made — pods, netns, host links with their addresses,
mounts under $SANDBOX_DIR, host NAT rules of the kit's networks, caches — and nothing else.

The test names everything with a unique prefix (``sbxr<hex>``) and resets with ``--prefix`` so
another run's namespaces on the same machine are never touched; decoys outside the prefix (one
with the kit's ``sbx`` but another prefix, one without) must survive.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from sandbox._sys import libc
from sandbox.net import netns

pytestmark = [pytest.mark.root]


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def _nat() -> str:
    return subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def world(sandbox_dir: Path):
    tag = secrets.token_hex(3)
    prefix = f"sbxr{tag}"
    made = {"prefix": prefix, "ns": f"{prefix}-ns", "link": f"{prefix}d",
            "chain": f"CNI-{prefix}", "decoy_kit": f"sbx-keep-{tag}", "decoy_other": f"keep-{tag}",
            "mount": sandbox_dir / "cache" / "mnt"}
    comment = f'name: "{prefix}-net" id: "c1"'
    try:
        yield made, comment
    finally:  # whatever the test did not manage to remove
        for n in (made["ns"], made["decoy_kit"], made["decoy_other"]):
            netns.delete(n, missing_ok=True)
        for f in Path(netns.DEFAULT_DIR).glob(f"{prefix}*"):
            f.unlink(missing_ok=True)
        subprocess.run(["ip", "link", "del", made["link"]], capture_output=True)
        subprocess.run(["iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", "192.0.2.77/32",
                        "-m", "comment", "--comment", comment, "-j", made["chain"]],
                       capture_output=True)
        subprocess.run(["iptables", "-w", "-t", "nat", "-X", made["chain"]], capture_output=True)
        if _mounted(made["mount"]):
            libc.umount(str(made["mount"]), libc.MNT_DETACH)
        from sandbox.pod import stage0 as pod
        for p in pod.list_pods():
            if p["state"] == "run":
                pod.stop(p["uuid"], timeout=5)


def test_reset_removes_what_the_kit_made_and_nothing_else(world, sandbox_dir: Path, run_cli,
                                                         tmp_path: Path) -> None:
    made, comment = world
    from sandbox.image import catalog
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    store = Store()
    catalog.build(tmp_path / "catalog", import_to=store, progress=False)
    p = pod.run(store, ["example.com/busybox"], net=["none"], detach=True,
                exec_={0: ["/bin/sh", "-c", "sleep 600"]})
    netns.create(made["ns"])
    stale = Path(netns.DEFAULT_DIR) / f"{made['prefix']}-stale"
    stale.touch()                      # a handle whose helper died before binding a netns
    netns.create(made["decoy_kit"])
    netns.create(made["decoy_other"])
    subprocess.run(["ip", "link", "add", made["link"], "type", "veth", "peer", "name",
                    made["link"] + "p"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.77/32", "dev", made["link"]], check=True)
    made["mount"].mkdir(parents=True)
    libc.mount("tmpfs", str(made["mount"]), "tmpfs", 0, "size=1m")
    subprocess.run(["iptables", "-w", "-t", "nat", "-N", made["chain"]], check=True)
    subprocess.run(["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.77/32",
                    "-m", "comment", "--comment", comment, "-j", made["chain"]], check=True)
    assert pod.status(p.uuid)["state"] == "run"

    # without --yes and without a terminal: the plan is shown and nothing is removed
    rc, out, err = run_cli("reset", "--prefix", made["prefix"])
    assert rc == 1 and f"netns {made['ns']}" in out and "--yes" in err
    assert netns.exists(made["ns"]) and pod.status(p.uuid)["state"] == "run"

    rc, out, err = run_cli("reset", "--yes", "--prefix", made["prefix"])
    assert rc == 0, err
    assert pod.list_pods() == []
    assert not netns.exists(made["ns"]) and not stale.exists()
    assert not os.path.exists(f"/sys/class/net/{made['link']}")
    assert not os.path.exists(f"/sys/class/net/{made['link']}p")
    assert "192.0.2.77" not in subprocess.run(["ip", "-o", "addr"], capture_output=True,
                                              text=True).stdout
    assert not _mounted(made["mount"])
    nat = _nat()
    assert made["chain"] not in nat and made["prefix"] not in nat
    for part in ("pods", "cache", "trees", "copies"):
        assert not (sandbox_dir / part).exists()
    # the image store stays unless --all; things the kit did not make (or another prefix) stay
    assert (sandbox_dir / "images").is_dir()
    assert netns.exists(made["decoy_kit"]) and netns.exists(made["decoy_other"])

    rc, out, _ = run_cli("reset", "--yes", "--prefix", made["prefix"])
    assert rc == 0 and "nothing to remove" in out


def test_reset_refuses_a_prefix_outside_the_kits(run_cli, sandbox_dir: Path) -> None:
    rc, _, err = run_cli("reset", "--yes", "--prefix", "eth")
    assert rc == 2 and "must start with the kit's prefix" in err
