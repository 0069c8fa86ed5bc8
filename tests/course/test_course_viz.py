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
    for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"):
        assert f"nb{p.name[:2]}" in src
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
def test_cnm_objects_are_read_off_the_cni_state(sandbox_dir: Path) -> None:
    demo = CniCnmDemo(subnet="10.87.0.0/24")
    try:
        a = demo.attach()
        b = demo.attach("upstream")
        rows = demo.rows()
        assert [r["cnm"] for r in rows] == ["Network", "Endpoint", "Sandbox", "Endpoint", "Sandbox"]
        assert "10.87.0.1/24" in rows[0]["kernel"]
        for name, row in ((a, rows[1]), (b, rows[3])):
            ip = demo.results[name]["ips"][0]["address"]
            assert ipaddress.ip_interface(ip).ip in ipaddress.ip_network("10.87.0.0/24")
            assert f"eth0 in {name} ({ip})" in row["kernel"], row
            assert "veth" in row["kernel"] and "?" not in row["kernel"].split("(on")[0]
        # each endpoint is its own veth pair: distinct host ends, each the peer of that eth0
        node = {l["name"]: l for l in netns.snapshot(demo.node)["links"]}
        ends = [r["kernel"].split()[1] for r in (rows[1], rows[3])]
        assert len(set(ends)) == 2
        for name, end in zip((a, b), ends):
            eth0 = next(l for l in netns.snapshot(name)["links"] if l["name"] == "eth0")
            assert node[end]["index"] == eth0["peer_index"] and node[end]["master"] == "sbxcnm0"
        src = course.cnm_picture(demo).source
        assert src.count("CNM: Endpoint") == 2
        assert {c.plugin for rt in demo.runtimes.values() for c in rt.calls} == {"bridge"}
        assert "sbxcnm0" in course.cnm_picture(demo).source
    finally:
        demo.close()
    assert not netns.exists(demo.node) and not netns.exists(a)
