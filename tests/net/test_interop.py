"""Interop through the runtime: our runtime drives our plugins (1.1.0: ADD, CHECK, DEL, GC,
STATUS), mixes them with upstream's (upstream bridge -> our host-local and back), and the
same configuration through ours and through upstream's gives equivalent results and equivalent
kernel state. (Plugin-level tests are in test_plugin_*.py.)"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.net import netns
from sandbox.net.cni import CniError, Runtime
from sandbox.net.cni.compare import differences, normalize_result, normalize_snapshot
from sandbox.net.plugins import plugin_dir
from waiting import eventually

pytestmark = pytest.mark.root
UPSTREAM = Path("/usr/lib/cni")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_dir(tmp_path_factory.mktemp("ours-bin"))


def runtime(tmp: Path, tag: str, conf: dict, cni_path: list[Path], node: Path) -> Runtime:
    d = tmp / tag
    (d / "conf").mkdir(parents=True)
    ext = "conflist" if "plugins" in conf else "conf"
    (d / "conf" / f"10-{conf['name']}.{ext}").write_text(json.dumps(conf))
    return Runtime(conf_dir=d / "conf", cni_path=[str(p) for p in cni_path],
                   cache_dir=d / "cache", node=node, plugin_state_dir=d / "state")


def bridge(br: str, subnet: str, version: str = "1.0.0", name: str = "sbxnet", **extra) -> dict:
    return {"cniVersion": version, "name": name, "type": "bridge", "bridge": br, "isGateway": True,
            "ipMasq": True, "hairpinMode": True, **extra,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}]}}


def ip_files(rt: Runtime, net: str = "sbxnet") -> dict[str, bytes]:
    d = rt.plugin_state_dir / "networks" / net
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name[0].isdigit()} if d.exists() else {}


def results(rt: Runtime) -> list[str]:
    return sorted(p.name for p in rt.cache.results.iterdir()) if rt.cache.results.exists() else []


def test_runtime_drives_our_plugins_at_1_1_0(ours: Path, node: Path, netns_factory, tmp_path,
                                              short_name) -> None:
    conf = {"cniVersion": "1.1.0", "name": "sbxnet", "plugins": [
        bridge(short_name("sbxbr"), "10.110.0.0/24") | {"cniVersion": None, "name": None}]}
    conf["plugins"][0] = {k: v for k, v in conf["plugins"][0].items() if v is not None}
    rt = runtime(tmp_path, "ours", conf, [ours], node)
    assert rt.status() == {"sbxnet": "ok"}                     # STATUS, 1.1.0
    c1, c2, c3 = netns_factory(), netns_factory(), netns_factory()
    r1 = rt.add("sbxnet", c1)
    assert r1["cniVersion"] == "1.1.0" and r1["ips"][0]["address"] == "10.110.0.2/24"
    rt.check("sbxnet", c1)
    r2, r3 = rt.add("sbxnet", c2), rt.add("sbxnet", c3)
    assert results(rt) == sorted(f"sbxnet-{c.name}-eth0" for c in (c1, c2, c3))
    # c2's netns disappears; c3's cache entry is lost too (a runtime that crashed): only the
    # plugins' GC, told which attachments are valid, can free c3's address and NAT rules
    netns.delete(c2.name)
    (rt.cache.results / f"sbxnet-{c3.name}-eth0").unlink()
    [rep] = rt.gc("sbxnet")
    assert rep.deleted == [(c2.name, "eth0")] and rep.kept == [(c1.name, "eth0")]
    assert rep.plugins_gc == ["bridge"] and rep.errors == []
    gc_call = [c for c in rt.calls if c.command == "GC"][0]
    sent = json.loads(gc_call.stdin)
    assert sent["cni.dev/valid-attachments"] == [{"containerID": c1.name, "ifname": "eth0"}]
    assert sent["cni.dev/attachments"] == sent["cni.dev/valid-attachments"]
    assert list(ip_files(rt)) == [r1["ips"][0]["address"].split("/")[0]]
    assert not any(c3.name in r or c2.name in r for r in netns.nat_rules(node))
    rt.delete("sbxnet", c1)
    assert results(rt) == [] and ip_files(rt) == {} and netns.nat_rules(node) == []


def test_upstream_bridge_delegates_to_our_host_local_and_back(ours: Path, node: Path, netns_factory,
                                                              tmp_path, short_name) -> None:
    """CNI_PATH decides which host-local the bridge execs: a directory holding only one
    plugin's bridge, then the other set."""
    only_up, only_ours = tmp_path / "up-bridge", tmp_path / "our-bridge"
    only_up.mkdir(); only_ours.mkdir()
    (only_up / "bridge").symlink_to(UPSTREAM / "bridge")
    (only_ours / "bridge").symlink_to(ours / "bridge")
    conf = bridge(short_name("sbxbr"), "10.111.0.0/24")
    mixed1 = runtime(tmp_path, "up-ours", conf, [only_up, ours], node)
    mixed2 = runtime(tmp_path, "ours-up", conf | {"bridge": short_name("sbxbr"),
                                                   "ipam": conf["ipam"] | {"subnet": "10.112.0.0/24"}},
                     [only_ours, UPSTREAM], node)
    c1, c2 = netns_factory(), netns_factory()
    r1, r2 = mixed1.add("sbxnet", c1), mixed2.add("sbxnet", c2)
    assert Path(mixed1.calls[-1].path).resolve() == (UPSTREAM / "bridge").resolve()
    assert r1["ips"][0]["address"] == "10.111.0.2/24" and r2["ips"][0]["address"] == "10.112.0.2/24"
    # host-local state written by ours (under upstream's bridge) and by upstream's (under ours)
    assert ip_files(mixed1) == {"10.111.0.2": f"{c1.name}\r\neth0".encode()}
    assert ip_files(mixed2) == {"10.112.0.2": f"{c2.name}\r\neth0".encode()}
    mixed1.check("sbxnet", c1); mixed2.check("sbxnet", c2)
    mixed1.delete("sbxnet", c1); mixed2.delete("sbxnet", c2)
    assert ip_files(mixed1) == {} == ip_files(mixed2)


