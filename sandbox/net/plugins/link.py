"""Links, addresses, routes and sysctls for the plugins, through pyroute2 (netlink), plus
entering the container's network namespace with setns(2).

How a plugin works in two namespaces: it runs in the runtime's ("node") netns. To act on the
container it opens ``CNI_NETNS``, calls setns(2) on it, opens a netlink socket (the socket stays
bound to the netns it was created in), and calls setns(2) back. Both sockets are then used side
by side. A plugin process is single-threaded, so switching the thread is safe here.

Start-up cost matters (one exec per call): the netlink sockets are ``rtnl.RTNL`` objects, a
small synchronous client on pyroute2's message classes (pyroute2's own IPRoute runs on
asyncio, whose import and event loop cost more than the plugin's actual work).
"""
from __future__ import annotations

import contextlib
import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ms per plugin exec; annotations are strings anyway
    from typing import Any, Iterator

from sandbox.net.plugins.skel import ERR_INTERNAL, ERR_INVALID_CONFIG, CNIError

IFF_PROMISC = 0x100
AF_INET, AF_INET6 = 2, 10
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what iproute2 and Go's netlink put on routes they add (pyroute2 says static)


def check_mtu(mtu: int) -> int:
    """An MTU a link can have: 0 (the kernel's default) or 68..65535 (RFC 791 minimum for IPv4,
    the largest a netlink u16 field holds); error 7 otherwise, before any link is made."""
    if mtu and not 68 <= mtu <= 65535:
        raise CNIError(ERR_INVALID_CONFIG, f"invalid mtu {mtu}",
                       "Give an MTU between 68 and 65535, or leave it out for the default.")
    return mtu


def check_mac(mac: str) -> None:
    """A MAC address as ``ip link`` writes it (six hex pairs with ':'), or "" for none."""
    parts = mac.split(":") if mac else []
    if mac and (len(parts) != 6 or any(len(p) != 2 or not all(c in "0123456789abcdefABCDEF"
                                                                  for c in p) for p in parts)):
        raise CNIError(ERR_INVALID_CONFIG, f"invalid MAC address {mac!r}",
                       "Write a MAC like 0a:58:0a:01:00:05.")


def setns(fd: int) -> None:
    """setns(2) into a network namespace (ctypes is loaded on first use: host-local never
    needs it)."""
    from sandbox._sys import libc

    libc.setns(fd, libc.CLONE_NEWNET)


def netlink_error() -> type[Exception]:
    from sandbox.net.plugins.rtnl import NetlinkError

    return NetlinkError


def iproute() -> Any:
    """A netlink socket in the calling thread's current netns (see ``rtnl``)."""
    from sandbox.net.plugins.rtnl import RTNL

    return RTNL()


class NetnsGone(CNIError):
    """CNI_NETNS does not exist (any more)."""


def open_netns(path: str) -> int:
    """An fd for the netns at ``path`` (NetnsGone if it is missing or not a netns)."""
    from sandbox._sys import libc      # (setns needs it next anyway)
    try:
        fd = libc.open_ns(path)         # a FIFO as CNI_NETNS blocked the plugin for ever
    except FileNotFoundError as e:
        raise NetnsGone(ERR_INTERNAL, f"failed to open netns {path!r}: it does not exist") from e
    except OSError as e:
        raise NetnsGone(ERR_INTERNAL, f"failed to open netns {path!r}: {e.strerror} (is it a "
                                      "network namespace?)") from e
    try:
        os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def entered(fd: int) -> Iterator[None]:
    """Run the block inside the netns ``fd`` (setns(2) there and back)."""
    me = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            setns(fd)
        except OSError as e:
            raise NetnsGone(ERR_INTERNAL, f"failed to enter netns: {e.strerror} (is it a network namespace?)") from e
        try:
            yield
        finally:
            setns(me)
    finally:
        os.close(me)


def iproute_in(fd: int) -> Any:
    """A netlink socket bound to the netns ``fd``."""
    with entered(fd):
        return iproute()


def sysctl(key: str, value: str) -> bool:
    """Write a sysctl of the current netns (``net/ipv4/ip_forward``); False if it is absent."""
    try:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
        return True
    except FileNotFoundError:
        return False


