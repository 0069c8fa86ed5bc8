"""Fixtures for the network tests: every test gets its own "node" netns (it plays the host:
bridges, ip_forward and NAT rules live there) and makes its container namespaces through
``netns_factory``. Everything is removed at teardown, also when the test fails.

Names start with ``sbx`` and are unique per test: netns ``sbx-<pid>-<n>``, interface-sized
names (<= 15 chars, IFNAMSIZ-1) from the ``short_name`` fixture.
"""
from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from sandbox.net import netns

UPSTREAM_CNI = Path("/usr/lib/cni")
_short = itertools.count(1)


def short_name(prefix: str = "sbx") -> str:
    """A unique name that fits an interface name (<= 15 chars): prefix + pid + counter, hex."""
    assert prefix.startswith("sbx")
    name = f"{prefix}{os.getpid():x}{next(_short):x}"
    assert len(name) <= 15, name
    return name


@pytest.fixture(name="short_name")
def short_name_fixture() -> Callable[[str], str]:
    return short_name


@pytest.fixture
def netns_factory() -> Iterator[Callable[..., Path]]:
    """``make(node=False)`` creates a uniquely named netns (a node if asked) and returns its
    handle path; all of them are deleted at teardown."""
    made: list[str] = []

    def make(node: bool = False) -> Path:
        name = netns.unique_name("sbx")
        made.append(name)
        return netns.node_create(name) if node else netns.create(name)

    yield make
    for name in reversed(made):
        netns.delete(name, missing_ok=True)


@pytest.fixture
def node(netns_factory: Callable[..., Path]) -> Path:
    """A fresh node netns: lo up, net.ipv4.ip_forward=1. Removed afterwards (with its bridges,
    veth ends and iptables rules)."""
    return netns_factory(node=True)


@pytest.fixture
def upstream_plugins() -> Path:
    """Debian's containernetworking-plugins (the upstream Go plugins)."""
    if not (UPSTREAM_CNI / "bridge").exists():
        pytest.fail("the upstream CNI plugins are missing: apt-get install containernetworking-plugins "
                    "(provision/packages/cni.txt)")
    return UPSTREAM_CNI


@pytest.fixture
def cni_dirs(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Private directories for one test: conf dir, result cache dir, host-local dataDir."""
    d = {k: tmp_path / k for k in ("conf", "cache", "ipam")}
    for p in d.values():
        p.mkdir()
    yield d
    shutil.rmtree(tmp_path, ignore_errors=True)
