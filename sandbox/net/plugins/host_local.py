"""``host-local``: the IPAM plugin that hands out addresses from ranges and remembers them in
files on the local disk (upstream: containernetworking/plugins plugins/ipam/host-local).

Configuration (the ``ipam`` object of the network config)::

    "ipam": {"type": "host-local",
             "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10",
                          "rangeEnd": "10.1.0.99", "gateway": "10.1.0.1"}],   # range set 0
                        [{"subnet": "fd00::/120"}]],                          # range set 1
             "subnet": "10.2.0.0/24",          # legacy single range (prepended to ranges)
             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/var/lib/cni/networks",
             "resolvConf": "/etc/resolv.conf"}

Each *range set* gives the container one address; within a set the ranges form one pool.
Defaults per range: gateway = network + 1, rangeStart = network + 1 (the gateway is skipped),
rangeEnd = last address (IPv4: broadcast - 1).

On-disk state, byte-compatible with upstream so both can share one ``dataDir``::

    <dataDir>/<network name>/<ip>               "<containerID>\\r\\n<ifname>"  (0644; written whole, then linked)
    <dataDir>/<network name>/last_reserved_ip.N  the last address given from range set N
    <dataDir>/<network name>/lock                empty; flock(2)ed around every change

Allocation is round-robin: it starts after ``last_reserved_ip.N`` and wraps around.
GC (spec 1.1.0 §2 "GC") releases every address whose attachment is not in
``cni.dev/valid-attachments`` — upstream host-local has no GC (plugins#1047).
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os

TYPE_CHECKING = False
# every plugin module starts this way: typing costs ms per plugin exec (annotations are
# strings anyway), and the names come from skel
if TYPE_CHECKING:
    from typing import Any, Iterator

from sandbox.net.plugins.skel import (
    ERR_INTERNAL,
    ERR_INVALID_CONFIG,
    ERR_NOT_AVAILABLE,
    ROUTE,
    CmdArgs,
    CNIError,
    check,
    log,
    plugin_main,
    step,
)

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LAST_IP_PREFIX = "last_reserved_ip."
RESERVING = ".reserving"        # a reservation being written (see Store.reserve)
LINE_BREAK = "\r\n"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- configuration -------------------------------------------------------------------------------

class Range:
    """One pool of addresses inside a subnet; start and end are inclusive."""

    def __init__(self, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network, start: IPAddress,
                 end: IPAddress, gateway: IPAddress) -> None:
        self.subnet, self.start, self.end, self.gateway = subnet, start, end, gateway

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    def __contains__(self, ip: IPAddress) -> bool:
        return ip.version == self.start.version and self.start <= ip <= self.end

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1


def _ip(value: Any, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(value).split("/")[0])
    except ValueError as e:
        raise CNIError(ERR_INVALID_CONFIG, f"invalid IP address {value!r} in {what}") from e


def parse_range(raw: dict[str, Any], where: str) -> Range:
    """Fill in a range's defaults and check it (upstream range.go Canonicalize semantics)."""
    if not isinstance(raw, dict) or "subnet" not in raw:
        raise CNIError(ERR_INVALID_CONFIG, f"{where}: a range needs a subnet",
                       'Write it as {"subnet": "10.1.0.0/24"}.')
    try:
        net = ipaddress.ip_network(str(raw["subnet"]), strict=False)
    except ValueError as e:
        raise CNIError(ERR_INVALID_CONFIG, f"{where}: invalid subnet {raw['subnet']!r}") from e
    if net.prefixlen > net.max_prefixlen - 2:
        raise CNIError(ERR_INTERNAL, f"{where}: Network {net} too small to allocate from",
                       "Use a subnet with at least two usable addresses (e.g. a /30 or larger).")
    gw = _ip(raw["gateway"], where) if raw.get("gateway") else net.network_address + 1
    if gw not in net:
        raise CNIError(ERR_INTERNAL, f"{where}: gateway {gw} not in network {net}")

    def bound(key: str, default: IPAddress) -> IPAddress:
        if not raw.get(key):
            return default
        ip = _ip(raw[key], where)
        if ip.version != net.version or ip not in net:
            raise CNIError(ERR_INTERNAL, f"{where}: {key} {ip} not in network {net}")
        return ip

    last = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
    r = Range(net, bound("rangeStart", net.network_address + 1), bound("rangeEnd", last), gw)
    if r.start > r.end:
        raise CNIError(ERR_INTERNAL, f"{where}: rangeStart {r.start} is after rangeEnd {r.end}")
    return r


