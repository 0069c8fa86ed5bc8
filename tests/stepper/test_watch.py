"""Any work watched in a few network namespaces (a learner's ``ip`` commands in lab 4): one step
per change the kernel announced, and the replayed state equals the kernel's own answer."""
from __future__ import annotations

import subprocess
from typing import Any

import pytest

from sandbox.net import netns
from sandbox.net.watch import KernelFilm
from sandbox.steps import Steps
from sandbox.viz.stepper import frame_of

pytestmark = pytest.mark.root


def test_ip_commands_are_filmed_change_by_change() -> None:
    s = netns.Session()
    try:
        a, b = s.create(netns.unique_name("sbx-st")), s.create(netns.unique_name("sbx-st"))
        film = KernelFilm({a.name: a, b.name: b}).start()
        tag = a.name.split("-")[-2][-4:]
        va, vb = f"sbxst{tag}a", f"sbxst{tag}b"

        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True)
        ip("-n", a.name, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b.name)
        ip("-n", a.name, "addr", "add", "10.245.0.1/24", "dev", va)
        ip("-n", b.name, "addr", "add", "10.245.0.2/24", "dev", vb)
        ip("-n", a.name, "link", "set", va, "up")
        ip("-n", b.name, "link", "set", vb, "up")
        ip("-n", a.name, "link", "add", f"sbxst{tag}d", "type", "veth", "peer", "name", f"sbxst{tag}e")
        ip("-n", a.name, "link", "set", f"sbxst{tag}d", "netns", b.name)
        film.take()
        film.stop()
        steps = film.record_into(Steps(snapshots=True))
        whats = [st.what for st in steps]
        for w in (f"link {va} created (veth)", f"link {vb} created (veth)",
                  f"address 10.245.0.1/24 on {va}", f"link {vb} set up",
                  f"link sbxst{tag}d moved to {b.name}"):
            assert w in whats
        _hand_decoder_agrees_with_pyroute2(film, [a, b])
        end = film.state(len(film.events) - 1)["namespaces"]
        for ns in (a, b):
            real = netns.snapshot(ns)
            assert sorted((l["name"], l["up"], tuple(x for x in l["addrs"] if not x.startswith("fe80")))
                          for l in end[ns.name]["links"]) == \
                sorted((l["name"], l["up"], tuple(x for x in l["addrs"] if not x.startswith("fe80")))
                       for l in real["links"])
        last = frame_of(steps, len(steps) - 1).pictures[0].source
        assert "veth pair" in last and f"netns {a.name}" in last and f"netns {b.name}" in last
    finally:
        s.close()


def _hand_decoder_agrees_with_pyroute2(film: KernelFilm, spaces: list[Any]) -> None:
    """watch._rtnl_msg reads what pyroute2 reads, under the same names (snapshot_from takes both)."""
    import pyroute2  # noqa: F401
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    from sandbox.net import watch
    raw = [(e.type, e.data) for e in film.events if e.proto == "rtnl"]
    for ns in spaces:
        raw += [(k, d) for k, _f, d in netns.in_thread(film._dump, str(ns), False)["rtnl"]]
    names = {ifinfmsg: (["family", "index", "flags"], ["ifname", ("linkinfo", "kind"), "operstate",
                                                       "address", "mtu", "master", "link", "link_netnsid"]),
             ifaddrmsg: (["family", "index", "prefixlen"], ["address", "local"]),
             rtmsg: (["family", "dst_len", "tos", "table"], ["dst", "gateway", "oif", "RTA_PRIORITY", "RTA_TABLE"])}
    assert len(raw) > 10
    for kind, data in raw:
        cls = {16: ifinfmsg, 17: ifinfmsg, 20: ifaddrmsg, 21: ifaddrmsg}.get(kind, rtmsg)
        theirs = cls(data)
        theirs.decode()
        mine = watch._rtnl_msg(kind, data)
        fields, attrs = names[cls]
        assert [mine[f] for f in fields] == [theirs[f] for f in fields]
        assert [mine.get(k) for k in attrs] == [theirs.get(k) for k in attrs]
