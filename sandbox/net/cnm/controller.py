"""A minimal libnetwork: the *controller* side of CNM (slides 52–56).

It talks to a remote driver over its unix socket (:mod:`sandbox.net.cnm.api`) in the order
libnetwork does, and it configures the *sandbox* (the container's network namespace) itself:

    ctl = Controller("/tmp/sbx-…/cnm.sock", node="sbx-node")
    ctl.activate()                                  # Plugin.Activate, GetCapabilities, IPAM spaces
    net = ctl.create_network("front")               # RequestPool, RequestAddress(gw), CreateNetwork
    ep = ctl.connect(net, "sbx-c1")                 # RequestAddress, CreateEndpoint, Join,
                                                    #   · move + rename + MAC + address + routes,
                                                    #   ProgramExternalConnectivity
    ctl.disconnect(ep); ctl.delete_network(net)     # the reverse

``calls`` holds every HTTP exchange (path, request, status, reply, time); ``ops`` every change
the controller made to the kernel, with the inode of the netns it made it in. Together with the
driver's own log they show who touched which namespace.

What real libnetwork also does and this one does not: a key-value store, service discovery and
the embedded DNS server, the ``docker_gwbridge`` leg it adds when a driver gives no gateway,
IPv6, port mappings, and network/endpoint/sandbox persistence across restarts.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.net import netns as _netns
from sandbox.net.cnm import api
from sandbox.steps import Steps, record


class CnmError(SandboxError):
    """A CNM operation failed: the driver refused, or the sandbox could not be configured."""


@dataclass
class Call:
    """One HTTP exchange with the driver."""

    path: str
    request: dict[str, Any] | None
    status: int
    reply: Any
    ms: float
    note: str = ""


@dataclass
class Op:
    """One change the controller made to the kernel."""

    what: str
    netns: str
    netns_inode: int
    detail: dict[str, Any] = field(default_factory=dict)
    after: int = 0                  # how many calls had been made when it happened


@dataclass
class Network:
    id: str
    name: str
    pool_id: str
    pool: str
    gateway: str                    # CIDR, as the IPAM driver answered
    endpoints: list["Endpoint"] = field(default_factory=list)


@dataclass
class Endpoint:
    id: str
    name: str
    network: Network
    address: str                    # CIDR
    mac: str = ""
    sandbox: str = ""               # netns path once joined
    ifname: str = ""                # its name inside the sandbox (eth0, eth1, …)
    src_name: str = ""              # the driver's name for it in the node
    gateway: str = ""
    external: bool = False          # ProgramExternalConnectivity was called for it


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def _new_id() -> str:
    return secrets.token_hex(32)   # libnetwork's IDs are 64 hex digits


class Controller:
    """libnetwork's role for one remote driver that is both NetworkDriver and IpamDriver."""

    def __init__(self, socket_path: str | os.PathLike[str], node: str | os.PathLike[str], *,
                 netns_dir: str | os.PathLike[str] = _netns.DEFAULT_DIR,
                 timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        self.socket = Path(socket_path)
        self.netns_dir = netns_dir
        self.node = _netns.path_of(node, netns_dir)
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.calls: list[Call] = []
        self.ops: list[Op] = []
        self.implements: list[str] = []
        self.address_space = ""
        self.networks: dict[str, Network] = {}
        self._gateway_of: dict[str, Endpoint] = {}    # sandbox path -> its gateway endpoint

    # -- the wire ---------------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any] | None = None, *, note: str = "",
             steps: Steps | None = None) -> dict[str, Any]:
        """POST one request; the reply object. A 404 on an optional endpoint is an empty reply."""
        ep = api.endpoint(path)
        data = b"" if body is None else json.dumps(body).encode()
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.connect_timeout
        while True:   # the daemon retries a plugin that is still starting; so do we, briefly
            conn = _UnixHTTPConnection(str(self.socket), self.timeout)
            try:
                conn.request("POST", ep.path, body=data, headers={
                    "Accept": api.ACCEPT, "Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read(api.MAX_BODY + 1)
                status = resp.status
                break
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if time.monotonic() > deadline:
                    raise CnmError(f"No CNM driver answers on {self.socket} ({e.strerror}).",
                                   hint="Start it first (sandbox.net.cnm.driver.spawn).") from e
                time.sleep(0.05)
            except (OSError, http.client.HTTPException) as e:
                raise CnmError(f"{ep.path[1:]}: the driver on {self.socket} broke the "
                               f"connection ({e}).") from e
            finally:
                conn.close()
        ms = (time.perf_counter() - t0) * 1000
        if len(raw) > api.MAX_BODY:
            raise CnmError(f"{ep.path[1:]}: the driver's reply is larger than {api.MAX_BODY} bytes.")
        try:
            reply: Any = bounded.loads(raw, "the driver's reply") if raw.strip() else {}
        except ValueError:   # bounded.BadJSON too: shown as text
            reply = raw.decode(errors="replace").strip()
        if status == 404 and ep.optional:
            self.calls.append(Call(ep.path, body, status, reply, ms,
                                   note or "not implemented by the driver: fine, it is optional"))
            record(steps, "http", ep.path, status=404)
            return {}
        self.calls.append(Call(ep.path, body, status, reply, ms, note))
        record(steps, "http", ep.path, status=status, request=body, reply=reply)
        err = reply.get("Err") or reply.get("Error") if isinstance(reply, dict) else None
        if status != 200 or err:
            why = err or (reply if isinstance(reply, str) and reply else f"HTTP {status}")
            raise CnmError(f"{ep.path[1:]} failed: remote: {why}",
                           hint="The driver's log (driver.log beside its socket) has the request.")
        if not isinstance(reply, dict):
            raise CnmError(f"{ep.path[1:]}: the driver's reply is not a JSON object.")
        return reply

    def _op(self, what: str, ns: Path, steps: Steps | None, **detail: Any) -> None:
        op = Op(what, str(ns), _netns.ns_inode(ns), detail, len(self.calls))
        self.ops.append(op)
        record(steps, "netlink", what, netns=str(ns), **detail)

    # -- plugin activation --------------------------------------------------------------------
    def activate(self, steps: Steps | None = None) -> dict[str, Any]:
        """Plugin.Activate, then each implemented API's registration calls."""
        got = self.call("/Plugin.Activate", steps=steps)
        self.implements = list(got.get("Implements") or [])
        if api.NETWORK_DRIVER not in self.implements:
            raise CnmError(f"The plugin on {self.socket} does not implement NetworkDriver "
                           f"(it says {self.implements}).")
        caps = self.call("/NetworkDriver.GetCapabilities", steps=steps)
        if caps.get("Scope") not in api.SCOPES:
            raise CnmError(f"invalid capability: expecting 'local' or 'global', got "
                           f"{caps.get('Scope')!r}")
        out = {"Implements": self.implements, "Scope": caps["Scope"],
               "ConnectivityScope": caps.get("ConnectivityScope") or caps["Scope"]}
        if api.IPAM_DRIVER not in self.implements:
            raise CnmError("This controller needs the driver to be its IPAM driver too.",
                           hint="Answer Plugin.Activate with Implements: [NetworkDriver, IpamDriver].")
        out["IPAM capabilities"] = self.call("/IpamDriver.GetCapabilities", steps=steps)
        spaces = self.call("/IpamDriver.GetDefaultAddressSpaces", steps=steps)
        self.address_space = spaces.get("LocalDefaultAddressSpace") or ""
        out["address spaces"] = spaces
        return out

    def _ensure_active(self) -> None:
        if not self.implements:
            self.activate()

    # -- networks ---------------------------------------------------------------------------
    def create_network(self, name: str, pool: str = "", gateway: str = "",
                       steps: Steps | None = None) -> Network:
        """``docker network create``: a pool and a gateway from IPAM, then CreateNetwork."""
        self._ensure_active()
        p = self.call("/IpamDriver.RequestPool", {"AddressSpace": self.address_space,
                                                  "Pool": pool, "SubPool": "", "Options": {},
                                                  "V6": False}, steps=steps)
        try:
            gw = self.call("/IpamDriver.RequestAddress",
                           {"PoolID": p["PoolID"], "Address": gateway,
                            "Options": dict(api.GATEWAY_REQUEST)},
                           note="the network's gateway", steps=steps)["Address"]
        except CnmError:
            self.call("/IpamDriver.ReleasePool", {"PoolID": p["PoolID"]}, note="undo", steps=steps)
            raise
        net = Network(_new_id(), name, p["PoolID"], p["Pool"], gw)
        try:
            self.call("/NetworkDriver.CreateNetwork", {
                "NetworkID": net.id, "Options": {"com.docker.network.generic": {"name": name}},
                "IPv4Data": [{"AddressSpace": self.address_space, "Pool": net.pool,
                              "Gateway": gw, "AuxAddresses": {}}],
                "IPv6Data": []}, steps=steps)
        except CnmError:
            self.call("/IpamDriver.ReleaseAddress", {"PoolID": net.pool_id,
                                                     "Address": gw.split("/")[0]}, note="undo")
            self.call("/IpamDriver.ReleasePool", {"PoolID": net.pool_id}, note="undo")
            raise
        self.networks[net.id] = net
        return net

    def delete_network(self, net: Network, steps: Steps | None = None) -> None:
        """``docker network rm``: IPAM releases first, DeleteNetwork last (libnetwork's order)."""
        if net.endpoints:
            raise CnmError(f"Network {net.name} still has endpoints: "
                           f"{', '.join(e.name for e in net.endpoints)}.",
                           hint="Disconnect them first.")
        self.call("/IpamDriver.ReleaseAddress", {"PoolID": net.pool_id,
                                                 "Address": net.gateway.split("/")[0]},
                  note="the network's gateway", steps=steps)
        self.call("/IpamDriver.ReleasePool", {"PoolID": net.pool_id}, steps=steps)
        self.call("/NetworkDriver.DeleteNetwork", {"NetworkID": net.id}, steps=steps)
        self.networks.pop(net.id, None)

    # -- endpoints --------------------------------------------------------------------------
    def create_endpoint(self, net: Network, name: str, steps: Steps | None = None) -> Endpoint:
        """An address from IPAM, then CreateEndpoint (the driver may fill the empty MAC)."""
        addr = self.call("/IpamDriver.RequestAddress", {"PoolID": net.pool_id, "Address": "",
                                                        "Options": {}}, steps=steps)["Address"]
        ep = Endpoint(_new_id(), name, net, addr)
        given = {"Address": addr, "AddressIPv6": "", "MacAddress": ""}
        try:
            got = self.call("/NetworkDriver.CreateEndpoint", {
                "NetworkID": net.id, "EndpointID": ep.id, "Options": {},
                "Interface": given}, steps=steps).get("Interface") or {}
        except CnmError:
            self.call("/IpamDriver.ReleaseAddress", {"PoolID": net.pool_id,
                                                     "Address": addr.split("/")[0]}, note="undo")
            raise
        changed = [k for k, v in got.items() if v and given.get(k) and v != given[k]]
        if changed:   # libnetwork: a driver may only fill empty fields; rolled back otherwise
            self.call("/NetworkDriver.DeleteEndpoint", {"NetworkID": net.id, "EndpointID": ep.id},
                      note="roll back")
            self.call("/IpamDriver.ReleaseAddress", {"PoolID": net.pool_id,
                                                     "Address": addr.split("/")[0]}, note="undo")
            raise CnmError(f"driver modified interface {', '.join(changed)}; rolled back")
        ep.mac = got.get("MacAddress") or ""
        net.endpoints.append(ep)
        return ep

    def delete_endpoint(self, ep: Endpoint, steps: Steps | None = None) -> None:
        if ep.sandbox:
            raise CnmError(f"Endpoint {ep.name} is still joined to {ep.sandbox}.",
                           hint="Leave first (or use disconnect).")
        self.call("/NetworkDriver.DeleteEndpoint", {"NetworkID": ep.network.id,
                                                    "EndpointID": ep.id}, steps=steps)
        self.call("/IpamDriver.ReleaseAddress", {"PoolID": ep.network.pool_id,
                                                 "Address": ep.address.split("/")[0]}, steps=steps)
        if ep in ep.network.endpoints:
            ep.network.endpoints.remove(ep)

    # -- join / leave: the sandbox is configured here, not by the driver -----------------------
    def join(self, ep: Endpoint, sandbox: str | os.PathLike[str], steps: Steps | None = None) -> Endpoint:
        """Join, then move the driver's interface into the sandbox and configure it, then
        ProgramExternalConnectivity if this endpoint gives the sandbox its default gateway."""
        sb = _netns.path_of(sandbox, self.netns_dir)
        if not _netns.is_netns(sb):
            raise CnmError(f"There is no network namespace at {sb} (the sandbox).")
        reply = self.call("/NetworkDriver.Join", {"NetworkID": ep.network.id, "EndpointID": ep.id,
                                                  "SandboxKey": str(sb), "Options": {}}, steps=steps)
        names = reply.get("InterfaceName") or {}
        src, prefix = names.get("SrcName") or "", names.get("DstPrefix") or ""
        if not src or not prefix:
            self.call("/NetworkDriver.Leave", {"NetworkID": ep.network.id, "EndpointID": ep.id},
                      note="roll back")
            raise CnmError("Join's reply names no interface (InterfaceName.SrcName and DstPrefix "
                           "are needed).", hint="The driver must create the interface in its own "
                                                "netns and return its name.")
        gw = reply.get("Gateway") or ""
        routes = reply.get("StaticRoutes") or []
        try:
            for r in routes:
                ipaddress.ip_network(r.get("Destination", ""), strict=False)
                if int(r.get("RouteType", 0)) == 0:
                    ipaddress.ip_address(r.get("NextHop", ""))
            if gw:
                ipaddress.ip_address(gw)
        except (ValueError, TypeError) as e:
            self.call("/NetworkDriver.Leave", {"NetworkID": ep.network.id, "EndpointID": ep.id},
                      note="roll back")
            raise CnmError(f"Join's reply has a bad gateway or route: {e}") from e
        try:
            ep.ifname = _netns.in_thread(self._plumb, ep, sb, src, prefix, gw, routes, steps)
        except CnmError:
            self.call("/NetworkDriver.Leave", {"NetworkID": ep.network.id, "EndpointID": ep.id},
                      note="roll back")
            raise
        ep.sandbox, ep.src_name, ep.gateway = str(sb), src, gw
        if gw and str(sb) not in self._gateway_of:
            self._gateway_of[str(sb)] = ep
            self.call("/NetworkDriver.ProgramExternalConnectivity",
                      {"NetworkID": ep.network.id, "EndpointID": ep.id, "Options": {}},
                      note="the sandbox's gateway endpoint", steps=steps)
            ep.external = True
        return ep

    def _plumb(self, ep: Endpoint, sb: Path, src: str, prefix: str, gw: str,
               routes: list[dict[str, Any]], steps: Steps | None) -> str:
        """libnetwork's osl: move SrcName from the node into the sandbox and set it up there."""
        with _netns.iproute(self.node) as node:
            found = node.link_lookup(ifname=src)
            if not found:
                raise CnmError(f"The driver named {src} in Join, but there is no {src} in the "
                               f"node's netns {self.node}.",
                               hint="A remote driver creates the interface in its own (the host's) "
                                    "namespace; libnetwork moves it into the sandbox.")
            fd = os.open(sb, os.O_RDONLY | os.O_CLOEXEC)
            try:
                node.link("set", index=found[0], state="down")
                node.link("set", index=found[0], net_ns_fd=fd)
            finally:
                os.close(fd)
        self._op(f"moved {src} from the node into the sandbox", sb, steps, src=src)
        with _netns.iproute(sb) as s:
            idx = s.link_lookup(ifname=src)[0]
            taken = {l.get("ifname") for l in s.get_links()}
            n = 0
            while f"{prefix}{n}" in taken:
                n += 1
            name = f"{prefix}{n}"
            s.link("set", index=idx, ifname=name)
            if ep.mac:
                s.link("set", index=idx, address=ep.mac)
            a = ipaddress.ip_interface(ep.address)
            s.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
            s.link("set", index=idx, state="up")
            self._op(f"renamed it {name}, MAC {ep.mac or '(kept)'}, address {ep.address}, up",
                     sb, steps, ifname=name)
            for r in routes:
                dst = ipaddress.ip_network(r["Destination"], strict=False)
                if int(r.get("RouteType", 0)) == 1:
                    s.route("add", dst=str(dst.network_address), dst_len=dst.prefixlen,
                            oif=idx, scope=253)
                else:
                    s.route("add", dst=str(dst.network_address), dst_len=dst.prefixlen,
                            gateway=r["NextHop"])
                self._op(f"route {dst}" + (f" via {r.get('NextHop')}" if r.get("NextHop") else
                                           f" dev {name}"), sb, steps)
            has_default = any(l.get("dst_len") == 0 for l in s.get_routes(family=2, table=254))
            if gw and not has_default:
                s.route("add", dst="0.0.0.0", dst_len=0, gateway=gw)
                self._op(f"default route via {gw}", sb, steps)
        return name

    def leave(self, ep: Endpoint, steps: Steps | None = None) -> None:
        """RevokeExternalConnectivity, Leave, then take the interface back out of the sandbox."""
        if not ep.sandbox:
            return
        if ep.external:
            self.call("/NetworkDriver.RevokeExternalConnectivity",
                      {"NetworkID": ep.network.id, "EndpointID": ep.id}, steps=steps)
            ep.external = False
            self._gateway_of.pop(ep.sandbox, None)
        self.call("/NetworkDriver.Leave", {"NetworkID": ep.network.id, "EndpointID": ep.id},
                  steps=steps)
        sb = Path(ep.sandbox)
        if _netns.is_netns(sb):
            _netns.in_thread(self._unplumb, ep, sb, steps)
        ep.sandbox, ep.ifname = "", ""

    def _unplumb(self, ep: Endpoint, sb: Path, steps: Steps | None) -> None:
        with _netns.iproute(sb) as s:
            found = s.link_lookup(ifname=ep.ifname)
            if not found:
                return
            fd = os.open(self.node, os.O_RDONLY | os.O_CLOEXEC)
            try:
                s.link("set", index=found[0], state="down")
                s.link("set", index=found[0], ifname=ep.src_name)
                s.link("set", index=found[0], net_ns_fd=fd)
            finally:
                os.close(fd)
        self._op(f"moved {ep.ifname} back to the node as {ep.src_name}", sb, steps)

    # -- the two a user runs --------------------------------------------------------------------
    def connect(self, net: Network, sandbox: str | os.PathLike[str], name: str = "",
                steps: Steps | None = None) -> Endpoint:
        """``docker network connect``: CreateEndpoint then Join (undone if Join fails)."""
        ep = self.create_endpoint(net, name or Path(os.fspath(sandbox)).name, steps)
        try:
            return self.join(ep, sandbox, steps)
        except CnmError:
            self.delete_endpoint(ep)
            raise

    def disconnect(self, ep: Endpoint, steps: Steps | None = None) -> None:
        self.leave(ep, steps)
        self.delete_endpoint(ep, steps)

    def close(self) -> list[str]:
        """Disconnect every endpoint and delete every network this controller made
        (best effort: what the driver refuses is reported, not raised)."""
        done = []
        for net in list(self.networks.values()):
            for ep in list(net.endpoints):
                try:
                    self.disconnect(ep)
                    done.append(f"disconnected {ep.name} from {net.name}")
                except SandboxError as e:
                    done.append(f"disconnect {ep.name}: {e}")
                    net.endpoints.remove(ep)
            try:
                self.delete_network(net)
                done.append(f"deleted network {net.name}")
            except SandboxError as e:
                done.append(f"delete network {net.name}: {e}")
                self.networks.pop(net.id, None)
        return done
