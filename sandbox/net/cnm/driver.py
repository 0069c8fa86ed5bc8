"""A CNM remote driver: a long-running service answering libnetwork's HTTP+JSON protocol on a
unix socket (:mod:`sandbox.net.cnm.api`). One process is both drivers:

* ``NetworkDriver`` — a bridge driver. CreateNetwork makes a bridge with the gateway address;
  Join makes a veth pair, plugs one end into the bridge and *names the other end* in its reply;
  DeleteEndpoint removes the pair; Program/RevokeExternalConnectivity add and remove source NAT
  (the same ipMasq rules the CNI bridge writes, :mod:`sandbox.net.plugins.ipmasq`, keyed by
  network and endpoint ID). Everything happens in the netns the driver runs in — the *node*.
  The driver never opens the container's netns (``SandboxKey``): libnetwork moves the interface
  and configures it (slide 56, "Linux networking features restricted to API").
* ``IpamDriver`` — pools and addresses, kept in the driver's own memory ("it is the remote
  driver's responsibility to manage its database", docs/ipam.md), written to ``state.json``.

Run it inside a node netns with :func:`spawn` (or ``python -m sandbox.net.cnm.driver --socket
PATH``). Every request, reply and kernel action goes to the JSON-lines ``log`` with the inode of
the netns it acted in, so a learner can check where each change was made.

Subclass :class:`BridgeDriver` to change one method (lab "complete Join"): each protocol method
is a method named like the URL, taking the request dict and returning the reply dict.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

from sandbox import bounded
from sandbox._sys import proc as _proc
from sandbox.errors import SandboxError
from sandbox.net.cnm import api

DST_PREFIX = "eth"                     # libnetwork appends an index: eth0, eth1, …
DEFAULT_POOLS = [f"10.{n}.0.0/24" for n in range(200, 250)]   # IPAM's choice when none is asked


class DriverError(Exception):
    """An error the driver reports to libnetwork as {"Err": …} (HTTP 500)."""


class CnmDriverError(SandboxError):
    """The driver process could not be started or stopped."""


def _ns_inode() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


class BridgeDriver:
    """The handlers. ``handle(path, body)`` dispatches ``/NetworkDriver.Join`` to ``Join``."""

    implements = [api.NETWORK_DRIVER, api.IPAM_DRIVER]
    scope = "local"

    def __init__(self, state_dir: Path, log: Callable[..., None] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.log = log or (lambda *a, **k: None)
        self.networks: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self._ipr: Any = None

    # -- plumbing -------------------------------------------------------------------------
    @property
    def ipr(self) -> Any:
        """A netlink socket in the driver's own netns (the node)."""
        if self._ipr is None:
            from pyroute2 import IPRoute
            self._ipr = IPRoute()
        return self._ipr

    def kernel(self, action: str, **detail: Any) -> None:
        """Log one change the driver made to the kernel, with the netns it made it in."""
        self.log("kernel", action=action, netns_inode=_ns_inode(), **detail)

    def save(self) -> None:
        """The driver's database, for the curious (and the troubleshooting lab)."""
        tmp = self.state_dir / ".state.json.tmp"
        tmp.write_text(json.dumps({"networks": self.networks, "endpoints": self.endpoints,
                                   "pools": self.pools}, indent=1, sort_keys=True))
        tmp.replace(self.state_dir / "state.json")

    def handle(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to ``POST path`` (None = not implemented: 404). The body's fields have
        their protocol types (api.REQUEST_SHAPE) and IDs are names (api.ID_PATTERN) before a
        method sees them: a list as NetworkID was "TypeError: unhashable type: 'list'", a
        string as IPv4Data an AttributeError, "../x" a NetlinkError."""
        import re
        if path not in api.BY_PATH:      # only the protocol's URLs reach a method
            return None
        iface, _, method = path.lstrip("/").partition(".")
        if iface not in ("Plugin", *self.implements):
            return None
        fn = getattr(self, f"{iface}_{method}", None) or (
            getattr(self, method, None) if iface == api.NETWORK_DRIVER else None)
        if fn is None or not callable(fn):
            return None
        problem = bounded.shape_problem(body, api.REQUEST_SHAPE, "")
        if problem:
            raise DriverError(f"bad request: {problem}")
        for key in ("NetworkID", "EndpointID"):
            v = body.get(key)
            if v and not re.match(api.ID_PATTERN, v):
                raise DriverError(f"bad request: {key} {v[:80]!r} is not an ID (letters, digits, "
                                  "'_', '.', '-'; at most 128)")
        try:
            reply = fn(body)
        except ValueError as e:          # an address or a pool that is not one (ipaddress)
            raise DriverError(f"bad request: {e}") from e
        self.save()
        return reply

    def network(self, req: dict[str, Any]) -> dict[str, Any]:
        nid = req.get("NetworkID")
        if nid not in self.networks:
            raise DriverError(f"network {nid} not found")
        return self.networks[nid]

    def endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        self.network(req)
        eid = req.get("EndpointID")
        if eid not in self.endpoints:
            raise DriverError(f"endpoint {eid} not found")
        return self.endpoints[eid]

    def link_index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    # -- Plugin / capabilities ----------------------------------------------------------------
    def Plugin_Activate(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"Implements": list(self.implements)}

    def GetCapabilities(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"Scope": self.scope, "ConnectivityScope": self.scope}

    # -- networks ---------------------------------------------------------------------------
    def AllocateNetwork(self, req: dict[str, Any]) -> dict[str, Any]:
        # swarm managers only; a local driver has nothing cluster-wide to reserve
        return {"Options": {}}

    def FreeNetwork(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}

    def CreateNetwork(self, req: dict[str, Any]) -> dict[str, Any]:
        nid = req.get("NetworkID") or ""
        if not nid or nid in self.networks:
            raise DriverError(f"network ID {nid!r} is empty or exists already")
        v4 = (req.get("IPv4Data") or [{}])[0] or {}
        gateway = v4.get("Gateway") or ""
        if not gateway:
            raise DriverError("this bridge driver needs a gateway in IPv4Data")
        bridge = f"sbxbr{nid[:7]}"
        self.ipr.link("add", ifname=bridge, kind="bridge")
        idx = self.link_index(bridge)
        gw = ipaddress.ip_interface(gateway)
        self.ipr.addr("add", index=idx, address=str(gw.ip), prefixlen=gw.network.prefixlen)
        self.ipr.link("set", index=idx, state="up")
        self.kernel("bridge created, gateway address on it, up", bridge=bridge, gateway=gateway)
        self.networks[nid] = {"bridge": bridge, "pool": v4.get("Pool"), "gateway": gateway}
        return {}

    def DeleteNetwork(self, req: dict[str, Any]) -> dict[str, Any]:
        net = self.network(req)
        if any(e["network"] == req["NetworkID"] for e in self.endpoints.values()):
            raise DriverError(f"network {req['NetworkID']} still has endpoints")
        idx = self.link_index(net["bridge"])
        if idx is not None:
            self.ipr.link("del", index=idx)
            self.kernel("bridge deleted", bridge=net["bridge"])
        del self.networks[req["NetworkID"]]
        return {}

    # -- endpoints --------------------------------------------------------------------------
    def CreateEndpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        self.network(req)
        eid = req.get("EndpointID") or ""
        if not eid or eid in self.endpoints:
            raise DriverError(f"endpoint ID {eid!r} is empty or exists already")
        given = req.get("Interface") or {}
        if not given.get("Address"):
            raise DriverError("no IPv4 address in Interface (the IPAM driver gives it)")
        ipaddress.ip_interface(given["Address"])    # it goes into NAT rules: an address
        reply: dict[str, Any] = {}
        mac = given.get("MacAddress") or ""
        if not mac:   # fill the empty field only (overriding a given one is rolled back)
            mac = "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))
            reply = {"Interface": {"MacAddress": mac}}
        self.endpoints[eid] = {"network": req["NetworkID"], "address": given["Address"],
                               "mac": mac, "host_veth": f"sbx{eid[:8]}h",
                               "sandbox_veth": f"sbx{eid[:8]}c", "joined": ""}
        return reply

    def EndpointOperInfo(self, req: dict[str, Any]) -> dict[str, Any]:
        ep = self.endpoint(req)
        return {"Value": {"bridge": self.networks[ep["network"]]["bridge"],
                          "host veth": ep["host_veth"], "mac": ep["mac"]}}

    def DeleteEndpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        ep = self.endpoint(req)
        # After Leave libnetwork has put the interface back here under its SrcName; deleting
        # either end of a veth pair deletes both.
        for name in (ep["host_veth"], ep["sandbox_veth"]):
            idx = self.link_index(name)
            if idx is not None:
                self.ipr.link("del", index=idx)
                self.kernel("veth pair deleted", veth=name)
                break
        del self.endpoints[req["EndpointID"]]
        return {}

    def Join(self, req: dict[str, Any]) -> dict[str, Any]:
        ep = self.endpoint(req)
        net = self.networks[ep["network"]]
        # The SandboxKey (the container's netns path) is only recorded: configuring the
        # sandbox is libnetwork's job.
        self.ipr.link("add", ifname=ep["host_veth"], kind="veth", peer={"ifname": ep["sandbox_veth"]})
        host = self.link_index(ep["host_veth"])
        self.ipr.link("set", index=host, master=self.link_index(net["bridge"]), state="up")
        self.kernel("veth pair created, host end on the bridge and up, other end left here",
                    host_end=ep["host_veth"], other_end=ep["sandbox_veth"], bridge=net["bridge"])
        ep["joined"] = req.get("SandboxKey", "")
        return {"InterfaceName": {"SrcName": ep["sandbox_veth"], "DstPrefix": DST_PREFIX},
                "Gateway": str(ipaddress.ip_interface(net["gateway"]).ip),
                "StaticRoutes": [], "DisableGatewayService": False}

    def Leave(self, req: dict[str, Any]) -> dict[str, Any]:
        ep = self.endpoint(req)
        ep["joined"] = ""
        return {}

    def ProgramExternalConnectivity(self, req: dict[str, Any]) -> dict[str, Any]:
        from sandbox.net.plugins import ipmasq
        ep = self.endpoint(req)
        ipmasq.setup(req["NetworkID"], req["EndpointID"], [{"address": ep["address"]}]).wait()
        self.kernel("source NAT for the endpoint's address (configured, never exercised here)",
                    chain=ipmasq.chain_name(req["NetworkID"], req["EndpointID"]))
        return {}

    def RevokeExternalConnectivity(self, req: dict[str, Any]) -> dict[str, Any]:
        from sandbox.net.plugins import ipmasq
        self.endpoint(req)
        ipmasq.teardown(req["NetworkID"], req["EndpointID"], families=(4,))
        self.kernel("source NAT removed", chain=ipmasq.chain_name(req["NetworkID"], req["EndpointID"]))
        return {}

    def DiscoverNew(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}

    def DiscoverDelete(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- IPAM (docs/ipam.md) ------------------------------------------------------------------
    def IpamDriver_GetCapabilities(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    def IpamDriver_GetDefaultAddressSpaces(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": "sbx-local", "GlobalDefaultAddressSpace": "sbx-global"}

    def IpamDriver_RequestPool(self, req: dict[str, Any]) -> dict[str, Any]:
        space = req.get("AddressSpace") or ""
        if not space:
            raise DriverError("AddressSpace is required")
        if req.get("V6"):
            raise DriverError("this IPAM driver has no IPv6 pools")
        pool, sub = req.get("Pool") or "", req.get("SubPool") or ""
        if sub and not pool:
            raise DriverError("a SubPool needs a Pool")
        if not pool:   # the driver's choice: the first default pool nobody uses
            used = {p["pool"] for p in self.pools.values()}
            pool = next((p for p in DEFAULT_POOLS if p not in used), "")
            if not pool:
                raise DriverError("no default pool left")
        try:
            net = ipaddress.ip_network(pool)
            rng = ipaddress.ip_network(sub) if sub else net
        except ValueError as e:
            raise DriverError(f"bad pool: {e}") from e
        if net.version != 4 or not rng.subnet_of(net):
            raise DriverError(f"{sub or pool} is not an IPv4 range inside {pool}")
        pid = f"{space}/{net}" + (f"/{rng}" if sub else "")
        if pid in self.pools:   # the same request twice gives the same pool; count references
            self.pools[pid]["refs"] += 1
        else:
            for other in self.pools.values():
                if other["space"] == space and ipaddress.ip_network(other["pool"]).overlaps(net):
                    raise DriverError(f"pool {net} overlaps {other['pool']} in {space}")
            self.pools[pid] = {"space": space, "pool": str(net), "range": str(rng),
                               "refs": 1, "allocated": []}
        return {"PoolID": pid, "Pool": str(net), "Data": {}}

    def IpamDriver_ReleasePool(self, req: dict[str, Any]) -> dict[str, Any]:
        pid = req.get("PoolID")
        if pid not in self.pools:
            raise DriverError(f"pool {pid} not found")
        self.pools[pid]["refs"] -= 1
        if self.pools[pid]["refs"] <= 0:
            del self.pools[pid]
        return {}

    def IpamDriver_RequestAddress(self, req: dict[str, Any]) -> dict[str, Any]:
        pool = self.pools.get(req.get("PoolID"))
        if pool is None:
            raise DriverError(f"pool {req.get('PoolID')} not found")
        net, rng = ipaddress.ip_network(pool["pool"]), ipaddress.ip_network(pool["range"])
        want = req.get("Address") or ""
        if want:
            try:
                ip = ipaddress.ip_address(want)
            except ValueError as e:
                raise DriverError(f"{want!r} is not an IP address") from e
            if ip not in net or ip in (net.network_address, net.broadcast_address):
                raise DriverError(f"{ip} is not a host address of {net}")
            if str(ip) in pool["allocated"]:
                raise DriverError(f"address {ip} is already allocated")
        else:
            ip = next((h for h in rng.hosts() if str(h) not in pool["allocated"]), None)
            if ip is None:
                raise DriverError(f"no free address left in {rng}")
        pool["allocated"].append(str(ip))
        return {"Address": f"{ip}/{net.prefixlen}", "Data": {}}

    def IpamDriver_ReleaseAddress(self, req: dict[str, Any]) -> dict[str, Any]:
        pool = self.pools.get(req.get("PoolID"))
        if pool is None:
            raise DriverError(f"pool {req.get('PoolID')} not found")
        addr = (req.get("Address") or "").split("/")[0]
        if addr not in pool["allocated"]:
            raise DriverError(f"address {addr} is not allocated in {pool['pool']}")
        pool["allocated"].remove(addr)
        return {}


# -- the HTTP server on a unix socket ------------------------------------------------------------

class _Handler(bounded.TimedRequests, BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    # The server answers one request at a time: a client that connects and stops sending
    # (or announces a body it never sends) held every other caller for ever. Each read waits at
    # most CNM_REQUEST_SECONDS, and so does the whole request, body included.
    request_limit = bounded.CNM_REQUEST_SECONDS
    request_what = "a request to the driver"

    def address_string(self) -> str:   # a unix socket has no client address to log
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass                            # the JSON log says more

    def _reply(self, status: int, body: bytes, ctype: str = api.CONTENT_TYPE) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        driver, log = self.server.driver, self.server.log
        # RFC 9110 §8.6: 1*DIGIT (int() also takes "+1", "1_0" and refuses 4300 digits)
        length = bounded.plain_int((self.headers.get("Content-Length") or "0").strip())
        if length is None:
            length = -1
        if length < 0 or length > api.MAX_BODY:
            self.close_connection = True
            self._reply(413, json.dumps({"Err": f"request body must be 0..{api.MAX_BODY} bytes"}).encode())
            return
        raw = self.rfile.read(length) if length else b""
        if len(raw) != length:          # the client went away, or its deadline cut it off
            self.close_connection = True
            log("request", path=self.path, error="the body ended early")
            return
        try:
            body = bounded.loads(raw, "the request body") if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as e:
            log("request", path=self.path, error=f"bad JSON: {e}")
            self._reply(400, json.dumps({"Err": f"cannot decode the request: {e}"}).encode())
            return
        log("request", path=self.path, body=body)
        t0 = time.perf_counter()
        try:
            reply = driver.handle(self.path, body)
        except DriverError as e:
            log("reply", path=self.path, status=500, body={"Err": str(e)})
            self._reply(500, json.dumps({"Err": str(e)}).encode())
            return
        except Exception as e:  # noqa: BLE001 - a driver bug is still one answer, not a hang
            msg = f"{type(e).__name__}: {e}"
            log("reply", path=self.path, status=500, body={"Err": msg})
            self._reply(500, json.dumps({"Err": msg}).encode())
            return
        if reply is None:
            log("reply", path=self.path, status=404)
            self._reply(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        log("reply", path=self.path, status=200, body=reply,
            ms=round((time.perf_counter() - t0) * 1000, 1))
        self._reply(200, json.dumps(reply).encode())


class _Server(socketserver.UnixStreamServer):
    def __init__(self, path: str, driver: BridgeDriver, log: Callable[..., None],
                 parent: int | None = None) -> None:
        self.driver, self.log, self.parent = driver, log, parent
        super().__init__(path, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a caller that hangs up before its answer, or is cut off: a log line, not a traceback
        # in driver.stderr
        import sys
        self.log("connection dropped", error=f"{sys.exc_info()[0].__name__}")

    def service_actions(self) -> None:
        # Called between requests (every poll interval): a driver started for a notebook, a
        # lab or a test goes when the process that started it is gone (a kernel that died),
        # instead of running on in a node netns nobody can reach any more.
        if self.parent is not None and os.getppid() != self.parent:
            self.log("parent gone", parent=self.parent)
            threading.Thread(target=self.shutdown).start()
            self.parent = None


def serve(socket_path: str | os.PathLike[str], driver_class: type[BridgeDriver] = BridgeDriver,
          state_dir: str | os.PathLike[str] | None = None,
          log_path: str | os.PathLike[str] | None = None, exit_with_parent: bool = False) -> None:
    """Answer the protocol on ``socket_path`` until SIGTERM/SIGINT — or, with
    ``exit_with_parent``, until the process that started it is gone — then remove the socket."""
    import signal
    sock = Path(socket_path)
    state = Path(state_dir) if state_dir else sock.parent
    logf = open(log_path or state / "driver.log", "a", buffering=1)

    def log(kind: str, **detail: Any) -> None:
        logf.write(json.dumps({"t": round(time.time(), 6), "kind": kind, **detail}) + "\n")

    driver = driver_class(state, log)
    driver.save()
    server = _Server(str(sock), driver, log, os.getppid() if exit_with_parent else None)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown).start()   # shutdown() waits for serve_forever

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("listening", socket=str(sock), pid=os.getpid(), netns_inode=_ns_inode())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        sock.unlink(missing_ok=True)
        log("stopped")
        logf.close()


def main(argv: list[str] | None = None, driver_class: type[BridgeDriver] = BridgeDriver) -> int:
    """``--socket PATH [--state DIR]``. A driver of one's own (a subclass in a file) ends with
    ``sys.exit(main(driver_class=MyDriver))`` and is started with ``spawn(…, script=FILE)``."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m sandbox.net.cnm.driver",
                                description="A CNM remote driver (bridge + IPAM) on a unix socket.")
    p.add_argument("--socket", required=True, help="the unix socket to listen on")
    p.add_argument("--state", help="directory for state.json and driver.log (default: the socket's)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the process that started this one is gone")
    a = p.parse_args(argv)
    serve(a.socket, driver_class, a.state, exit_with_parent=a.exit_with_parent)
    return 0


