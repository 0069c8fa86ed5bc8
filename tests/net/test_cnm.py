"""The CNM remote driver over its unix socket, and the mini libnetwork controller (slides 52-59).

The driver is a real separate process started inside a node netns the test makes; its socket
lives in a temp dir the test makes. The first tests speak raw HTTP/1.1 bytes to the socket (not
through the kit's client), so the wire format itself is checked; the rest go through the
controller and check the kernel's state in the node and in the sandboxes.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from sandbox.net import netns
from sandbox.net.cnm import api
from sandbox.net.cnm.controller import CnmError, Controller
from sandbox.net.cnm.driver import CnmDriverError, DriverProcess, spawn

pytestmark = [pytest.mark.root]


@pytest.fixture
def sockdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sbx-cnm-"))   # short: a unix socket path has 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start(node: Path, sockdir: Path) -> Iterator[Callable[..., DriverProcess]]:
    """``start(script=None)``: a driver in the test's node netns; stopped (by PID) at the end."""
    running: list[DriverProcess] = []

    def go(script: str | None = None) -> DriverProcess:
        path = None
        if script is not None:
            path = sockdir / f"driver{len(running)}.py"
            path.write_text(textwrap.dedent(script))
        d = spawn(sockdir / f"cnm{len(running)}.sock", node, state_dir=sockdir / f"state{len(running)}",
                  script=path)
        running.append(d)
        return d

    yield go
    for d in running:
        d.stop()
        assert d.proc.poll() is not None


