"""Notebook 07b's replicas (sandbox.course.replicas) against live state: one image, pods with
their own addresses and namespaces, reachable by IP but not by name until names are published,
one rendered tree shared and one writable layer each. Two replicas suffice for every claim."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sandbox.course import notebook
from sandbox.course.replicas import Replicas
from sandbox.errors import SandboxError
from sandbox.net import netns
from sandbox.pod import stage0 as pod

pytestmark = [pytest.mark.root]


def test_replicas_share_the_image_and_nothing_that_makes_them_a_pod(sandbox_dir: Path) -> None:
    nb = notebook.start("96")
    try:
        reps = Replicas(nb, count=2)
        uuids = reps.start()
        facts = reps.facts()
        # addresses: distinct, on the default network, and what the kernel shows on eth0
        addrs = [ipaddress.ip_interface(f["address"]) for f in facts]
        assert addrs[0] != addrs[1] and addrs[0].network == addrs[1].network
        for u, f in zip(uuids, facts):
            assert pod.status(u)["networks"][0]["ips"] == [f["address"]]
            assert netns.ns_inode(f["netns"]) != netns.ns_inode("/proc/self/ns/net")
        assert facts[0]["image"] == facts[1]["image"] and facts[0]["hostname"] != facts[1]["hostname"]
        # by IP yes, by name no (no DNS, /etc/hosts knows only itself) ... until published
        before = {r[0]: r[2] for r in reps.ping_rows()}
        assert before["replica 1 → replica 2 by IP"] == "reply"
        assert "bad address" in before["replica 1 → replica 2 by name"]
        assert facts[1]["hostname"] not in reps.hosts_file(0)
        reps.publish_names()
        after = {r[0]: r[2] for r in reps.ping_rows()}
        assert after["replica 1 → replica 2 by name"] == "reply"
        shared = {r[0]: r[-1] for r in reps.shared_rows()}
        assert shared["image ID"] and shared["rendered tree (read-only, the overlay's lower layer)"]
        assert shared["kernel (uname -r, asked inside)"] and shared["network (CNI)"]
        for own in ("writable layer (the overlay's upper dir)", "pod UUID", "eth0 address",
                    "net namespace", "uts namespace", "pid namespace", "mnt namespace",
                    "metadata service URL (with its token)"):
            assert shared[own] is False, own
        writes = reps.write_and_look()
        assert writes[0][1:] == ["written by replica 1", "yes"]
        assert writes[1][1:] == ["(no such file)", "no"]
    finally:
        done = nb.close()
    assert sum(line.startswith("stopped and removed pod") for line in done) == 2
    for u in uuids:
        with pytest.raises(SandboxError):
            pod.find(u)
