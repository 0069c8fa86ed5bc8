"""The plumbing *around* CNI that a cluster provides and a CNI plugin does not: a wire between
two nodes, a node's uplink to a "LAN", routes in a node, and daemons (a DHCP server, the CNI
dhcp plugin's daemon) running inside a namespace — plus one probe: which source address a
server in one namespace sees when a client in another talks to it.

Everything acts on namespaces the caller made (normally :class:`sandbox.net.netns.Session`
ones); traffic only ever goes between them. Link work is netlink through pyroute2, in a helper
thread (:func:`sandbox.net.netns.in_thread`), so it is safe from a notebook cell.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from sandbox._sys import libc, proc
from sandbox.errors import SandboxError
from sandbox.net import netns as _netns
from sandbox.steps import Steps, record


class TopologyError(SandboxError):
    """A wire, route or daemon could not be set up."""


def _path(ns: str | os.PathLike[str]) -> Path:
    return _netns.path_of(ns)


def _set_up(ipr: Any, name: str, cidr: str | None) -> int:
    idx = ipr.link_lookup(ifname=name)[0]
    if cidr:
        a = ipaddress.ip_interface(cidr)
        ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
    ipr.link("set", index=idx, state="up")
    return idx


def wire(ns_a: str | os.PathLike[str], ns_b: str | os.PathLike[str], name_a: str, name_b: str,
         addr_a: str | None = None, addr_b: str | None = None, steps: Steps | None = None) -> None:
    """A veth pair from ``ns_a`` (end ``name_a``, address ``addr_a``) to ``ns_b`` (``name_b``,
    ``addr_b``), both ends up: the cable between two "hosts", or a host and its LAN."""
    for n in (name_a, name_b):
        if not n or len(n) > 15:
            raise TopologyError(f"'{n}' is not a usable interface name (1 to 15 characters).")
    a, b = _path(ns_a), _path(ns_b)

    def work() -> None:
        fd = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with _netns.iproute(a) as ipr:
                ipr.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": fd})
                _set_up(ipr, name_a, addr_a)
        finally:
            os.close(fd)
        with _netns.iproute(b) as ipr:
            _set_up(ipr, name_b, addr_b)
    _netns.in_thread(work)
    record(steps, "netlink", f"veth {name_a} ⇄ {name_b}", a=str(a), b=str(b), addr_a=addr_a, addr_b=addr_b)


def address(ns: str | os.PathLike[str], ifname: str, cidr: str, steps: Steps | None = None) -> None:
    """Add ``cidr`` to ``ifname`` in ``ns`` (and set it up)."""
    def work() -> None:
        with _netns.iproute(_path(ns)) as ipr:
            if not ipr.link_lookup(ifname=ifname):
                raise TopologyError(f"There is no {ifname} in {ns}.")
            _set_up(ipr, ifname, cidr)
    _netns.in_thread(work)
    record(steps, "netlink", f"address {cidr} on {ifname}", netns=str(_path(ns)))


def route(ns: str | os.PathLike[str], dst: str, via: str, steps: Steps | None = None) -> None:
    """``ip route add DST via VIA`` inside ``ns``: what a cluster's network does so that a
    node knows where another node's pod subnet is (flannel's host-gw, Calico's BGP, a cloud
    VPC's route table)."""
    net = ipaddress.ip_network(dst)

    def work() -> None:
        with _netns.iproute(_path(ns)) as ipr:
            ipr.route("add", dst=str(net.network_address), dst_len=net.prefixlen, gateway=via)
    try:
        _netns.in_thread(work)
    except OSError as e:
        raise TopologyError(f"Could not add the route {dst} via {via} in {ns}: {e}.") from e
    record(steps, "netlink", f"route {dst} via {via}", netns=str(_path(ns)))


def route_lines(ns: str | os.PathLike[str]) -> list[str]:
    """The IPv4 main-table routes of ``ns``, one ``ip route``-like line each."""
    snap = _netns.snapshot(ns)
    return [f"{r['dst']}" + (f" via {r['gateway']}" if r.get("gateway") else "")
            + (f" dev {r['dev']}" if r.get("dev") else "") for r in snap["routes"] if r["family"] == 4]


def first_address(ns: str | os.PathLike[str], ifname: str = "eth0") -> str | None:
    """The first IPv4 address (without prefix) of ``ifname`` in ``ns``."""
    for link in _netns.snapshot(ns)["links"]:
        if link["name"] == ifname:
            for a in link["addrs"]:
                if ":" not in a:
                    return a.split("/")[0]
    return None


def source_seen(server_ns: str | os.PathLike[str], client_ns: str | os.PathLike[str],
                server_addr: str, port: int = 7000, timeout: float = 3.0) -> str | None:
    """Send one UDP datagram from ``client_ns`` to ``server_addr`` (a socket bound in
    ``server_ns``) and return the source address the server saw (None if nothing arrived):
    "addressed by its IP" means this is the client pod's own address, not its node's."""
    def in_ns(ns: Path) -> socket.socket:
        with _netns.enter(ns):       # a socket keeps the netns it was made in
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    server = _netns.in_thread(in_ns, _path(server_ns))
    client = _netns.in_thread(in_ns, _path(client_ns))
    try:
        server.bind((server_addr, port))
        server.settimeout(timeout)
        client.sendto(b"who am I?", (server_addr, port))
        try:
            _, peer = server.recvfrom(64)
        except socket.timeout:
            return None
        return peer[0]
    finally:
        server.close()
        client.close()


# -- daemons in a namespace ----------------------------------------------------------------------

class Daemon:
    """A long-running program started inside a netns (a DHCP server, the dhcp plugin's daemon),
    with its output in ``log``. It gets SIGTERM when the thread that started it ends (a kernel
    that died takes its daemons along); :meth:`stop` ends it by its PID."""

    def __init__(self, argv: list[str], ns: str | os.PathLike[str], log: str | os.PathLike[str],
                 steps: Steps | None = None) -> None:
        self.argv, self.log = argv, Path(log)
        setns = _netns.preexec_setns(_path(ns))

        def pre() -> None:
            setns()
            libc.parent_death_signal(signal.SIGTERM)

        out = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(argv, preexec_fn=pre, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out)
        except FileNotFoundError as e:
            raise TopologyError(f"{argv[0]} is not installed.",
                                hint="Run `make install` (provision/packages/cni.txt lists it).") from e
        finally:
            os.close(setns.fd)
            out.close()
        record(steps, "exec", " ".join(argv), netns=str(_path(ns)), pid=self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        proc.end(self.proc, timeout)