# -- starting and stopping it, for notebooks, labs and tests --------------------------------------

class DriverProcess:
    """A running driver: its process, socket, state directory and log."""

    def __init__(self, proc: subprocess.Popen, socket_path: Path, state_dir: Path) -> None:
        self.proc, self.socket, self.state_dir = proc, socket_path, state_dir

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.state_dir / "driver.log"

    def log(self) -> list[dict[str, Any]]:
        """Every line the driver logged so far (requests, replies, kernel actions)."""
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the driver (by its PID) and wait; SIGKILL if it does not go."""
        _proc.end(self.proc, timeout)
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> "DriverProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def spawn(socket_path: str | os.PathLike[str], node: str | os.PathLike[str], *,
          state_dir: str | os.PathLike[str] | None = None,
          script: str | os.PathLike[str] | None = None, timeout: float = 15.0) -> DriverProcess:
    """Start a driver process inside the ``node`` netns, listening on ``socket_path``; return
    once it accepts connections. It stops with SIGTERM (:meth:`DriverProcess.stop`), and by
    itself when this process is gone (a kernel that died). ``script``: a Python file that runs :func:`main` with its own
    :class:`BridgeDriver` subclass (a learner's driver); default: this module's driver."""
    from sandbox.net import netns
    sock = Path(socket_path)
    state = Path(state_dir) if state_dir else sock.parent
    state.mkdir(parents=True, exist_ok=True)
    if len(os.fsencode(sock)) > 107:
        raise CnmDriverError(f"The socket path {sock} is too long for a unix socket.",
                             hint="Use a shorter directory (at most 107 bytes in all).")
    if sock.exists():
        raise CnmDriverError(f"{sock} exists already: is another driver listening there?",
                             hint="Stop it, or pick another socket path.")
    argv = ([sys.executable, str(script)] if script else
            [sys.executable, "-m", "sandbox.net.cnm.driver"]) + ["--socket", str(sock),
                                                                 "--state", str(state),
                                                                 "--exit-with-parent"]
    pre = netns.preexec_setns(node)
    err = open(state / "driver.stderr", "ab")
    try:
        proc = subprocess.Popen(argv, preexec_fn=pre, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        os.close(pre.fd)
        err.close()
    d = DriverProcess(proc, sock, state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state / "driver.stderr").read_text(errors="replace").strip().splitlines()[-3:]
            raise CnmDriverError(f"The CNM driver exited with status {proc.returncode} before "
                                 f"listening: {' / '.join(tail) or 'no output'}.")
        if sock.exists():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(sock))
                return d
            except OSError:
                pass
        time.sleep(0.02)
    d.stop()
    raise CnmDriverError(f"The CNM driver did not listen on {sock} within {timeout:g} s.")


if __name__ == "__main__":
    sys.exit(main())