def post(sock: Path, path: str, body: Any = None, raw: bytes | None = None,
         length: int | None = None) -> tuple[int, Any]:
    """One HTTP/1.1 POST written by hand on the unix socket: (status, decoded body)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    head = (f"POST {path} HTTP/1.1\r\nHost: plugin\r\nAccept: {api.ACCEPT}\r\n"
            f"Content-Length: {len(data) if length is None else length}\r\nConnection: close\r\n\r\n")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(head.encode() + data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    head_b, _, payload = got.partition(b"\r\n\r\n")
    status = int(head_b.split(b"\r\n")[0].split()[1])
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode()


def links(ns: Path | str) -> dict[str, dict[str, Any]]:
    return {l["name"]: l for l in netns.snapshot(ns)["links"]}


# -- the wire ---------------------------------------------------------------------------------

def test_handshake_capabilities_and_errors_on_the_wire(start: Callable[..., DriverProcess]) -> None:
    d = start()
    assert post(d.socket, "/Plugin.Activate") == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
    assert post(d.socket, "/NetworkDriver.GetCapabilities") == (
        200, {"Scope": "local", "ConnectivityScope": "local"})
    assert post(d.socket, "/IpamDriver.GetDefaultAddressSpaces")[1]["LocalDefaultAddressSpace"]
    # not a protocol URL (also not a way to reach the driver's other methods): 404
    assert post(d.socket, "/NetworkDriver.Frobnicate")[0] == 404
    assert post(d.socket, "/NetworkDriver.handle", {})[0] == 404
    # bad JSON, a body that is not an object, an oversized body: an error with "Err"
    status, reply = post(d.socket, "/NetworkDriver.CreateNetwork", raw=b"{not json")
    assert status == 400 and "cannot decode" in reply["Err"]
    assert post(d.socket, "/NetworkDriver.CreateNetwork", [1, 2])[0] == 400
    status, reply = post(d.socket, "/NetworkDriver.CreateNetwork", raw=b"[" * 100 + b"]" * 100)
    assert status == 400 and "nested deeper" in reply["Err"]
    status, reply = post(d.socket, "/NetworkDriver.CreateNetwork", raw=b"{}", length=api.MAX_BODY + 1)
    assert status == 413 and "Err" in reply
    # a request the driver cannot do: 500 + {"Err": …}
    status, reply = post(d.socket, "/NetworkDriver.Join", {"NetworkID": "nope", "EndpointID": "x"})
    assert status == 500 and reply == {"Err": "network nope not found"}
    assert d.proc.poll() is None                       # nothing above took it down


def test_ipam_pools_are_idempotent_and_addresses_unique(start: Callable[..., DriverProcess]) -> None:
    d = start()
    req = {"AddressSpace": "sbx-local", "Pool": "10.232.0.0/29", "SubPool": "", "Options": {}, "V6": False}
    s1, p1 = post(d.socket, "/IpamDriver.RequestPool", req)
    s2, p2 = post(d.socket, "/IpamDriver.RequestPool", req)
    assert s1 == s2 == 200 and p1["PoolID"] == p2["PoolID"] and p1["Pool"] == "10.232.0.0/29"
    status, reply = post(d.socket, "/IpamDriver.RequestPool", {**req, "Pool": "10.232.0.0/24"})
    assert status == 500 and "overlaps" in reply["Err"]
    pid = p1["PoolID"]
    gw = post(d.socket, "/IpamDriver.RequestAddress",
              {"PoolID": pid, "Address": "", "Options": api.GATEWAY_REQUEST})[1]["Address"]
    got = [post(d.socket, "/IpamDriver.RequestAddress", {"PoolID": pid, "Address": "", "Options": {}})
           for _ in range(6)]
    addrs = [gw] + [r["Address"] for s, r in got if s == 200]
    # a /29 has six host addresses: all handed out once, then none left
    assert sorted(addrs) == [f"10.232.0.{i}/29" for i in range(1, 7)]
    assert got[-1][0] == 500 and "no free address" in got[-1][1]["Err"]
    status, reply = post(d.socket, "/IpamDriver.RequestAddress", {"PoolID": pid, "Address": "10.232.0.3"})
    assert status == 500 and "already allocated" in reply["Err"]
    assert post(d.socket, "/IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.232.0.3"})[0] == 200
    assert post(d.socket, "/IpamDriver.RequestAddress",
                {"PoolID": pid, "Address": "10.232.0.3"})[1]["Address"] == "10.232.0.3/29"
    # two references to the pool: two releases, the third is an error
    assert post(d.socket, "/IpamDriver.ReleasePool", {"PoolID": pid})[0] == 200
    assert post(d.socket, "/IpamDriver.ReleasePool", {"PoolID": pid})[0] == 200
    assert post(d.socket, "/IpamDriver.ReleasePool", {"PoolID": pid})[0] == 500
    assert d.state()["pools"] == {}                     # the driver's own database says so too


def test_join_makes_the_interface_in_the_node_and_leaves_the_sandbox_alone(
        start: Callable[..., DriverProcess], node: Path, netns_factory: Callable[..., Path]) -> None:
    """Slide 56: the driver's work is in its own (the host's) namespace; the sandbox is untouched."""
    d = start()
    sandbox = netns_factory()
    before = links(sandbox)
    nid, eid = "a" * 64, "b" * 64
    assert post(d.socket, "/NetworkDriver.CreateNetwork", {
        "NetworkID": nid, "Options": {}, "IPv6Data": [],
        "IPv4Data": [{"AddressSpace": "s", "Pool": "10.233.0.0/24", "Gateway": "10.233.0.1/24",
                      "AuxAddresses": {}}]}) == (200, {})
    bridge = links(node)["sbxbraaaaaaa"]
    assert bridge["kind"] == "bridge" and "10.233.0.1/24" in bridge["addrs"]
    # no MAC given: the driver fills it (and only it); a MAC given: an empty Interface back
    status, reply = post(d.socket, "/NetworkDriver.CreateEndpoint", {
        "NetworkID": nid, "EndpointID": eid, "Options": {},
        "Interface": {"Address": "10.233.0.2/24", "AddressIPv6": "", "MacAddress": ""}})
    assert status == 200 and set(reply["Interface"]) == {"MacAddress"}
    assert post(d.socket, "/NetworkDriver.CreateEndpoint", {
        "NetworkID": nid, "EndpointID": "c" * 64, "Options": {},
        "Interface": {"Address": "10.233.0.3/24", "MacAddress": "02:42:0a:e9:00:03"}}) == (200, {})
    status, join = post(d.socket, "/NetworkDriver.Join", {
        "NetworkID": nid, "EndpointID": eid, "SandboxKey": str(sandbox), "Options": {}})
    assert status == 200 and join["Gateway"] == "10.233.0.1"
    src = join["InterfaceName"]["SrcName"]
    assert join["InterfaceName"]["DstPrefix"] == "eth"
    now = links(node)
    assert src in now and now[src]["kind"] == "veth" and not now[src]["up"]
    host_end = next(l for l in now.values() if l["kind"] == "veth" and l["master"] == "sbxbraaaaaaa")
    assert host_end["up"] and host_end["peer_index"] == now[src]["index"]
    assert links(sandbox) == before                     # Join did not touch the sandbox
    node_inode = netns.ns_inode(node)
    kernel = [e for e in d.log() if e["kind"] == "kernel"]
    assert kernel and {e["netns_inode"] for e in kernel} == {node_inode}
    # Leave, DeleteEndpoint, DeleteNetwork undo it all in the node
    for path, body in (("/NetworkDriver.Leave", {"NetworkID": nid, "EndpointID": eid}),
                       ("/NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": eid}),
                       ("/NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": "c" * 64}),
                       ("/NetworkDriver.DeleteNetwork", {"NetworkID": nid})):
        assert post(d.socket, path, body) == (200, {}), path
    assert set(links(node)) == {"lo"}


# -- the controller: libnetwork's order, the sandbox configured by the controller ----------------

def _sequence(ctl: Controller) -> list[str]:
    return [c.path[1:] + (" (gateway)" if c.note == "the network's gateway" else "") for c in ctl.calls]


def test_controller_connects_two_containers_in_libnetworks_order(
        start: Callable[..., DriverProcess], node: Path, netns_factory: Callable[..., Path]) -> None:
    d = start()
    c1, c2 = netns_factory(), netns_factory()
    ctl = Controller(d.socket, node)
    ctl.activate()
    assert _sequence(ctl) == api.SEQUENCES["plugin activation"]
    ctl.calls.clear()
    net = ctl.create_network("front", pool="10.234.0.0/24")
    assert _sequence(ctl) == api.SEQUENCES["network create"]
    ctl.calls.clear()
    e1 = ctl.connect(net, c1)
    assert _sequence(ctl) == [s for s in api.SEQUENCES["container connect"] if not s.startswith("·")]
    e2 = ctl.connect(net, c2)
    for ep, ns in ((e1, c1), (e2, c2)):
        snap = netns.snapshot(ns)
        eth0 = {l["name"]: l for l in snap["links"]}["eth0"]
        assert eth0["up"] and eth0["mac"] == ep.mac and ep.address in eth0["addrs"]
        assert {"dst": "0.0.0.0/0", "gateway": "10.234.0.1", "dev": "eth0", "family": 4} in snap["routes"]
    assert netns.ping(c1, e2.address.split("/")[0]).returncode == 0
    # who changed which namespace: the driver only the node, the controller only the sandboxes
    assert {e["netns_inode"] for e in d.log() if e["kind"] == "kernel"} == {netns.ns_inode(node)}
    assert {o.netns_inode for o in ctl.ops} == {netns.ns_inode(c1), netns.ns_inode(c2)}
    assert len([r for r in netns.nat_rules(node) if r.startswith("-A POSTROUTING")]) == 2
    ctl.calls.clear()
    ctl.disconnect(e1)
    assert _sequence(ctl) == [s for s in api.SEQUENCES["container disconnect"] if not s.startswith("·")]
    assert "eth0" not in links(c1)
    ctl.disconnect(e2)
    ctl.calls.clear()
    ctl.delete_network(net)
    assert _sequence(ctl) == api.SEQUENCES["network rm"]
    assert set(links(node)) == {"lo"} and netns.nat_rules(node) == []
    assert d.state() == {"endpoints": {}, "networks": {}, "pools": {}}


def test_a_second_network_becomes_eth1_and_leaving_it_keeps_eth0(
        start: Callable[..., DriverProcess], node: Path, netns_factory: Callable[..., Path]) -> None:
    d = start()
    c = netns_factory()
    ctl = Controller(d.socket, node)
    front, back = ctl.create_network("front"), ctl.create_network("back")
    assert front.pool != back.pool                      # the IPAM driver chose two pools
    e0, e1 = ctl.connect(front, c), ctl.connect(back, c)
    assert (e0.ifname, e1.ifname) == ("eth0", "eth1")
    assert e0.external and not e1.external              # one gateway endpoint per sandbox
    ctl.disconnect(e1)
    now = links(c)
    assert "eth1" not in now and e0.address in now["eth0"]["addrs"]
    assert ctl.close() == ["disconnected " + e0.name + " from front", "deleted network front",
                           "deleted network back"]


MINIMAL = """
    import sys
    from sandbox.net.cnm.driver import BridgeDriver, main

    class Minimal(BridgeDriver):
        # a driver need not implement these: libnetwork takes a 404 as "nothing to do"
        ProgramExternalConnectivity = None
        RevokeExternalConnectivity = None
        IpamDriver_GetCapabilities = None

    sys.exit(main(driver_class=Minimal))
