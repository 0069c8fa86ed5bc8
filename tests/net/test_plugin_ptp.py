"""Our ``ptp`` plugin against the kernel and against upstream's ptp."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from plugin_exec import (
    UPSTREAM,
    addrs,
    ip_json,
    links,
    nat_rules,
    run_plugin,
    sh_in,
    strip_volatile,
    tcp_hello,
    with_prev,
)

from sandbox.net import netns
from sandbox.net.plugins import plugin_dir
from waiting import eventually

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_dir(tmp_path_factory.mktemp("bin"))


def ptp_conf(data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "sbxptp", "type": "ptp", "ipMasq": True, "mtu": 1400,
            "ipam": {"type": "host-local", "subnet": "10.160.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": str(data_dir)}, **extra}


def routes(ns: Path) -> list[tuple]:
    return sorted((r["dst"], r.get("gateway"), r.get("dev"), r.get("scope"), r.get("prefsrc"))
                  for r in ip_json(ns, "route", "show"))


def state(node: Path, ns: Path, res: dict[str, Any]) -> dict[str, Any]:
    host = res["interfaces"][0]["name"]
    return {"result": strip_volatile(res),
            "container addrs": [a for a in addrs(ns, "eth0") if not a.startswith("fe80")],
            "container routes": routes(ns),
            "container mtu": links(ns)["eth0"]["mtu"],
            "host addrs": [a for a in addrs(node, host) if not a.startswith("fe80")],
            "host routes": [(d, g, "veth", s, p) for d, g, dev, s, p in routes(node) if dev == host],
            "nat": nat_rules(node)}


def test_add_check_del_like_upstream(ours: Path, netns_factory: Callable[..., Path], tmp_path: Path) -> None:
    seen = {}
    for label, impl in (("ours", ours), ("theirs", UPSTREAM)):
        node, ns = netns_factory(node=True), netns_factory()
        conf = ptp_conf(tmp_path / label)
        res = run_plugin(impl / "ptp", "ADD", conf, cid="sbx-p", ns=ns, node=node).ok()
        seen[label] = state(node, ns, res)
        chk = run_plugin(impl / "ptp", "CHECK", with_prev(conf, res), cid="sbx-p", ns=ns, node=node)
        assert chk.rc == 0, chk.stdout
        if label == "ours":
            sh_in(ns, "ip", "route", "del", "default")
            bad = run_plugin(impl / "ptp", "CHECK", with_prev(conf, res), cid="sbx-p", ns=ns, node=node)
            assert bad.rc == 1 and "not found in routing table" in bad.json["msg"]
        for _ in range(2):
            assert run_plugin(impl / "ptp", "DEL", with_prev(conf, res), cid="sbx-p", ns=ns, node=node).rc == 0
        assert sorted(links(node)) == ["lo"] and "eth0" not in links(ns)
    assert seen["ours"] == seen["theirs"]
    s = seen["ours"]
    assert s["host addrs"] == ["10.160.0.1/32"]
    assert ("10.160.0.0/24", "10.160.0.1", "eth0", None, "10.160.0.2") in s["container routes"]
    assert ("10.160.0.1", None, "eth0", "link", "10.160.0.2") in s["container routes"]
    assert s["container mtu"] == 1400 and len(s["nat"]) == 4


def test_containers_talk_through_the_node_and_del_after_netns_gone(
        ours: Path, node: Path, netns_factory: Callable[..., Path], tmp_path: Path) -> None:
    conf = ptp_conf(tmp_path)
    c1, c2 = netns_factory(), netns_factory()
    run_plugin(ours / "ptp", "ADD", conf, cid="sbx-1", ns=c1, node=node).ok()
    r2 = run_plugin(ours / "ptp", "ADD", conf, cid="sbx-2", ns=c2, node=node).ok()
    ip2 = r2["ips"][0]["address"].split("/")[0]
    assert tcp_hello(c2, c1, ip2) == f"hello from {ip2}"
    for ns, cid in ((c1, "sbx-1"), (c2, "sbx-2")):
        netns.delete(ns.name)
        assert run_plugin(ours / "ptp", "DEL", conf, cid=cid, ns=ns, node=node).rc == 0
    eventually(lambda: sorted(links(node)), lambda ls: ls == ["lo"],   # the netns go asynchronously
               what="only lo left in the node")
    assert nat_rules(node) == []
    assert [p.name for p in (tmp_path / "sbxptp").iterdir() if p.name[0].isdigit()] == []


def test_gc_and_status(ours: Path, node: Path, netns_factory: Callable[..., Path], tmp_path: Path) -> None:
    conf = dict(ptp_conf(tmp_path), cniVersion="1.1.0")
    for cid in ("sbx-keep", "sbx-stale"):
        run_plugin(ours / "ptp", "ADD", conf, cid=cid, ns=netns_factory(), node=node).ok()
    gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "sbx-keep", "ifname": "eth0"}]})
    assert run_plugin(ours / "ptp", "GC", gc, node=node).rc == 0
    files = {p.name: p.read_bytes() for p in (tmp_path / "sbxptp").iterdir() if p.name[0].isdigit()}
    assert list(files.values()) == [b"sbx-keep\r\neth0"]
    assert len(nat_rules(node)) == 4 and all('id: \\"sbx-keep\\"' in r for r in nat_rules(node)[1:])
    st = run_plugin(ours / "ptp", "STATUS", conf, node=node)
    assert (st.rc, st.stdout) == (0, "")
