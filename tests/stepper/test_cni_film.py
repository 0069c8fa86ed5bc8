"""CNI ADD/DEL/GC recorded for the stepper: every exec, what the kit's plugins report, every change
the kernel announced — and the state replayed from the film equals the kernel's own answer
(pyroute2 dump of the namespaces, ``iptables -t nat -S``) at the end of each operation, for the
kit's plugins and for upstream's Go plugins alike."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.net import netns
from sandbox.net.cni import Runtime
from sandbox.net.plugins import plugin_dir
from sandbox.palette import kind_color
from sandbox.steps import Steps
from sandbox.viz.stepper import Stepper, frame_of, to_svg

pytestmark = pytest.mark.root

UPSTREAM = "/usr/lib/cni"


@pytest.fixture
def session():
    s = netns.Session()
    yield s
    s.close()


def _runtime(session: netns.Session, cni_path: str, version: str = "1.0.0") -> tuple[Runtime, Path]:
    work = session.tmpdir("sbx-st-cni-")
    (work / "net.d").mkdir()
    conf = {"cniVersion": version, "name": "sbxstnet", "type": "bridge", "bridge": "sbxst0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": "host-local", "subnet": "10.203.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}
    (work / "net.d" / "10-sbxstnet.conf").write_text(json.dumps(conf))
    rt = Runtime(conf_dir=work / "net.d", cni_path=cni_path, cache_dir=work / "cache",
                 node=session.node(netns.unique_name("sbx-st")), plugin_state_dir=work / "state")
    return rt, work


def _shape(snap: dict) -> tuple:
    """What both sides must agree on (IPv6 link-local addresses come later, from DAD)."""
    links = sorted((l["index"], l["name"], l["kind"], l["up"], l["master"],
                    tuple(a for a in l["addrs"] if not a.startswith("fe80:"))) for l in snap["links"])
    routes = sorted((r["dst"], r["gateway"] or "", r["dev"] or "") for r in snap["routes"]
                    if r["family"] == 4)
    return links, routes


@pytest.fixture
def added(session):
    """The kit's plugins, a container ADDed with a snapshotting Steps: (runtime, netns, steps)."""
    rt, _ = _runtime(session, str(plugin_dir()))
    c = session.create(netns.unique_name("sbx-st"))
    steps = Steps(snapshots=True)
    rt.add("sbxstnet", c, steps=steps)
    return rt, c, steps


def _film_of(steps: Steps, op: str):
    return next(s.after["film"] for s in steps if s.after and s.after.get("op") == op)


@pytest.mark.parametrize("plugins", ["ours", "upstream"])
def test_the_film_ends_where_the_kernel_is(session, plugins: str) -> None:
    rt, _ = _runtime(session, str(plugin_dir()) if plugins == "ours" else UPSTREAM)
    c = session.create(netns.unique_name("sbx-st"))
    steps = Steps(snapshots=True)
    rt.add("sbxstnet", c, steps=steps)
    add = _film_of(steps, "ADD")
    end = add.kernel.state(len(add.kernel.events) - 1)
    assert _shape(end["namespaces"]["node"]) == _shape(netns.snapshot(rt.node))
    assert _shape(end["namespaces"][c.name]) == _shape(netns.snapshot(c))
    assert end["nat"] == netns.nat_rules(rt.node) and any("MASQUERADE" in r for r in end["nat"])
    # and it started from nothing: no bridge, no veth, no rule
    start = add.kernel.state(-1)
    assert [l["name"] for l in start["namespaces"][c.name]["links"]] == ["lo"] and start["nat"] == []
    rt.delete("sbxstnet", c, steps=steps)
    dele = _film_of(steps, "DEL")
    end = dele.kernel.state(len(dele.kernel.events) - 1)
    assert _shape(end["namespaces"]["node"]) == _shape(netns.snapshot(rt.node))
    assert _shape(end["namespaces"][c.name]) == _shape(netns.snapshot(c))
    assert end["nat"] == netns.nat_rules(rt.node) == []

    runtime = [(s.action, s.what) for s in steps if s.after and not s.detail.get("by")
               and s.action in ("call", "exec")]
    assert runtime == [("call", "bridge ADD"), ("exec", "bridge ADD"),
                       ("call", "bridge DEL"), ("exec", "bridge DEL")]
    said = {s.what for s in steps if s.action == "netlink"}
    assert "link sbxst0 created (bridge)" in said and "address 10.203.0.1/24 on sbxst0" in said
    assert "link eth0 deleted" in said
    reported = [s for s in steps if s.detail.get("by")]
    if plugins == "ours":   # bridge tells of the host-local exec, host-local of its files
        calls = [s for s in reported if s.action == "call"]
        assert [s.what for s in calls] == ["host-local ADD", "host-local DEL"]
        assert calls[0].detail["env"]["CNI_COMMAND"] == "ADD" and '"subnet"' in calls[0].detail["stdin"]
        assert any(s.action == "write" and s.what.endswith("/sbxstnet/10.203.0.2") for s in reported)
        assert any(s.action == "unlink" and s.what.endswith("/sbxstnet/10.203.0.2") for s in reported)
    else:                   # upstream's Go plugins report nothing of their own
        assert reported == []


