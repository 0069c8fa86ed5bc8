"""Our ``bridge`` plugin, exec'd the raw way inside a node netns, checked against the kernel
(read back with ``ip -j`` / ``iptables -S`` in the namespaces) and against upstream's bridge."""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
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
    sysctl_in,
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


def bridge_conf(br: str, data_dir: Path, subnet: str = "10.150.0.0/24", version: str = "1.0.0",
                name: str = "sbxnet", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "type": "bridge", "bridge": br,
            "isGateway": True, "ipMasq": True, "hairpinMode": True,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": str(data_dir)}, **extra}


def chain(net: str, cid: str) -> str:
    return "CNI-" + hashlib.sha512((net + cid).encode()).hexdigest()[:24]


def ip_files(d: Path, net: str = "sbxnet") -> list[str]:
    p = d / net
    return sorted(x.name for x in p.iterdir() if x.name[0].isdigit()) if p.exists() else []


def test_add_check_del(ours: Path, node: Path, netns_factory: Callable[..., Path],
                       short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    c1 = netns_factory()
    br = short_name("sbxbr")
    conf = bridge_conf(br, cni_dirs["ipam"])
    res = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-c1", ns=c1, node=node).ok()

    # the result: [bridge, host veth, container veth], IPs point at 2
    names = [i["name"] for i in res["interfaces"]]
    assert names[0] == br and names[1].startswith("veth") and names[2] == "eth0"
    assert res["interfaces"][2]["sandbox"] == str(c1)
    assert res["ips"] == [{"address": "10.150.0.2/24", "gateway": "10.150.0.1", "interface": 2}]
    assert res["routes"] == [{"dst": "0.0.0.0/0"}]

    # container side, read independently
    assert "10.150.0.2/24" in addrs(c1, "eth0")
    cl = links(c1)["eth0"]
    assert cl["address"] == res["interfaces"][2]["mac"] and "UP" in cl["flags"]
    routes = ip_json(c1, "route", "show")
    assert {"dst": "default", "gateway": "10.150.0.1", "dev": "eth0"}.items() <= routes[0].items()
    # node side: bridge with the gateway, host veth enslaved with hairpin on, forwarding, NAT
    nl = links(node)
    assert nl[br]["linkinfo"]["info_kind"] == "bridge"
    assert "10.150.0.1/24" in addrs(node, br)
    hv = nl[names[1]]
    assert hv["master"] == br and hv["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert hv["address"] == res["interfaces"][1]["mac"]
    assert nl[br]["address"] == res["interfaces"][0]["mac"]
    assert sysctl_in(node, "net.ipv4.ip_forward") == "1"
    ch = chain("sbxnet", "sbx-c1")
    note = '--comment "name: \\"sbxnet\\" id: \\"sbx-c1\\""'
    assert nat_rules(node) == [
        f"-N {ch}",
        f"-A POSTROUTING -s 10.150.0.2/32 -m comment {note} -j {ch}",
        f"-A {ch} -d 10.150.0.0/24 -m comment {note} -j ACCEPT",
        f"-A {ch} ! -d 224.0.0.0/4 -m comment {note} -j MASQUERADE"]
    assert ip_files(cni_dirs["ipam"]) == ["10.150.0.2"]

    # CHECK passes, then detects a removed address
    chk = run_plugin(ours / "bridge", "CHECK", with_prev(conf, res), cid="sbx-c1", ns=c1, node=node)
    assert (chk.rc, chk.stdout) == (0, "")
    missing = run_plugin(ours / "bridge", "CHECK", conf, cid="sbx-c1", ns=c1, node=node).json
    assert missing["msg"] == "Required prevResult missing"
    sh_in(c1, "ip", "addr", "del", "10.150.0.2/24", "dev", "eth0")
    bad = run_plugin(ours / "bridge", "CHECK", with_prev(conf, res), cid="sbx-c1", ns=c1, node=node)
    assert bad.rc == 1 and bad.json["msg"] == "Failed to match addr 10.150.0.2/24 on interface eth0"

    # DEL twice: everything of this attachment is gone, the bridge stays (as upstream)
    for _ in range(2):
        d = run_plugin(ours / "bridge", "DEL", with_prev(conf, res), cid="sbx-c1", ns=c1, node=node)
        assert (d.rc, d.stdout) == (0, "")
        assert "eth0" not in links(c1)
        assert sorted(links(node)) == sorted(["lo", br])
        assert nat_rules(node) == []
        assert ip_files(cni_dirs["ipam"]) == []


def test_del_after_netns_is_gone_frees_everything(ours: Path, node: Path, netns_factory: Callable[..., Path],
                                                  short_name: Callable[[str], str],
                                                  cni_dirs: dict[str, Path]) -> None:
    """plugins#810: upstream's DEL leaks the NAT chain once the netns is gone; ours does not,
    and ours also removes the chain upstream leaked (same chain naming)."""
    br = short_name("sbxbr")
    conf = bridge_conf(br, cni_dirs["ipam"])
    results = {}
    for cid, impl in (("sbx-ours", ours), ("sbx-theirs", UPSTREAM)):
        ns = netns_factory()
        results[cid] = (ns, run_plugin(impl / "bridge", "ADD", conf, cid=cid, ns=ns, node=node).ok())
    assert len(nat_rules(node)) == 8
    for cid, impl in (("sbx-ours", ours), ("sbx-theirs", UPSTREAM)):
        ns, res = results[cid]
        netns.delete(ns.name)
        d = run_plugin(impl / "bridge", "DEL", with_prev(conf, res), cid=cid, ns=ns, node=node)
        assert d.rc == 0, d.stdout
    assert ip_files(cni_dirs["ipam"]) == []
    # both host veths die with their netns (freed asynchronously by the kernel)
    eventually(lambda: sorted(links(node)), lambda ls: ls == sorted(["lo", br]),
               what="only lo and the bridge left in the node")
    left = nat_rules(node)
    assert left and all("sbx-theirs" in r or r.startswith("-N") for r in left)  # upstream's leak
    assert f"-N {chain('sbxnet', 'sbx-theirs')}" in left
    # our DEL cleans it up: it needs neither the netns nor the container's IP
    d = run_plugin(ours / "bridge", "DEL", conf, cid="sbx-theirs", ns=results["sbx-theirs"][0], node=node)
    assert d.rc == 0 and nat_rules(node) == []


def test_del_with_empty_netns(ours: Path, node: Path, netns_factory: Callable[..., Path],
                              short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    ns = netns_factory()
    conf = bridge_conf(short_name("sbxbr"), cni_dirs["ipam"])
    run_plugin(ours / "bridge", "ADD", conf, cid="sbx-e", ns=ns, node=node).ok()
    assert run_plugin(ours / "bridge", "DEL", conf, cid="sbx-e", ns="", node=node).rc == 0
    assert ip_files(cni_dirs["ipam"]) == [] and nat_rules(node) == []


def test_upstream_bridge_delegates_to_our_host_local(ours: Path, node: Path, netns_factory: Callable[..., Path],
                                                     short_name: Callable[[str], str],
                                                     cni_dirs: dict[str, Path]) -> None:
    """CNI_PATH holds only our directory, so the Go bridge can only find OUR host-local."""
    ns = netns_factory()
    conf = bridge_conf(short_name("sbxbr"), cni_dirs["ipam"])
    res = run_plugin(UPSTREAM / "bridge", "ADD", conf, cid="sbx-u", ns=ns, node=node, cni_path=ours).ok()
    assert res["ips"] == [{"interface": 2, "address": "10.150.0.2/24", "gateway": "10.150.0.1"}]
    assert (cni_dirs["ipam"] / "sbxnet" / "10.150.0.2").read_bytes() == b"sbx-u\r\neth0"
    assert "10.150.0.2/24" in addrs(ns, "eth0")
    chk = run_plugin(UPSTREAM / "bridge", "CHECK", with_prev(conf, res), cid="sbx-u", ns=ns, node=node,
                     cni_path=ours)
    assert chk.rc == 0, chk.stdout
    assert run_plugin(UPSTREAM / "bridge", "DEL", with_prev(conf, res), cid="sbx-u", ns=ns, node=node,
                      cni_path=ours).rc == 0
    assert ip_files(cni_dirs["ipam"]) == []
    # and the other way round: our bridge with upstream's host-local
    res2 = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-v", ns=ns, node=node, cni_path=UPSTREAM).ok()
    assert res2["ips"][0]["address"] == "10.150.0.3/24"   # round-robin state shared on disk
    assert run_plugin(ours / "bridge", "DEL", with_prev(conf, res2), cid="sbx-v", ns=ns, node=node,
                      cni_path=UPSTREAM).rc == 0
    assert ip_files(cni_dirs["ipam"]) == [] and nat_rules(node) == []


@pytest.mark.parametrize("variant", [{}, {"hairpinMode": False, "promiscMode": True, "ipMasq": False,
                                          "isDefaultGateway": False, "cniVersion": "0.4.0"}],
                         ids=["hairpin-masq-defaultgw", "promisc-0.4.0"])
def test_same_config_same_result_and_kernel_state(ours: Path, netns_factory: Callable[..., Path],
                                                  short_name: Callable[[str], str], tmp_path: Path,
                                                  variant: dict[str, Any]) -> None:
    """One config through ours and upstream's, each in its own node: equal result JSON (modulo
    MACs and veth names), equal addresses, routes, bridge addresses and NAT rules."""
    br = short_name("sbxbr")
    seen = {}
    for label, impl in (("ours", ours), ("theirs", UPSTREAM)):
        node, ns = netns_factory(node=True), netns_factory()
        conf = bridge_conf(br, tmp_path / label, isDefaultGateway=True, mtu=1400,
                           dns={"nameservers": ["10.150.0.1"]})
        conf.update(variant)
        conf["ipam"]["routes"] = [{"dst": "10.200.0.0/16"}]
        res = run_plugin(impl / "bridge", "ADD", conf, cid="sbx-same", ns=ns, node=node).ok()
        state = {
            "result": strip_volatile(res),
            "container addrs": [a for a in addrs(ns, "eth0") if not a.startswith("fe80")],
            "container routes": [(r["dst"], r.get("gateway"), r.get("scope")) for r in ip_json(ns, "route", "show")],
            "container mtu": links(ns)["eth0"]["mtu"],
            "bridge addrs": [a for a in addrs(node, br) if not a.startswith("fe80")],
            "bridge mtu": links(node)[br]["mtu"],
            "bridge flags": sorted(links(node)[br]["flags"]),
            "port": {k: v for k, v in links(node)[res["interfaces"][1]["name"]]["linkinfo"]["info_slave_data"].items()
                     if k in ("hairpin", "state", "learning", "flood", "guard", "isolated")},
            "port mtu": links(node)[res["interfaces"][1]["name"]]["mtu"],
            "forwarding": sysctl_in(node, "net.ipv4.ip_forward"),
            "nat": nat_rules(node),
        }
        seen[label] = state
        run_plugin(impl / "bridge", "DEL", with_prev(conf, res), cid="sbx-same", ns=ns, node=node).ok()
    assert seen["ours"] == seen["theirs"]
    assert seen["ours"]["container mtu"] == 1400
    if not variant:
        assert ("default", "10.150.0.1", None) in seen["ours"]["container routes"]
    else:
        assert "PROMISC" in seen["ours"]["bridge flags"] and seen["ours"]["nat"] == []


def test_two_containers_reach_each_other(ours: Path, node: Path, netns_factory: Callable[..., Path],
                                         short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    conf = bridge_conf(short_name("sbxbr"), cni_dirs["ipam"])
    c1, c2 = netns_factory(), netns_factory()
    run_plugin(ours / "bridge", "ADD", conf, cid="sbx-a", ns=c1, node=node).ok()
    r2 = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-b", ns=c2, node=node).ok()
    ip2 = r2["ips"][0]["address"].split("/")[0]
    assert tcp_hello(c2, c1, ip2) == f"hello from {ip2}"


def test_sixteen_parallel_adds(ours: Path, node: Path, netns_factory: Callable[..., Path],
                               short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    br = short_name("sbxbr")
    conf = bridge_conf(br, cni_dirs["ipam"])
    nss = [netns_factory() for _ in range(16)]
    # 16 plugin processes at once (and each its host-local) share the machine's cores and
    # host-local's lock: the last ones may wait long on a slow machine (an emulated aarch64 guest
    # passed 60 s), so the per-exec bound that only catches a hang is wider here
    slow = 300
    with ThreadPoolExecutor(16) as pool:
        calls = list(pool.map(lambda i: run_plugin(ours / "bridge", "ADD", conf, cid=f"sbx-{i}", ns=nss[i],
                                                   node=node, timeout=slow), range(16)))
    ips = [c.ok()["ips"][0]["address"] for c in calls]
    assert len(set(ips)) == 16
    ports = [l for l in links(node).values() if l.get("master") == br]
    assert len(ports) == 16
    assert len(ip_files(cni_dirs["ipam"])) == 16
    with ThreadPoolExecutor(16) as pool:
        dels = list(pool.map(lambda i: run_plugin(ours / "bridge", "DEL", conf, cid=f"sbx-{i}", ns=nss[i],
                                                  node=node, timeout=slow), range(16)))
    assert all(d.rc == 0 for d in dels)
    assert ip_files(cni_dirs["ipam"]) == [] and nat_rules(node) == []


def test_gc_removes_stale_ips_and_nat(ours: Path, node: Path, netns_factory: Callable[..., Path],
                                      short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    conf = bridge_conf(short_name("sbxbr"), cni_dirs["ipam"], version="1.1.0")
    for cid in ("sbx-live", "sbx-dead"):
        run_plugin(ours / "bridge", "ADD", conf, cid=cid, ns=netns_factory(), node=node).ok()
    gc = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "sbx-live", "ifname": "eth0"}]})
    r = run_plugin(ours / "bridge", "GC", gc, node=node)
    assert (r.rc, r.stdout) == (0, "")
    assert ip_files(cni_dirs["ipam"]) == ["10.150.0.2"]
    rules = nat_rules(node)
    assert len(rules) == 4 and all(chain("sbxnet", "sbx-live") in r for r in rules)
    st = run_plugin(ours / "bridge", "STATUS", conf, node=node)
    assert (st.rc, st.stdout) == (0, "")


def test_options_and_errors(ours: Path, node: Path, netns_factory: Callable[..., Path],
                            short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    br = short_name("sbxbr")
    ns = netns_factory()
    both = bridge_conf(br, cni_dirs["ipam"], promiscMode=True)
    e = run_plugin(ours / "bridge", "ADD", both, cid="sbx-o", ns=ns, node=node).json
    assert e["msg"] == "cannot set hairpin mode and promiscuous mode at the same time"

    conf = bridge_conf(br, cni_dirs["ipam"], hairpinMode=False, promiscMode=True, ipMasq=False,
                       version="0.3.1")
    res = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-o", ns=ns, node=node).ok()
    assert res["ips"][0]["version"] == "4"                    # 0.3.1 result shape
    assert "PROMISC" in links(node)[br]["flags"]
    again = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-o", ns=ns, node=node)
    assert again.rc == 1 and again.json["msg"] == "container veth name provided (eth0) already exists"
    assert ip_files(cni_dirs["ipam"]) == ["10.150.0.2"]       # the failed ADD released its IP
    assert run_plugin(ours / "bridge", "CHECK", with_prev(conf, res), cid="sbx-o", ns=ns,
                      node=node).json["code"] == 1            # no CHECK before 0.4.0

    # another subnet on the same bridge: refused, unless forceAddress
    other = bridge_conf(br, cni_dirs["ipam"], subnet="10.151.0.0/24", hairpinMode=False, promiscMode=True,
                        name="sbxnet2")
    ns2 = netns_factory()
    err = run_plugin(ours / "bridge", "ADD", other, cid="sbx-p", ns=ns2, node=node).json
    assert "already has an IP address different from 10.151.0.1/24" in err["msg"]
    assert "eth0" not in links(ns2) and ip_files(cni_dirs["ipam"], "sbxnet2") == []
    forced = dict(other, forceAddress=True)
    run_plugin(ours / "bridge", "ADD", forced, cid="sbx-p", ns=ns2, node=node).ok()
    assert [a for a in addrs(node, br) if not a.startswith("fe80")] == ["10.151.0.1/24"]

    gone = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-q", ns="/run/netns/sbx-missing", node=node)
    assert gone.rc == 1 and "does not exist" in gone.json["msg"]
    v = run_plugin(ours / "bridge", "ADD", dict(conf, vlan=5), cid="sbx-q", ns=ns, node=node).json
    assert v["code"] == 2 and "vlan" in v["msg"]
    assert json.dumps(v)  # a complete error document


def test_layer2_only(ours: Path, node: Path, netns_factory: Callable[..., Path],
                     short_name: Callable[[str], str]) -> None:
    ns = netns_factory()
    conf = {"cniVersion": "1.0.0", "name": "sbxl2", "type": "bridge", "bridge": short_name("sbxbr"), "ipam": {}}
    res = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-l2", ns=ns, node=node).ok()
    assert "ips" not in res and "UP" in links(ns)["eth0"]["flags"]
    assert run_plugin(ours / "bridge", "DEL", conf, cid="sbx-l2", ns=ns, node=node).rc == 0
    assert "eth0" not in links(ns)


def test_dual_stack_same_as_upstream(ours: Path, netns_factory: Callable[..., Path],
                                     short_name: Callable[[str], str], tmp_path: Path) -> None:
    """Two range sets (IPv4 + IPv6), isDefaultGateway, ipMasq: same result, addresses, routes,
    bridge addresses, iptables and ip6tables NAT rules and forwarding as upstream; DEL clears both."""
    br = short_name("sbxbr")
    seen = {}
    for label, impl in (("ours", ours), ("theirs", UPSTREAM)):
        node, ns = netns_factory(node=True), netns_factory()
        conf = {"cniVersion": "1.0.0", "name": "sbxds", "type": "bridge", "bridge": br,
                "isDefaultGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "dataDir": str(tmp_path / label),
                         "ranges": [[{"subnet": "10.180.0.0/24"}], [{"subnet": "fd00:180::/64"}]]}}
        res = run_plugin(impl / "bridge", "ADD", conf, cid="sbx-ds", ns=ns, node=node).ok()

        def nat6() -> list[str]:
            return [r for r in sh_in(node, "ip6tables", "-w", "-t", "nat", "-S").splitlines()
                    if not r.startswith("-P")]
        seen[label] = {
            "result": strip_volatile(res),
            "addrs": [a for a in addrs(ns, "eth0") if not a.startswith("fe80")],
            "routes4": sorted((r["dst"], r.get("gateway")) for r in ip_json(ns, "route", "show")),
            "routes6": sorted((r["dst"], r.get("gateway")) for r in ip_json(ns, "-6", "route", "show")
                              if not r["dst"].startswith("fe80")),
            "bridge": [a for a in addrs(node, br) if not a.startswith("fe80")],
            "nat": nat_rules(node), "nat6": nat6(),
            "forwarding6": sysctl_in(node, "net.ipv6.conf.all.forwarding"),
        }
        assert run_plugin(impl / "bridge", "DEL", with_prev(conf, res), cid="sbx-ds", ns=ns, node=node).rc == 0
        assert nat_rules(node) == [] and nat6() == []
    assert seen["ours"] == seen["theirs"]
    assert seen["ours"]["routes6"] == [("default", "fd00:180::1"), ("fd00:180::/64", None)]
    assert len(seen["ours"]["nat6"]) == 4


def test_exhaustion_through_bridge_leaves_nothing(ours: Path, node: Path, netns_factory: Callable[..., Path],
                                                  short_name: Callable[[str], str],
                                                  cni_dirs: dict[str, Path]) -> None:
    """A /30 has one address for containers: the second ADD gets host-local's error through the
    bridge (code and message unchanged) and leaves no veth, file or NAT rule behind."""
    br = short_name("sbxbr")
    conf = bridge_conf(br, cni_dirs["ipam"], subnet="10.152.0.0/30")
    run_plugin(ours / "bridge", "ADD", conf, cid="sbx-x1", ns=netns_factory(), node=node).ok()
    ns2 = netns_factory()
    before = (sorted(links(node)), nat_rules(node), ip_files(cni_dirs["ipam"]))
    err = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-x2", ns=ns2, node=node)
    assert err.rc == 1
    assert err.json["code"] == 999
    assert err.json["msg"] == ("failed to allocate for range 0: no IP addresses available in range set: "
                               "10.152.0.1-10.152.0.2")
    assert "eth0" not in links(ns2)
    assert (sorted(links(node)), nat_rules(node), ip_files(cni_dirs["ipam"])) == before


def test_mac_from_cni_args(ours: Path, node: Path, netns_factory: Callable[..., Path],
                           short_name: Callable[[str], str], cni_dirs: dict[str, Path]) -> None:
    ns = netns_factory()
    conf = bridge_conf(short_name("sbxbr"), cni_dirs["ipam"])
    mac = "02:00:00:5b:c0:01"
    res = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-m", ns=ns, node=node,
                     args=f"IgnoreUnknown=1;MAC={mac}").ok()
    assert res["interfaces"][2]["mac"] == mac == links(ns)["eth0"]["address"]
    # without IgnoreUnknown, host-local (which knows only IP) refuses MAC, as upstream's does
    e = run_plugin(ours / "bridge", "ADD", conf, cid="sbx-n", ns=netns_factory(), node=node, args=f"MAC={mac}")
    assert e.rc == 1 and e.json["msg"] == f'ARGS: unknown args ["MAC={mac}"]'