class IPAMConfig:
    """host-local's settings: range sets, routes, dataDir, resolvConf, requested IPs (from
    CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips)."""

    def __init__(self, name: str, ranges: list[list[Range]], routes: list[dict[str, Any]],
                 data_dir: str, resolv_conf: str, requested: list[IPAddress]) -> None:
        self.name, self.ranges, self.routes = name, ranges, routes
        self.data_dir, self.resolv_conf, self.requested = data_dir, resolv_conf, requested


def range_set_str(rs: list[Range]) -> str:
    return ",".join(str(r) for r in rs)


_RANGE = {"subnet": str, "rangeStart": str, "rangeEnd": str, "gateway": str}
# the fields host-local reads, with the JSON type upstream's IPAMConfig gives each
SPEC = {"ipam": {"subnet": str, "rangeStart": str, "rangeEnd": str, "gateway": str,
                 "ranges": [[_RANGE]], "routes": [ROUTE], "dataDir": str, "resolvConf": str},
        "args": {"cni": {"ips": [str]}},
        "runtimeConfig": {"ips": [str], "ipRanges": [[_RANGE]]}}


def _routes(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ipam.routes, each dst a CIDR and gw an IP (upstream parses them into net.IPNet/IP)."""
    for i, r in enumerate(raw):
        if not r.get("dst"):
            raise CNIError(ERR_INVALID_CONFIG, f"ipam.routes[{i}] has no dst", 'Write {"dst": "0.0.0.0/0"}.')
        try:
            ipaddress.ip_network(r["dst"], strict=False)
        except ValueError as e:
            raise CNIError(ERR_INVALID_CONFIG, f"ipam.routes[{i}].dst {r['dst']!r} is not a CIDR") from e
        if r.get("gw"):
            _ip(r["gw"], f"ipam.routes[{i}].gw")
    return [dict(r) for r in raw]


def load_config(a: CmdArgs) -> IPAMConfig:
    """The ``ipam`` section plus the runtime's requests (upstream allocator/config.go)."""
    conf = a.conf
    ipam = conf.get("ipam")
    check(conf, SPEC, "")      # shapes first: a number where a string goes is error 6
    if not a.name:
        raise CNIError(ERR_INVALID_CONFIG, "missing network name",
                       "host-local keeps its reservations in <dataDir>/<name>; give the network a name.")
    if not isinstance(ipam, dict):
        raise CNIError(ERR_INTERNAL, "IPAM config missing 'ipam' key",
                       'host-local reads its settings from the "ipam" object of the network config.')
    requested: list[IPAddress] = []
    env = a.cni_args(known=("IP",))
    if env.get("IP"):
        requested += [_ip(x, "CNI_ARGS IP") for x in env["IP"].split(",") if x]
    cni_args = (conf.get("args") or {}).get("cni") or {}
    requested += [_ip(x, "args.cni.ips") for x in cni_args.get("ips") or []]
    rc = conf.get("runtimeConfig") or {}
    requested += [_ip(x, "runtimeConfig.ips") for x in rc.get("ips") or []]

    raw_sets: list[Any] = list(rc.get("ipRanges") or [])
    if ipam.get("subnet"):
        raw_sets.append([{k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in ipam}])
    raw_sets += list(ipam.get("ranges") or [])
    if not raw_sets:
        raise CNIError(ERR_INTERNAL, "no IP ranges specified",
                       'Give host-local "ranges": [[{"subnet": "10.1.0.0/24"}]] or a "subnet".')
    sets: list[list[Range]] = []
    for i, raw in enumerate(raw_sets):
        if not isinstance(raw, list) or not raw:
            raise CNIError(ERR_INVALID_CONFIG, f"range set {i} must be a non-empty list of ranges")
        rs = [parse_range(r, f"invalid range set {i}") for r in raw]
        if len({r.start.version for r in rs}) > 1:
            raise CNIError(ERR_INTERNAL, f"invalid range set {i}: mixed address families")
        sets.append(rs)
    flat = [(i, r) for i, rs in enumerate(sets) for r in rs]
    for x, (i, r1) in enumerate(flat):  # no address may belong to two ranges
        for j, r2 in flat[x + 1:]:
            if r1.start.version == r2.start.version and r1.start <= r2.end and r2.start <= r1.end:
                what = f"range set {i} overlaps with {j}" if i != j else f"invalid range set {i}: subnets {r1} and {r2} overlap"
                raise CNIError(ERR_INTERNAL, what)
    return IPAMConfig(name=a.name, ranges=sets, routes=_routes(ipam.get("routes") or []),
                      data_dir=str(ipam.get("dataDir") or DEFAULT_DATA_DIR),
                      resolv_conf=str(ipam.get("resolvConf") or ""), requested=requested)


# -- the disk store (upstream backend/disk) ------------------------------------------------------

class Store:
    """One network's directory of reservations, guarded by an flock on ``lock``.

    Use as a context manager: the lock is held inside the ``with`` block. Upstream's
    host-local takes the same lock, so the two can allocate from one directory concurrently."""

    def __init__(self, data_dir: str | os.PathLike[str], network: str) -> None:
        self.dir = os.path.join(os.fspath(data_dir), network)
        self._fd = -1

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def __enter__(self) -> "Store":
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        # go-filemutex opens the lock file O_CREAT|O_RDONLY with mode 0750
        self._fd = os.open(self.path("lock"), os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o750)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing drops the flock
        self._fd = -1

    @staticmethod
    def key(container_id: str, ifname: str) -> str:
        return container_id.strip() + LINE_BREAK + ifname

    def reserve(self, container_id: str, ifname: str, ip: IPAddress, range_id: int) -> bool:
        """Make ``<dir>/<ip>`` hold the key, exclusively; False if someone holds it already.

        The key is written under a temporary name first and then linked into place (link(2)
        fails when the name exists, as O_EXCL does): a plugin killed half-way never leaves an
        empty reservation that no DEL could match to its container."""
        tmp = self.path(RESERVING)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, self.key(container_id, ifname).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.path(str(ip)))
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        step("write", self.path(str(ip)), content=self.key(container_id, ifname),
             note="the reservation: one file per address")
        fd = os.open(self.path(f"{LAST_IP_PREFIX}{range_id}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     0o644)
        os.write(fd, str(ip).encode())
        os.close(fd)
        step("write", self.path(f"{LAST_IP_PREFIX}{range_id}"), content=str(ip),
             note="where the next search starts")
        return True

    def last_reserved(self, range_id: int) -> IPAddress | None:
        try:
            with open(self.path(f"{LAST_IP_PREFIX}{range_id}"), "rb") as f:
                return ipaddress.ip_address(f.read().decode().strip())
        except (OSError, ValueError):
            return None

    def entries(self) -> Iterator[tuple[str, str]]:
        """(file name = IP, stripped content) of every reservation file."""
        for name in sorted(os.listdir(self.dir)):
            if name == "lock" or name.startswith(LAST_IP_PREFIX):
                continue
            try:
                ipaddress.ip_address(name)
                with open(self.path(name), "rb") as f:
                    yield name, f.read().decode(errors="replace").strip()
            except (ValueError, OSError):
                continue

    def _matching(self, container_id: str, ifname: str) -> list[str]:
        entries = list(self.entries())
        new = [n for n, c in entries if c == self.key(container_id, ifname)]
        # files written by host-local before 0.8 hold the container ID only
        return new or [n for n, c in entries if c == container_id.strip()]

    def get_by_id(self, container_id: str, ifname: str) -> list[IPAddress]:
        return [ipaddress.ip_address(n) for n in self._matching(container_id, ifname)]

    def _unlink(self, names: list[str]) -> list[IPAddress]:
        gone = []
        for n in names:
            try:
                os.unlink(self.path(n))
                step("unlink", self.path(n), note="the address is free again")
                gone.append(ipaddress.ip_address(n))
            except FileNotFoundError:
                pass
        return gone

    def release_by_id(self, container_id: str, ifname: str) -> list[IPAddress]:
        # under the lock, a temporary reservation file can only be one a killed ADD left
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(RESERVING))
        return self._unlink(self._matching(container_id, ifname))

    def gc(self, valid: set[tuple[str, str]]) -> list[IPAddress]:
        """Release every address whose (containerID, ifname) is not in ``valid``."""
        valid_ids = {cid for cid, _ in valid}
        stale = []
        for n, content in self.entries():
            cid, sep, ifname = content.partition(LINE_BREAK)
            if not ((cid, ifname) in valid if sep else cid in valid_ids):
                stale.append(n)
        return self._unlink(stale)


def _candidates(rs: list[Range], last: IPAddress | None) -> Iterator[tuple[Range, IPAddress]]:
    """Every address of a range set once, round-robin: starting right after ``last`` (when it
    lies in the set), wrapping from the end of one range to the start of the next."""
    total = sum(r.size for r in rs)
    offset = 0  # position in the concatenation of all ranges
    if last is not None:
        base = 0
        for r in rs:
            if last in r:
                offset = base + (int(last) - int(r.start)) + 1
                break
            base += r.size
    for n in range(total):
        pos = (offset + n) % total
        for r in rs:
            if pos < r.size:
                yield r, ipaddress.ip_address(int(r.start) + pos) if r.start.version == 4 \
                    else ipaddress.IPv6Address(int(r.start) + pos)
                break
            pos -= r.size


def allocate(store: Store, container_id: str, ifname: str, range_id: int, rs: list[Range],
             requested: IPAddress | None) -> dict[str, Any]:
    """One address from range set ``range_id`` (the caller holds the store lock)."""
    if requested is not None:
        r = next((r for r in rs if requested in r), None)
        if r is None:
            raise CNIError(ERR_INTERNAL, f"{requested} not in range set {range_set_str(rs)}")
        if requested == r.gateway:
            raise CNIError(ERR_INTERNAL, f"requested ip {requested} is subnet's gateway")
        if not store.reserve(container_id, ifname, requested, range_id):
            raise CNIError(ERR_INTERNAL, f"requested IP address {requested} is not available in "
                           f"range set {range_set_str(rs)}")
        return {"address": f"{requested}/{r.subnet.prefixlen}", "gateway": str(r.gateway)}
    for ip in store.get_by_id(container_id, ifname):
        if any(ip in r for r in rs):  # the spec forbids a second ADD for one attachment
            raise CNIError(ERR_INTERNAL, f"{ip} has been allocated to {container_id}, duplicate "
                           "allocation is not allowed")
    last = store.last_reserved(range_id)
    for r, ip in _candidates(rs, last):
        if ip == r.gateway:
            continue
        if store.reserve(container_id, ifname, ip, range_id):
            return {"address": f"{ip}/{r.subnet.prefixlen}", "gateway": str(r.gateway)}
    raise CNIError(ERR_INTERNAL, f"no IP addresses available in range set: {range_set_str(rs)}",
                   f"Every address is reserved by a file in {store.dir}. Release addresses of "
                   "containers that are gone with DEL (or GC), or use a larger subnet.")


def parse_resolv_conf(path: str) -> dict[str, Any]:
    """The DNS part of a result from a resolv.conf file (nameserver, domain, search, options)."""
    dns: dict[str, Any] = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CNIError(ERR_INTERNAL, f"cannot read resolvConf {path}: {e.strerror}") from e
    for line in lines:
        f = line.split("#")[0].split()
        if len(f) < 2:
            continue
        if f[0] == "nameserver":
            dns.setdefault("nameservers", []).append(f[1])
        elif f[0] == "domain":
            dns["domain"] = f[1]
        elif f[0] == "search":
            dns["search"] = f[1:]
        elif f[0] == "options":
            dns.setdefault("options", []).extend(f[1:])
    return dns


# -- the commands ------------------------------------------------------------------------------

def cmd_add(a: CmdArgs) -> dict[str, Any]:
    c = load_config(a)
    result: dict[str, Any] = {"ips": [], "routes": c.routes, "dns": {}}
    if c.resolv_conf:
        result["dns"] = parse_resolv_conf(c.resolv_conf)
    requested = list(c.requested)
    with Store(c.data_dir, c.name) as store:
        try:
            for idx, rs in enumerate(c.ranges):
                want = next((ip for ip in requested if any(ip in r for r in rs)), None)
                if want is not None:
                    requested.remove(want)
                try:
                    result["ips"].append(allocate(store, a.container_id, a.ifname, idx, rs, want))
                except CNIError as e:
                    e.msg = f"failed to allocate for range {idx}: {e.msg}"
                    raise
            if requested:
                raise CNIError(ERR_INTERNAL, "failed to allocate all requested IPs: "
                               + " ".join(str(ip) for ip in requested))
        except BaseException:    # whatever failed, the addresses this call reserved go back
            store._unlink([ip["address"].split("/")[0] for ip in result["ips"]])
            raise
    return result


def _store_of(a: CmdArgs, cmd: str) -> Store | None:
    """The reservation store DEL and GC work on. They find reservations by container ID and
    ifname: they need the network's name and dataDir, not its ranges. A config whose ranges
    cannot be read (a /33 subnet) could never have been ADDed, and DEL and GC of it must still
    succeed (SPEC.md "DEL": complete without error even if resources are missing) so that a
    runtime can clean up after it; upstream's host-local fails there."""
    try:
        c = load_config(a)
        return Store(c.data_dir, c.name)
    except CNIError as e:
        ipam = a.conf.get("ipam")
        data_dir = ipam.get("dataDir") if isinstance(ipam, dict) else None
        if not a.name or not isinstance(ipam, dict) or not isinstance(data_dir or "", str):
            raise
        store = Store(data_dir or DEFAULT_DATA_DIR, a.name)
        if not os.path.isdir(store.dir):
            return None         # nothing was ever reserved: nothing to do (and nothing made)
        log("host-local", f"{cmd} despite an invalid config ({e.msg}): by container ID only")
        return store


def cmd_del(a: CmdArgs) -> None:
    store = _store_of(a, "DEL")
    if store is not None:
        with store:
            store.release_by_id(a.container_id, a.ifname)  # none found is fine: idempotent


def cmd_check(a: CmdArgs) -> None:
    c = load_config(a)
    with Store(c.data_dir, c.name) as store:
        if not store.get_by_id(a.container_id, a.ifname):
            raise CNIError(ERR_INTERNAL, f"host-local: Failed to find address added by container {a.container_id}",
                           f"No file in {store.dir} holds this container ID and interface.")


def valid_attachments(conf: dict[str, Any]) -> set[tuple[str, str]]:
    """The GC keep-list. Spec text 1.1.0 names it ``cni.dev/attachments``; the spec at HEAD and
    libcni use ``cni.dev/valid-attachments`` (cni#1101). Both are read."""
    out: set[tuple[str, str]] = set()
    for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):
        for att in conf.get(key) or []:
            if isinstance(att, dict):
                out.add((str(att.get("containerID", "")), str(att.get("ifname", ""))))
    return out


def cmd_gc(a: CmdArgs) -> None:
    store = _store_of(a, "GC")
    if store is None:
        return
    with store:
        gone = store.gc(valid_attachments(a.conf))
    if gone:
        log("host-local", f"GC released {' '.join(map(str, gone))}")


def cmd_status(a: CmdArgs) -> None:
    c = load_config(a)
    probe = os.path.abspath(c.data_dir)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CNIError(ERR_NOT_AVAILABLE, f"host-local cannot write its dataDir {c.data_dir}",
                       "Run the plugin as root or point ipam.dataDir at a writable directory.")


HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}


def main() -> None:
    plugin_main("host-local", HANDLERS)


if __name__ == "__main__":
    main()