def test_each_kernel_step_shows_its_change_and_the_state_at_that_moment(added) -> None:
    _, _, steps = added
    k = next(i for i, s in enumerate(steps) if s.what == "link sbxst0 created (bridge)")
    film = steps[k].after["film"]
    at = film.kernel.state(steps[k].after["i"])
    before = film.kernel.state(steps[k].after["i"] - 1)
    assert "sbxst0" in {l["name"] for l in at["namespaces"]["node"]["links"]}
    assert "sbxst0" not in {l["name"] for l in before["namespaces"]["node"]["links"]}
    topo = frame_of(steps, k).pictures[0].source
    assert "sbxst0" in topo and kind_color("now") in topo           # drawn, and drawn as "now"
    # steps are in time order and each kernel step names the notification it came from
    ts = [s.t for s in steps if s.after]
    assert ts == sorted(ts)
    assert {s.detail["message"] for s in steps if s.action == "netlink"} >= {"RTM_NEWLINK", "RTM_NEWADDR",
                                                                             "RTM_NEWROUTE"}
    # the stepper draws every step: the topology (dot) and the sequence so far
    st = Stepper(steps, static=True)
    pics, aside, detail = st.render(k + 1)
    assert pics.count("<svg") == 1 and "sbxst0" in pics
    assert "runtime" in aside and "host-local" in aside and "kernel" in aside
    assert "RTM_NEWLINK" in detail


def test_a_late_listener_keeps_the_film_in_time_order(session, monkeypatch) -> None:
    """On a busy machine the film's listener thread reads the kernel's notifications late, after
    the plugin has exited (a CI run at load 10 had an exec step recorded before the changes of
    its own plugin). Here it reads them only when the runtime asks (the select sees only its
    wake-up pipe, the last descriptor it is given): every notification is read after the
    plugin's end, and the steps must still be in time order, each plugin's changes before its
    answer."""
    import select as real
    from sandbox.net import watch

    class LateSelect:
        @staticmethod
        def select(r, w, x, *timeout):
            return real.select(r[-1:], w, x, *timeout)

    monkeypatch.setattr(watch, "select", LateSelect)
    rt, _ = _runtime(session, str(plugin_dir()))
    c = session.create(netns.unique_name("sbx-st"))
    steps = Steps(snapshots=True)
    rt.add("sbxstnet", c, steps=steps)
    rt.delete("sbxstnet", c, steps=steps)
    filmed = [s for s in steps if s.after]
    assert [s.t for s in filmed] == sorted(s.t for s in filmed)
    for op in ("ADD", "DEL"):
        whats = [(s.action, s.what) for s in filmed]
        k = whats.index(("exec", f"bridge {op}"))
        assert any(s.action == "netlink" for s in filmed[whats.index(("call", f"bridge {op}")):k])
    said = {s.what for s in steps if s.action == "netlink"}
    assert "link sbxst0 created (bridge)" in said and "link eth0 deleted" in said


def test_gc_is_filmed_too(session) -> None:
    rt, work = _runtime(session, str(plugin_dir()), version="1.1.0")
    ca, cb = session.create(netns.unique_name("sbx-st")), session.create(netns.unique_name("sbx-st"))
    rt.add("sbxstnet", ca)
    rt.add("sbxstnet", cb)
    netns.delete(ca.name)                    # ca dies without a DEL
    steps = Steps(snapshots=True)
    rt.gc("sbxstnet", steps=steps)
    whats = [s.what for s in steps if s.after]
    assert "bridge DEL" in whats and "bridge GC" in whats and "host-local GC" in whats
    assert any(w.startswith("iptables: chain CNI-") and w.endswith("deleted") for w in whats)
    gc = _film_of(steps, "GC")
    end = gc.kernel.state(len(gc.kernel.events) - 1)
    assert end["nat"] == netns.nat_rules(rt.node) and len(end["nat"]) == 4    # cb's chain stays
    rt.delete("sbxstnet", cb)


def test_without_a_stepper_nothing_is_watched(session, monkeypatch) -> None:
    import sandbox.net.watch as watch

    def boom(*a, **k):
        raise AssertionError("the kernel was watched on the normal path")
    monkeypatch.setattr(watch.KernelFilm, "start", boom)
    rt, _ = _runtime(session, str(plugin_dir()))
    c = session.create(netns.unique_name("sbx-st"))
    steps = Steps()
    rt.add("sbxstnet", c, steps=steps)
    rt.delete("sbxstnet", c, steps=steps)
    assert all(s.after is None for s in steps) and not any(s.action == "call" for s in steps)
    assert "SANDBOX_CNI_STEPS" not in rt.calls[0].env


def test_the_sequence_diagram_is_svg_with_a_row_per_message(added) -> None:
    _, _, steps = added
    first = next(i for i, s in enumerate(steps) if s.action == "call")
    svg = to_svg(frame_of(steps, first).aside[0])
    assert svg.startswith("<svg") and "exec ADD" in svg and svg.count("<polygon") == 1
    last = max(i for i, s in enumerate(steps) if s.after)
    svg = to_svg(frame_of(steps, last).aside[0])
    rows = sum(1 for i in range(last + 1) if steps[i].after and steps[i].action != "check")
    assert "exit 0" in svg and f"{rows - 14} earlier rows not shown" in svg
