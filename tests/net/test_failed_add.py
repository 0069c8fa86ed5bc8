"""A CNI ADD that fails halfway undoes its own work (issue 20): `sandbox net add` with the kit's
plugins and a config that cannot work (a /33 subnet) or an address range that is used up left the
bridge it had just created on the host; DEL of the same config then failed with the same error.

Each test plays it from the shell, `sandbox net add|del|gc --node NODE` in a private node netns
(the "host"), and reads the kernel back with iproute2 and iptables (independent of the kit).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def sandbox(*argv: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *map(str, argv)],
                          capture_output=True, text=True, timeout=120)


def links(ns: Path) -> dict[str, dict]:
    """{ifname: ip -j link entry} in the netns ``ns``."""
    out = subprocess.run(["ip", "-j", "-n", ns.name, "link", "show"], capture_output=True,
                         text=True, check=True).stdout
    return {l["ifname"]: l for l in json.loads(out)}


def nat(ns: Path) -> list[str]:
    return subprocess.run(["ip", "netns", "exec", ns.name, "iptables", "-w", "-t", "nat", "-S"],
                          capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.fixture
def net(tmp_path: Path, node: Path, short_name):
    """Write a network config; returns (run `sandbox net CMD NET NETNS`, bridge name)."""
    from sandbox.net.plugins import plugin_dir
    bridge = short_name("sbxnb")
    dirs = {k: tmp_path / k for k in ("conf", "cache", "ipam")}
    for d in dirs.values():
        d.mkdir()

    def write(name: str, subnet: str, masq: bool = True) -> str:
        (dirs["conf"] / f"10-{name}.conf").write_text(json.dumps({
            "cniVersion": "1.1.0", "name": name, "type": "bridge", "bridge": bridge,
            "isGateway": True, "ipMasq": masq,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(dirs["ipam"])}}))
        return name

    def run(cmd: str, *args: str | Path) -> subprocess.CompletedProcess:
        return sandbox("net", cmd, *args, "--conf-dir", dirs["conf"], "--cni-path", plugin_dir(),
                       "--cache-dir", dirs["cache"], "--node", node.name)

    return write, run, bridge, dirs


def test_a_config_that_cannot_work_leaves_no_bridge_and_del_and_gc_cope(net, node, netns_factory):
    write, run, bridge, dirs = net
    name = write("sbx-nw-slash33", "10.99.0.0/33")
    c = netns_factory()
    p = run("add", name, c)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("sandbox: CNI error 7") and "10.99.0.0/33" in p.stderr
    assert bridge not in links(node)                       # was left up, with no port
    assert set(links(c)) == {"lo"}
    assert not [r for r in nat(node) if "CNI" in r or name in r]
    # DEL of the config that never worked succeeds (it failed with the same error), GC too
    p = run("del", name, c)
    assert p.returncode == 0, p.stderr
    p = run("gc", name)
    assert p.returncode == 0 and "error" not in p.stdout, p.stdout + p.stderr
    assert not list(dirs["cache"].rglob("*.json"))


def test_an_add_that_runs_out_of_addresses_removes_the_bridge_it_made(net, node, netns_factory):
    """host-local fails after the bridge and the veth pair exist (and the NAT rules were
    started): all of it goes, the other container's reservation stays."""
    write, run, bridge, dirs = net
    name = write("sbx-nw-full", "10.98.0.0/30")         # one address to give: 10.98.0.2
    (dirs["ipam"] / name).mkdir()
    taken = dirs["ipam"] / name / "10.98.0.2"
    taken.write_text("sbx-nw-other\r\neth0")
    c = netns_factory()
    before = set(links(node))
    p = run("add", name, c)
    assert p.returncode == 1 and "no IP addresses available" in p.stderr, p.stderr
    assert set(links(node)) == before and bridge not in before
    assert set(links(c)) == {"lo"}
    assert not [r for r in nat(node) if "CNI-" in r]
    assert taken.read_bytes() == b"sbx-nw-other\r\neth0"
    assert {x for x in os.listdir(dirs["ipam"] / name)
            if x != "lock" and not x.startswith("last_reserved_ip")} == {"10.98.0.2"}
    assert run("del", name, c).returncode == 0


def test_a_failed_add_keeps_a_bridge_that_other_containers_use(net, node, netns_factory):
    write, run, bridge, dirs = net
    name = write("sbx-nw-shared", "10.97.0.0/30", masq=False)
    first, second = netns_factory(), netns_factory()
    p = run("add", name, first)
    assert p.returncode == 0, p.stderr
    ports = {n for n, l in links(node).items() if l.get("master") == bridge}
    assert len(ports) == 1
    p = run("add", name, second)                          # the /30 has no second address
    assert p.returncode == 1 and "no IP addresses available" in p.stderr, p.stderr
    now = links(node)
    assert bridge in now and {n for n, l in now.items() if l.get("master") == bridge} == ports
    assert set(links(second)) == {"lo"} and "eth0" in links(first)
    assert run("del", name, first).returncode == 0
    assert run("del", name, second).returncode == 0
