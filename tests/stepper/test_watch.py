"""Any work watched in a few network namespaces (a learner's ``ip`` commands in lab 4): one step
per change the kernel announced, and the replayed state equals the kernel's own answer."""
from __future__ import annotations

import subprocess

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
        film.take()
        film.stop()
        steps = film.record_into(Steps(snapshots=True))
        whats = [st.what for st in steps]
        for w in (f"link {va} created (veth)", f"link {vb} created (veth)",
                  f"address 10.245.0.1/24 on {va}", f"link {vb} set up"):
            assert w in whats
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