def enable_forwarding(ips: list[dict[str, Any]]) -> None:
    """ip_forward=1 in the node for each address family in use (upstream ip.EnableForward)."""
    fams = {":" in ip["address"] for ip in ips}
    if False in fams:
        sysctl("net/ipv4/ip_forward", "1")
    if True in fams:
        sysctl("net/ipv6/conf/all/forwarding", "1")


# -- reading ---------------------------------------------------------------------------------

def link_by_name(ipr: Any, name: str) -> Any | None:
    """The link message of ``name`` (one RTM_GETLINK), None if there is no such link."""
    return ipr.get_link(name)


def kind(link: Any) -> str | None:
    return link.get(("linkinfo", "kind"))


def oper_up(link: Any) -> bool:
    return link.get("operstate") == "UP"


def addresses(ipr: Any, index: int) -> list[str]:
    """``addr/prefix`` of every global/link address on ``index``."""
    return [f"{a.get('address')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)]


def routes(ipr: Any) -> list[dict[str, Any]]:
    """Main-table routes as {dst (CIDR), gw, oif}."""
    out = []
    for fam, zero in ((AF_INET, "0.0.0.0"), (AF_INET6, "::")):
        for r in ipr.get_routes(family=fam, table=RT_TABLE_MAIN):
            dst = r.get("dst") or zero
            out.append({"dst": f"{dst}/{r['dst_len']}", "gw": r.get("gateway"), "oif": r.get("oif")})
    return out


def norm_cidr(cidr: str) -> str:
    import ipaddress

    return str(ipaddress.ip_network(cidr, strict=False))


# -- changing --------------------------------------------------------------------------------

def _fail(what: str, e: Exception) -> CNIError:
    code = getattr(e, "code", None)
    reason = os.strerror(code) if isinstance(code, int) and code > 0 else str(e)
    return CNIError(ERR_INTERNAL, f"{what}: {reason}")


def ensure_bridge(ipr: Any, name: str, mtu: int = 0, promisc: bool = False,
                  made: list[str] | None = None) -> Any:
    """Create the bridge if needed (an existing one is fine), promisc if asked, IPv6 RAs off,
    set it up; return its link message. ``made`` gets the bridge's name appended when this call
    created it (so a failed ADD can remove what it made, and only that)."""
    NetlinkError = netlink_error()
    kw: dict[str, Any] = {"ifname": name, "kind": "bridge"}
    if mtu:
        kw["mtu"] = mtu
    try:
        ipr.link("add", **kw)
        if made is not None:
            made.append(name)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise _fail(f"failed to create bridge {name!r}", e) from e
    br = link_by_name(ipr, name)
    if br is None or kind(br) != "bridge":
        raise CNIError(ERR_INTERNAL, f"failed to create bridge {name!r}: {name!r} already exists but is not a bridge",
                       "Choose another \"bridge\" name or delete that link.")
    idx = br["index"]
    if promisc:
        ipr.link("set", index=idx, flags=IFF_PROMISC, change=IFF_PROMISC)
    sysctl(f"net/ipv6/conf/{name}/accept_ra", "0")
    ipr.link("set", index=idx, state="up")
    return link_by_name(ipr, name)


def create_veth(node: Any, cont_fd: int, cont_ipr: Any, ifname: str, mtu: int = 0,
                mac: str = "", host_prefix: str = "veth") -> tuple[str, Any, Any]:
    """A veth pair: ``<host_prefix><8 hex>`` in the node, its peer born directly inside the
    container netns as ``ifname``. Returns (host name, host link, container link)."""
    NetlinkError = netlink_error()
    if link_by_name(cont_ipr, ifname) is not None:
        raise CNIError(ERR_INTERNAL, f"container veth name provided ({ifname}) already exists",
                       "Each (container ID, ifname) is added once; DEL it first or pick another CNI_IFNAME.")
    peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": cont_fd}
    kw: dict[str, Any] = {"kind": "veth"}
    if mtu:
        kw["mtu"] = peer["mtu"] = mtu
    if mac:
        peer["address"] = mac
    for _ in range(10):
        host = host_prefix + os.urandom(4).hex()
        try:
            node.link("add", ifname=host, peer=peer, **kw)
            break
        except NetlinkError as e:
            if e.code == errno.EEXIST and link_by_name(node, host) is not None:
                continue  # random name clash in the node: try another
            raise _fail(f"failed to create veth {host}/{ifname}", e) from e
    else:
        raise CNIError(ERR_INTERNAL, "failed to find a free host veth name")
    return host, link_by_name(node, host), link_by_name(cont_ipr, ifname)


def configure_iface(ipr: Any, index: int, result: dict[str, Any], iface_pos: int) -> None:
    """Put the result's addresses for interface ``iface_pos`` on the link, set it up, add the
    result's routes (a route without gw goes via the gateway of its family), like upstream
    ipam.ConfigureIface."""
    NetlinkError = netlink_error()
    gw4 = gw6 = None
    for ip in result.get("ips", []):
        if ip.get("interface", iface_pos) != iface_pos:
            continue
        addr, plen = ip["address"].split("/")
        try:
            ipr.addr("add", index=index, address=addr, prefixlen=int(plen))
        except NetlinkError as e:
            raise _fail(f"failed to add IP addr {ip['address']}", e) from e
        if ip.get("gateway"):
            if ":" in addr:
                gw6 = ip["gateway"]
            else:
                gw4 = ip["gateway"]
    ipr.link("set", index=index, state="up")
    for r in result.get("routes", []):
        dst = norm_cidr(r["dst"])
        gw = r.get("gw") or (gw6 if ":" in dst else gw4)
        net, plen = dst.split("/")
        kw: dict[str, Any] = {"dst": net, "dst_len": int(plen), "oif": index, "proto": RTPROT_BOOT}
        if gw:
            kw["gateway"] = gw
        try:
            ipr.route("add", **kw)
        except NetlinkError as e:
            raise _fail(f"failed to add route {dst} via {gw}", e) from e


def wait_oper_up(ipr: Any, name: str, budget: float = 2.5) -> Any:
    """Wait for a link to be operationally up (upstream waits ~2.5 s for the bridge port)."""
    end = time.monotonic() + budget
    delay = 0.005
    while True:
        link = link_by_name(ipr, name)
        if link is None or oper_up(link) or time.monotonic() > end:
            return link
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def ports(ipr: Any, index: int) -> list[str]:
    """The names of the links enslaved to the bridge with this index."""
    return [l.get("ifname") for l in ipr.dump_links() if l.get("master") == index]


def delete_link(ipr: Any, name: str) -> list[str] | None:
    """Delete ``name``; returns its addresses first (None if it did not exist)."""
    NetlinkError = netlink_error()
    link = link_by_name(ipr, name)
    if link is None:
        return None
    addrs = addresses(ipr, link["index"])
    try:
        ipr.link("del", index=link["index"])
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise _fail(f"failed to delete {name}", e) from e
    return addrs


# -- CHECK helpers (upstream ip.ValidateExpectedInterfaceIPs / ValidateExpectedRoute) ------------

def check_ips(ipr: Any, ifname: str, ips: list[dict[str, Any]]) -> None:
    link = link_by_name(ipr, ifname)
    if link is None:
        raise CNIError(ERR_INTERNAL, f"Interface {ifname} not found in the container")
    have = {norm_addr(a) for a in addresses(ipr, link["index"])}
    for ip in ips:
        if norm_addr(ip["address"]) not in have:
            raise CNIError(ERR_INTERNAL, f"Failed to match addr {ip['address']} on interface {ifname}",
                           "The address from the ADD result is gone from the container interface.")


def norm_addr(cidr: str) -> str:
    import ipaddress

    return str(ipaddress.ip_interface(cidr))


def check_routes(ipr: Any, want: list[dict[str, Any]]) -> None:
    have = routes(ipr)
    for r in want:
        dst = norm_cidr(r["dst"])
        ok = any(h["dst"] == dst and (not r.get("gw") or h["gw"] == r["gw"]) for h in have)
        if not ok:
            raise CNIError(ERR_INTERNAL, f"Expected Route {dst}" + (f" via {r['gw']}" if r.get("gw") else "")
                           + " not found in routing table",
                           "A route from the ADD result is missing in the container.")
