"""The course map, the welcome notebook's live widget (kernel side), and notebook 09's CNM/CNI
mapping read from real kernel state."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sandbox.course import slides
from sandbox.course.cnm_demo import CniCnmDemo
from sandbox.net import netns
from sandbox.viz import course

ROOT = Path(__file__).resolve().parents[2]


def test_course_map_has_every_notebook_and_lab() -> None:
    src = course.course_map(ROOT).source
    for p in (ROOT / "notebooks").glob("[0-9][0-9]*-*.ipynb"):
        assert f"nb{p.name.split('-', 1)[0]}" in src
    for n in range(1, 7):
        assert f"lab{n}" in src
    assert "slides 52" in src or "51–59" in src


def test_slide_explorer_updates_when_a_slide_is_picked() -> None:
    box = course.slide_explorer(slides.load_coverage(slides.coverage_path(ROOT)))
    pick, out = box.children
    pick.value = 48
    assert "05-namespaces.ipynb" in out.value and "labs/04-veth/lab.ipynb" in out.value
    pick.value = 55
    assert "09-cni-vs-cnm.ipynb" in out.value and "05-namespaces" not in out.value


@pytest.mark.root
def test_cnm_and_cni_side_by_side_are_read_off_live_state(sandbox_dir: Path) -> None:
    demo = CniCnmDemo(subnet="10.87.0.0/24", pool="10.86.0.0/24")
    try:
        demo.start_plugin()
        demo.create_networks()
        both = demo.connect_both()                   # one container: eth0 by CNI, eth1 by CNM
        up, b2 = demo.attach("upstream"), demo.connect()
        rows = demo.rows()
        assert [(r["cnm"], r["model"]) for r in rows] == [
            ("Network", "CNI"), ("Network", "CNM"), ("Endpoint", "CNI"), ("Sandbox", "CNI"),
            ("Endpoint", "CNI"), ("Sandbox", "CNI"), ("Endpoint", "CNM"), ("Sandbox", "CNM"),
            ("Endpoint", "CNM"), ("Sandbox", "CNM")]
        assert "10.87.0.1/24" in rows[0]["kernel"] and "10.86.0.1/24" in rows[1]["kernel"]
        node = {l["name"]: l for l in netns.snapshot(demo.node)["links"]}
        for name, ifname, row in ((both, "eth0", rows[2]), (up, "eth0", rows[4]),
                                  (both, "eth1", rows[6]), (b2, "eth0", rows[8])):
            link = next(l for l in netns.snapshot(name)["links"] if l["name"] == ifname)
            ip = next(x for x in link["addrs"] if ":" not in x)
            assert f"{ifname} in {name} ({ip})" in row["kernel"], row
            end = row["kernel"].split()[1]           # "veth <host end> (on <bridge>) ⇄ …"
            assert node[end]["index"] == link["peer_index"] and node[end]["master"] in row["kernel"]
        assert demo.endpoints[both].ifname == "eth1"  # libnetwork's prefix + the next free index
        assert ipaddress.ip_interface(demo.endpoints[b2].address).ip in ipaddress.ip_network("10.86.0.0/24")
        # slide 56, from the logs: the driver changed only the node, the controller the sandbox
        who = demo.who_configured_rows()
        node_ino = netns.ns_inode(netns.path_of(demo.node))
        assert f"net:[{node_ino}] = the node only" in who[-2][2]
        assert f"net:[{netns.ns_inode(netns.path_of(both))}]" in who[-1][2]
        src = course.cnm_picture(demo).source
        assert src.count("CNM: Sandbox") == 3 and src.count("CNM: Network") == 2
        assert src.count("configured") == 4 and "remote driver, pid" in src and "CNI + CNM" in src
        phases = [r[0] for r in demo.sequence_rows()]
        assert phases == ["set up the plugin", "create the network", "connect a container"]
        connect = demo.sequence_rows()[2][2].splitlines()
        assert [l.split()[1] for l in connect if l.startswith("POST")][:4] == [
            "/IpamDriver.RequestAddress", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join",
            "/NetworkDriver.ProgramExternalConnectivity"]
        assert connect[3].startswith("· controller: moved sbx")   # between Join and Program…
        assert [r[2] for r in demo.pings()] == ["reply", "reply", "reply"]
        demo.disconnect_one()
        assert {l["name"] for l in netns.snapshot(both)["links"]} == {"lo"}
        demo.remove_networks()
        assert [r[0] for r in demo.sequence_rows()][-2:] == ["disconnect it", "remove the network"]
        called = {r[1]: r[4] for r in demo.api_rows()}
        assert called["DeleteNetwork"].startswith("yes") and called["DiscoverNew"] == "no"
        assert {l["name"] for l in netns.snapshot(demo.node)["links"]} == {"lo", "sbxcni0"}
    finally:
        demo.close()
    assert demo.driver.proc.poll() is not None and not demo.driver.socket.exists()
    assert not netns.exists(demo.node) and not netns.exists(both)
