"""Our ``loopback`` plugin against the kernel and against upstream's loopback."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from plugin_exec import UPSTREAM, ip_json, run_plugin, strip_volatile, with_prev

from sandbox.net import netns
from sandbox.net.plugins import plugin_dir

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_dir(tmp_path_factory.mktemp("bin")) / "loopback"


def lo(ns: Path) -> dict:
    return ip_json(ns, "addr", "show", "dev", "lo")[0]


CONF = {"cniVersion": "1.0.0", "name": "sbxlo", "type": "loopback"}


def test_add_check_del(ours: Path, node: Path, netns_factory: Callable[..., Path]) -> None:
    ns = netns_factory()
    assert "UP" not in lo(ns)["flags"]                     # a new netns: lo is down
    res = run_plugin(ours, "ADD", CONF, cid="sbx-l", ns=ns, ifname="lo", node=node).ok()
    assert res == {"cniVersion": "1.0.0",
                   "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": str(ns)}],
                   "ips": [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}],
                   "dns": {}}
    state = lo(ns)
    assert "UP" in state["flags"]
    assert {f"{a['local']}/{a['prefixlen']}" for a in state["addr_info"]} == {"127.0.0.1/8", "::1/128"}
    assert run_plugin(ours, "CHECK", with_prev(CONF, res), cid="sbx-l", ns=ns, ifname="lo", node=node).rc == 0
    assert run_plugin(ours, "DEL", with_prev(CONF, res), cid="sbx-l", ns=ns, ifname="lo", node=node).rc == 0
    assert "UP" not in lo(ns)["flags"]
    bad = run_plugin(ours, "CHECK", with_prev(CONF, res), cid="sbx-l", ns=ns, ifname="lo", node=node)
    assert bad.rc == 1 and bad.json["msg"] == "loopback interface is down"
    netns.delete(ns.name)
    for _ in range(2):  # DEL after the netns is gone, twice
        assert run_plugin(ours, "DEL", CONF, cid="sbx-l", ns=ns, ifname="lo", node=node).rc == 0


def test_same_as_upstream_and_chained(ours: Path, netns_factory: Callable[..., Path]) -> None:
    for version in ("0.3.1", "0.4.0", "1.0.0"):
        conf = dict(CONF, cniVersion=version)
        a, b = netns_factory(), netns_factory()
        mine = run_plugin(ours, "ADD", conf, cid="sbx-x", ns=a, ifname="lo").ok()
        theirs = run_plugin(UPSTREAM / "loopback", "ADD", conf, cid="sbx-x", ns=b, ifname="lo").ok()
        # upstream's loopback labels a 1.0.0-shaped result with the old version: ips[] lack the
        # "version" key that spec 0.3.x/0.4.0 require; ours has it. Otherwise equal.
        assert all(("version" in ip) == version.startswith("0.") for ip in mine["ips"])
        assert all("version" not in ip for ip in theirs["ips"])
        for ip in mine["ips"]:
            ip.pop("version", None)
        assert strip_volatile(mine) == strip_volatile(theirs)
    # chained after another plugin: prevResult passes through untouched
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"address": "10.1.0.2/24", "interface": 0}], "dns": {}}
    ns = netns_factory()
    out = run_plugin(ours, "ADD", dict(CONF, cniVersion="1.1.0", prevResult=prev), cid="sbx-y", ns=ns,
                     ifname="lo").ok()
    assert out == prev
    assert "UP" in lo(ns)["flags"]


def test_reports_the_addresses_the_kernel_gave_lo(ours: Path, netns_factory: Callable[..., Path]
                                                  ) -> None:
    """With IPv6 off in the container's netns, lo gets no ::1: the result says what is there
    (read back from the kernel), as upstream's does, not a fixed pair."""
    import subprocess
    a, b = netns_factory(), netns_factory()
    for ns in (a, b):
        subprocess.run(["ip", "netns", "exec", ns.name, "sysctl", "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1"], check=True)
    mine = run_plugin(ours, "ADD", CONF, cid="sbx-v4", ns=a, ifname="lo").ok()
    theirs = run_plugin(UPSTREAM / "loopback", "ADD", CONF, cid="sbx-v4", ns=b, ifname="lo").ok()
    kernel = [f"{x['local']}/{x['prefixlen']}" for x in lo(a)["addr_info"]]
    assert [ip["address"] for ip in mine["ips"]] == kernel == ["127.0.0.1/8"]
    assert [ip["address"] for ip in theirs["ips"]] == kernel
