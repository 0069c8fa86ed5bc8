"""Notebook 06b's demos (sandbox.course.cni_tour) against the kernel's own state: the plugins'
topologies, two nodes routed to each other, three IPAM plugins (with Debian's dnsmasq and the CNI
dhcp daemon), one container on two networks. Everything runs in namespaces the tour makes under a
private state dir and is removed at the end, also when an assertion fails.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from sandbox.course import notebook
from sandbox.course.cni_tour import CniTour
from sandbox.net import netns, topology
from sandbox.viz import course

pytestmark = [pytest.mark.root]


@pytest.fixture
def tour(sandbox_dir: Path) -> Iterator[CniTour]:
    nb = notebook.start("98")
    t = CniTour(nb)
    try:
        yield t
    finally:
        nb.close()
    for d in t.daemons.values():
        assert not d.alive(), f"{d.argv[0]} (pid {d.pid}) outlived the notebook"


def _links(ns: str) -> dict[str, dict]:
    return {l["name"]: l for l in netns.snapshot(ns)["links"]}


def _ipvlan_supported() -> bool:
    """Can this kernel make an ipvlan link at all? (asked directly, not through the plugin)"""
    s = netns.Session(prefix="sbx-probe")
    try:
        ns = s.create()

        def work() -> bool:
            with netns.iproute(ns) as ipr:
                ipr.link("add", ifname="sbxm", kind="veth", peer={"ifname": "sbxp"})
                master = ipr.link_lookup(ifname="sbxm")[0]
                try:
                    ipr.link("add", ifname="sbxi", kind="ipvlan", link=master, ipvlan_mode=0)
                    return True
                except Exception as e:  # noqa: BLE001 - netlink's EOPNOTSUPP, whatever its class
                    if "not supported" in str(e).lower() or getattr(e, "code", None) == 95:
                        return False
                    raise
        return netns.in_thread(work)
    finally:
        s.close()


def test_each_plugin_builds_its_own_topology(tour: CniTour) -> None:
    tour.topologies()
    rows = {r[0]: r for r in tour.topology_rows()}
    # bridge: one bridge with the gateway, a veth per container on it, one L2 hop
    br = tour.scenarios["bridge"]
    node = _links(br.node)
    assert node["sbxtour0"]["kind"] == "bridge" and "10.61.0.1/24" in node["sbxtour0"]["addrs"]
    assert sorted(l["master"] for l in node.values() if l["kind"] == "veth") == ["sbxtour0"] * 2
    assert "c1 → c2 (10.61.0.3): reply, ttl=64" in rows["bridge"][5]
    # ptp: no bridge; each host veth holds the gateway as /32 and a /32 route leads to each pod
    ptp = tour.scenarios["ptp"]
    node = _links(ptp.node)
    assert not any(l["kind"] == "bridge" for l in node.values())
    assert [l["addrs"][0] for l in node.values() if l["kind"] == "veth"] == ["10.62.0.1/32"] * 2
    assert {r.split()[0] for r in topology.route_lines(ptp.node)} == {"10.62.0.2/32", "10.62.0.3/32"}
    assert netns.ping(ptp.containers[0], "10.62.0.3").stdout.count("ttl=63") == 1
    # macvlan: a child of the uplink with its own MAC; nothing new in the node; the node unreachable
    mv = tour.scenarios["macvlan"]
    node = _links(mv.node)
    eth0 = _links(mv.containers[0])["eth0"]
    assert eth0["kind"] == "macvlan" and eth0["peer_index"] == node["sbxup0"]["index"]
    assert eth0["mac"] != node["sbxup0"]["mac"]
    assert set(node) == {"lo", "sbxup0"}
    assert netns.ping(mv.containers[0], "10.63.0.1").returncode == 0            # the LAN's router
    assert netns.ping(mv.containers[0], "10.63.0.254", timeout=1).returncode != 0  # its own node
    assert "c1 → its node (10.63.0.254): no reply" in rows["macvlan"][5]
    pic = course.tour_picture(tour, "macvlan").source        # each child hangs off the uplink
    assert pic.count("macvlan child") == 2 and f"LAN {mv.lan}" in pic
    assert "veth pair" in pic and "port" not in pic          # the node has no bridge here
    # ipvlan: children share the master's MAC — or the kernel has no ipvlan and the row says so
    iv = tour.scenarios["ipvlan"]
    if _ipvlan_supported():
        eth0 = _links(iv.containers[0])["eth0"]
        assert not iv.error and eth0["kind"] == "ipvlan"
        assert eth0["mac"] == _links(iv.node)["sbxup0"]["mac"]
    else:
        assert "operation not supported" in iv.error and "ADD failed" in rows["ipvlan"][5]


def test_two_nodes_reach_each_others_pods_by_their_own_ip_once_routed(tour: CniTour) -> None:
    tour.two_nodes()
    b = topology.first_address(tour.pods["B"])
    assert b == "10.65.2.2"
    assert tour.cross_ping() == "pod A → pod B (10.65.2.2): no reply"
    assert not any(l.startswith("10.65.2.0/24") for l in topology.route_lines(tour.nodes["A"]))
    tour.route_nodes()
    assert "10.65.2.0/24 via 10.65.255.2 dev sbxwire0" in topology.route_lines(tour.nodes["A"])
    assert tour.cross_ping() == "pod A → pod B (10.65.2.2): reply, ttl=62"
    pic = course.tour_nodes_picture(tour).source
    assert pic.count("label=wire") == 1 and pic.count("label=\"veth pair\"") == 2
    assert "10.65.2.0/24 via 10.65.255.2" in pic
    # the server in pod B sees pod A's own address, not node A's (no NAT between pods)
    assert topology.source_seen(tour.pods["B"], tour.pods["A"], b, port=7001) == "10.65.1.2"
    assert tour.source_seen()[-1].endswith("10.65.1.2")


def test_three_ipam_plugins_and_the_state_each_keeps(tour: CniTour) -> None:
    rows = {r["ipam"]: r for r in tour.ipam()}
    assert rows["host-local"]["address"] == "10.66.0.100/24"
    dhcp_ip = rows["dhcp"]["address"].split("/")[0]
    assert 10 <= int(dhcp_ip.rsplit(".", 1)[1]) <= 50            # dnsmasq's range
    assert rows["sqlite-ipam"]["address"] == "10.66.0.2/24"
    # each address really is on the container's eth0
    for r in rows.values():
        assert topology.first_address(r["container"]) == r["address"].split("/")[0]
    # the DHCP server's lease names the container's MAC; the SQL row names its netns
    mac = _links(rows["dhcp"]["container"])["eth0"]["mac"]
    d = tour.dir / "ipam"
    assert f"{mac} {dhcp_ip}" in (d / "dnsmasq.leases").read_text()
    con = sqlite3.connect(d / "ipam.sqlite")
    try:
        assert con.execute("SELECT ip, container FROM leases").fetchall() == [
            ("10.66.0.2", rows["sqlite-ipam"]["container"])]
    finally:
        con.close()
    hl = tour.dir / "plugin-state" / "networks" / "sbx-ipam-host" / "10.66.0.100"
    assert hl.read_bytes() == f"{rows['host-local']['container']}\r\neth0".encode()
    assert "DHCPACK" in tour.dhcp_log()
    tour.ipam_release()
    assert not hl.exists()
    assert dhcp_ip not in (d / "dnsmasq.leases").read_text()       # released, not expired
    con = sqlite3.connect(d / "ipam.sqlite")
    try:
        assert con.execute("SELECT count(*) FROM leases").fetchone() == (0,)
    finally:
        con.close()


def test_one_container_two_networks_and_del_of_one(tour: CniTour) -> None:
    tour.two_networks()
    c = tour.multi["container"]
    links = _links(c)
    assert links["eth0"]["addrs"][0].startswith("10.67.1.") and links["eth1"]["addrs"][0].startswith("10.67.2.")
    routes = topology.route_lines(c)
    assert "0.0.0.0/0 via 10.67.1.1 dev eth0" in routes and "10.68.0.0/16 via 10.67.2.1 dev eth1" in routes
    tour.leave_back()
    links = _links(c)
    assert "eth1" not in links and links["eth0"]["addrs"][0].startswith("10.67.1.")
    routes = topology.route_lines(c)
    assert "0.0.0.0/0 via 10.67.1.1 dev eth0" in routes and not any("eth1" in r for r in routes)
    # one cache for the runtime, one entry per attachment: only (c, eth0) on sbx-front is left
    assert [(a.network, a.ifname) for a in tour.runtimes["sbx-front"].attachments(container_id=c)] == [
        ("sbx-front", "eth0")]
    peer = topology.first_address(tour.multi["peers"]["sbx-front"])
    assert netns.ping(c, peer).returncode == 0


def test_a_daemon_goes_when_the_thread_that_started_it_ends(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: what makes a dead kernel take its DHCP server along."""
    s = netns.Session(prefix="sbx-dmn")
    try:
        ns = s.create()
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "d", topology.Daemon(["sleep", "60"], ns, tmp_path / "log")))
        t.start()
        t.join()
        d = box["d"]
        deadline = time.monotonic() + 5
        while d.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        alive = d.alive()
        d.stop()
        assert not alive
    finally:
        s.close()
    with pytest.raises(topology.TopologyError, match="is not installed"):
        topology.Daemon(["/nonexistent/sbx-prog"], "/proc/self/ns/net", tmp_path / "x")