"""

MOVES_IT_ITSELF = """
    import os, sys
    from sandbox.net.cnm.driver import BridgeDriver, main

    class Eager(BridgeDriver):
        def Join(self, req):     # the classic mistake: configuring the sandbox from the driver
            reply = super().Join(req)
            fd = os.open(req["SandboxKey"], os.O_RDONLY)
            self.ipr.link("set", index=self.link_index(reply["InterfaceName"]["SrcName"]), net_ns_fd=fd)
            return reply

    sys.exit(main(driver_class=Eager))
"""


def test_optional_endpoints_may_be_missing(start: Callable[..., DriverProcess], node: Path,
                                           netns_factory: Callable[..., Path]) -> None:
    d = start(MINIMAL)
    ctl = Controller(d.socket, node)
    net = ctl.create_network("front")
    ep = ctl.connect(net, netns_factory())
    ctl.disconnect(ep)
    missing = {c.path: c.status for c in ctl.calls if c.status == 404}
    assert missing == {"/IpamDriver.GetCapabilities": 404,
                       "/NetworkDriver.ProgramExternalConnectivity": 404,
                       "/NetworkDriver.RevokeExternalConnectivity": 404}
    ctl.delete_network(net)


def test_a_driver_that_configures_the_sandbox_itself_is_refused(
        start: Callable[..., DriverProcess], node: Path, netns_factory: Callable[..., Path]) -> None:
    d = start(MOVES_IT_ITSELF)
    ctl = Controller(d.socket, node)
    net = ctl.create_network("front")
    with pytest.raises(CnmError, match=r"there is no sbx\w+ in the node's netns") as e:
        ctl.connect(net, netns_factory())
    assert "libnetwork moves it into the sandbox" in e.value.hint
    # the controller rolled back: Leave, DeleteEndpoint, ReleaseAddress
    assert [c.path for c in ctl.calls[-3:]] == ["/NetworkDriver.Leave", "/NetworkDriver.DeleteEndpoint",
                                                "/IpamDriver.ReleaseAddress"]
    assert net.endpoints == []


def test_driver_errors_and_a_missing_driver_are_one_sentence(
        start: Callable[..., DriverProcess], node: Path, sockdir: Path) -> None:
    d = start()
    ctl = Controller(d.socket, node)
    ctl.create_network("a", pool="10.235.0.0/24")
    with pytest.raises(CnmError, match=r"^IpamDriver.RequestPool failed: remote: pool 10.235.0.0/25 overlaps"):
        ctl.create_network("b", pool="10.235.0.0/25")
    ctl.close()
    nobody = Controller(sockdir / "nobody.sock", node, connect_timeout=0.2)
    with pytest.raises(CnmError, match="No CNM driver answers on"):
        nobody.activate()
    with pytest.raises(CnmDriverError, match="exists already"):
        spawn(d.socket, node)


def test_stop_ends_the_process_and_removes_the_socket(start: Callable[..., DriverProcess]) -> None:
    d = start()
    d.stop()
    assert d.proc.poll() is not None and not d.socket.exists()
    assert d.log()[-1]["kind"] == "stopped"             # it shut down cleanly on SIGTERM


def test_the_driver_goes_when_the_process_that_started_it_dies(node: Path, sockdir: Path) -> None:
    """A kernel that dies (SIGKILL, no clean-up) must not leave its driver running."""
    starter = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from sandbox.net.cnm.driver import spawn\n"
        f"d = spawn({str(sockdir / 'k.sock')!r}, {str(node)!r})\n"
        "print(d.pid, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    pid = int(starter.stdout.readline())
    assert post(sockdir / "k.sock", "/Plugin.Activate")[0] == 200
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
            Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
    gone = not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    if not gone:
        os.kill(pid, signal.SIGKILL)          # do not leave it behind even when the test fails
    assert gone, "the driver outlived the process that started it"
    assert not (sockdir / "k.sock").exists()