CONFS = {
    "bridge": lambda br: bridge(br, "10.113.0.0/24"),
    "ptp": lambda br: {"cniVersion": "1.0.0", "name": "sbxnet", "type": "ptp", "ipMasq": True,
                       "ipam": {"type": "host-local", "subnet": "10.114.0.0/24",
                                "routes": [{"dst": "0.0.0.0/0"}]}},
    "loopback": lambda br: {"cniVersion": "1.0.0", "name": "sbxnet", "plugins": [{"type": "loopback"}]},
}


@pytest.mark.parametrize("kind", list(CONFS))
def test_same_config_same_result_and_kernel_state(kind: str, ours: Path, netns_factory, tmp_path,
                                                  short_name) -> None:
    br = short_name("sbxbr")
    conf = CONFS[kind](br)
    nodes = {"up": netns_factory(node=True), "ours": netns_factory(node=True)}
    ctrs = {"up": netns_factory(), "ours": netns_factory()}
    rts = {k: runtime(tmp_path, k, conf, [UPSTREAM if k == "up" else ours], nodes[k]) for k in nodes}
    res = {}
    ifname = "lo" if kind == "loopback" else "eth0"
    for k, rt in rts.items():   # same container ID on both sides: NAT chain names must match too
        res[k] = rt.add("sbxnet", ctrs[k], container_id="sbx-same", ifname=ifname)
    assert differences(normalize_result(res["up"]), normalize_result(res["ours"])) == []
    for which in (nodes, ctrs):
        a, b = (normalize_snapshot(netns.snapshot(which[k])) for k in ("up", "ours"))
        assert differences(a, b) == []
    assert netns.nat_rules(nodes["up"]) == netns.nat_rules(nodes["ours"])
    assert ip_files(rts["up"]) == ip_files(rts["ours"])
    assert (ip_files(rts["ours"]) == {}) == (kind == "loopback")
    for k, rt in rts.items():
        rt.check("sbxnet", ctrs[k], container_id="sbx-same", ifname=ifname)
        for a in rt.attachments():
            rt.delete("sbxnet", ctrs[k], container_id=a.container_id, ifname=a.ifname)
        assert results(rt) == [] and ip_files(rt) == {}
    assert netns.nat_rules(nodes["up"]) == netns.nat_rules(nodes["ours"]) == []


def test_del_twice_and_after_netns_removal_leave_nothing(ours: Path, node: Path, netns_factory,
                                                        tmp_path, short_name) -> None:
    br = short_name("sbxbr")
    rt = runtime(tmp_path, "ours", bridge(br, "10.116.0.0/24"), [ours], node)
    c1, c2 = netns_factory(), netns_factory()
    r1, r2 = rt.add("sbxnet", c1), rt.add("sbxnet", c2)
    rt.delete("sbxnet", c1)
    rt.delete("sbxnet", c1)
    netns.delete(c2.name)
    rt.delete("sbxnet", c2)
    rt.delete("sbxnet", c2)
    assert results(rt) == [] and ip_files(rt) == {}
    eventually(lambda: {l["name"] for l in netns.snapshot(node)["links"]},   # c2's veth goes
               lambda ls: ls == {"lo", br}, what="only lo and the bridge in the node")  # async
    assert netns.nat_rules(node) == []              # no leak, unlike upstream (plugins#810)


def test_parallel_adds_and_exhaustion_with_ours(ours: Path, node: Path, netns_factory, tmp_path,
                                                short_name) -> None:
    rt = runtime(tmp_path, "ours", bridge(short_name("sbxbr"), "10.117.0.0/27"), [ours], node)
    cs = [netns_factory() for _ in range(16)]
    with ThreadPoolExecutor(4) as pool:
        res = list(pool.map(lambda c: rt.add("sbxnet", c), cs))
    ips = {r["ips"][0]["address"] for r in res}
    assert len(ips) == 16 and sorted(ip_files(rt)) == sorted(i.split("/")[0] for i in ips)
    small_conf = bridge(short_name("sbxbr"), "10.118.0.0/30", name="sbxsmall")
    small_conf["ipam"].pop("routes")                  # the container's default route is eth0's
    small = runtime(tmp_path, "small", small_conf, [ours], node)
    small.add("sbxsmall", cs[0], ifname="eth1")      # a /30 has one address to give (.2)
    with pytest.raises(CniError) as e:
        small.add("sbxsmall", cs[1], ifname="eth1")
    assert "no IP addresses available" in e.value.msg and "sandbox net gc" in str(e.value)
    assert results(small) == [f"sbxsmall-{cs[0].name}-eth1"]
    assert "eth1" not in {l["name"] for l in netns.snapshot(cs[1])["links"]}  # undone by DEL
    small.delete("sbxsmall", cs[0], ifname="eth1")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: rt.delete("sbxnet", c), cs))
    assert ip_files(rt) == {} and results(rt) == [] and netns.nat_rules(node) == []
