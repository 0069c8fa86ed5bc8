"""A small synchronous rtnetlink client for the plugins: pyroute2's message classes
(``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``) encode and decode every request and answer; this
module only sends them on a plain ``AF_NETLINK`` socket and waits for the kernel's ACK.

Why not ``pyroute2.IPRoute``: in pyroute2 0.9 it runs on asyncio, and a CNI plugin is a process
exec'd for every call. Importing IPRoute (asyncio, multiprocessing, concurrent.futures…) and
spinning an event loop per request cost more than everything else the bridge plugin does.
The message classes alone import in a fraction of that time. The API mirrors the subset of
IPRoute the plugins use (``link``, ``addr``, ``route``, ``brport``, ``get_*``), so the code
reads the same and the messages returned are pyroute2's.

netlink(7), rtnetlink(7): one request = header + family-specific struct + attributes; the
kernel answers with messages and ends with NLMSG_ERROR (error 0 = ACK) or NLMSG_DONE.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import types

from sandbox._sys.libc import IFF_UP

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ms per plugin exec; annotations are strings anyway
    from typing import Any

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
AF_UNSPEC, AF_INET, AF_BRIDGE, AF_INET6 = 0, 2, 7, 10
NO_SUCH_LINK = (errno.ENODEV, errno.ENOENT)  # what the kernel answers for an unknown link name
RT_TABLE_MAIN = 254
RTN_UNICAST = 1


def _pyroute2_msgs() -> tuple[Any, Any, Any, Any]:
    """Import pyroute2's message classes without running ``pyroute2/__init__`` (which loads
    NDB, IPDB, conntrack, asyncio…): register a bare package module first."""
    if "pyroute2" not in sys.modules:
        import importlib.util

        spec = importlib.util.find_spec("pyroute2")
        if spec is None or not spec.submodule_search_locations:
            from sandbox.net.plugins.skel import ERR_INTERNAL, CNIError
            raise CNIError(ERR_INTERNAL, "pyroute2 is not installed",
                           "Install the kit (bash provision/bootstrap.sh); the plugins need pyroute2 0.9.")
        pkg = types.ModuleType("pyroute2")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        pkg.__file__ = spec.origin
        sys.modules["pyroute2"] = pkg
    from pyroute2.netlink import nlmsgerr
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg, nlmsgerr


class NetlinkError(OSError):
    """The kernel refused a request; ``code`` is the errno."""

    def __init__(self, code: int, what: str = "") -> None:
        super().__init__(code, f"{what}: {os.strerror(code)}" if what else os.strerror(code))
        self.code = code


class RTNL:
    """One NETLINK_ROUTE socket, bound to the netns it was created in."""

    def __init__(self) -> None:
        self.ifinfmsg, self.ifaddrmsg, self.rtmsg, self.nlmsgerr = _pyroute2_msgs()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RTNL":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the request/answer loop --------------------------------------------------------------

    def request(self, msg: Any, mtype: int, flags: int, what: str = "") -> list[Any]:
        self.seq += 1
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = flags | NLM_F_REQUEST | NLM_F_ACK
        msg["header"]["sequence_number"] = self.seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.sock.send(msg.data)
        out: list[Any] = []
        parser = {RTM_NEWLINK: self.ifinfmsg, RTM_NEWADDR: self.ifaddrmsg, RTM_NEWROUTE: self.rtmsg}
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off < len(data):
                length, kind, _flags, seq = struct.unpack_from("=IHHI", data, off)
                chunk = data[off:off + length]
                off += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", chunk, 16)[0]
                    if err:
                        raise NetlinkError(err, what)
                    return out
                if kind == NLMSG_DONE:
                    return out
                cls = parser.get(kind)
                if cls is not None:
                    m = cls(chunk)
                    m.decode()
                    out.append(m)

    def _change(self, obj: str, command: str, m: Any, new: int, delete: int, target: object,
                can_set: bool = False) -> None:
        """Send a change the way iproute2 does: ``add`` = RTM_NEW* with NLM_F_CREATE|NLM_F_EXCL
        (EEXIST if it is already there), ``set`` = RTM_NEW* without them (links only: change an
        existing one), ``del`` = RTM_DEL*. Errors name the request, e.g. "route add 10.1.1.0/24"."""
        what = f"{obj} {command} {target}"
        if command == "add":
            self.request(m, new, NLM_F_CREATE | NLM_F_EXCL, what)
        elif command == "set" and can_set:
            self.request(m, new, 0, what)
        elif command == "del":
            self.request(m, delete, 0, what)
        else:
            raise ValueError(command)

    # -- links ----------------------------------------------------------------------------------

    def _by_name(self, ifname: str) -> Any:
        """An ifinfmsg naming a link by IFLA_IFNAME with index 0: the kernel finds it by name
        (``ip link show NAME`` sends the same)."""
        m = self.ifinfmsg()
        m["family"] = AF_UNSPEC
        m["attrs"] = [("IFLA_IFNAME", ifname)]
        return m

    def get_link(self, ifname: str) -> Any | None:
        """The link message of ``ifname`` (one RTM_GETLINK), None if there is no such link."""
        try:
            found = self.request(self._by_name(ifname), RTM_GETLINK, 0)
        except NetlinkError as e:
            if e.code in NO_SUCH_LINK:
                return None
            raise
        return found[0] if found else None

    def link_lookup(self, ifname: str) -> list[int]:
        link = self.get_link(ifname)
        return [] if link is None else [link["index"]]

    def get_links(self, index: int) -> list[Any]:
        m = self.ifinfmsg()
        m["family"] = AF_UNSPEC
        m["index"] = index
        return self.request(m, RTM_GETLINK, 0)

    def dump_links(self) -> list[Any]:
        """Every link in this netns (one RTM_GETLINK dump)."""
        m = self.ifinfmsg()
        m["family"] = AF_UNSPEC
        return self.request(m, RTM_GETLINK, NLM_F_DUMP)

    def link_del_by_name(self, ifname: str) -> bool:
        """RTM_DELLINK by IFLA_IFNAME, no lookup first; False if there was no such link."""
        try:
            self.request(self._by_name(ifname), RTM_DELLINK, 0, f"link del {ifname}")
        except NetlinkError as e:
            if e.code in NO_SUCH_LINK:
                return False
            raise
        return True

    def link(self, command: str, **kw: Any) -> None:
        m = self.ifinfmsg()
        m["family"] = AF_UNSPEC
        m["index"] = kw.get("index", 0)
        attrs: list[Any] = []
        if "ifname" in kw:
            attrs.append(("IFLA_IFNAME", kw["ifname"]))
        if kw.get("mtu"):
            attrs.append(("IFLA_MTU", kw["mtu"]))
        if kw.get("address"):
            attrs.append(("IFLA_ADDRESS", kw["address"]))
        if "master" in kw:
            attrs.append(("IFLA_MASTER", kw["master"]))
        if "state" in kw:
            m["flags"] = IFF_UP if kw["state"] == "up" else 0
            m["change"] = IFF_UP
        if "flags" in kw:
            m["flags"] |= kw["flags"]
            m["change"] |= kw.get("change", kw["flags"])
        if kw.get("kind"):
            info: list[Any] = [("IFLA_INFO_KIND", kw["kind"])]
            peer = kw.get("peer")
            if kw["kind"] == "veth" and peer:
                # the peer's own IFLA_* attributes, nested in VETH_INFO_PEER (rtnetlink's layout): the
                # same shape as the link's above, one level down and with the target netns
                pa: list[Any] = [("IFLA_IFNAME", peer["ifname"])]
                if "net_ns_fd" in peer:
                    pa.append(("IFLA_NET_NS_FD", peer["net_ns_fd"]))
                if peer.get("mtu"):
                    pa.append(("IFLA_MTU", peer["mtu"]))
                if peer.get("address"):
                    pa.append(("IFLA_ADDRESS", peer["address"]))
                info.append(("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": pa})]}))
            attrs.append(("IFLA_LINKINFO", {"attrs": info}))
        m["attrs"] = attrs
        self._change("link", command, m, RTM_NEWLINK, RTM_DELLINK,
                     kw.get("ifname") if command == "add" else m["index"], can_set=True)

    def brport(self, command: str, index: int, mode: int) -> None:
        """Bridge port setting IFLA_BRPORT_MODE (1 = hairpin), as
        ``ip link set DEV type bridge_slave hairpin on`` sends it: IFLA_LINKINFO with
        IFLA_INFO_SLAVE_KIND "bridge" and the port attribute in IFLA_INFO_SLAVE_DATA."""
        assert command == "set"
        m = self.ifinfmsg()
        m["family"] = AF_UNSPEC
        m["index"] = index
        m["attrs"] = [("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_SLAVE_KIND", "bridge"),
            ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", mode)]})]})]
        self.request(m, RTM_NEWLINK, 0, f"hairpin on {index}")

    # -- addresses --------------------------------------------------------------------------------

    def addr(self, command: str, index: int, address: str, prefixlen: int) -> None:
        m = self.ifaddrmsg()
        m["family"] = AF_INET6 if ":" in address else AF_INET
        m["prefixlen"] = prefixlen
        m["index"] = index
        m["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        self._change("addr", command, m, RTM_NEWADDR, RTM_DELADDR, f"{address}/{prefixlen}")

    def get_addr(self, index: int) -> list[Any]:
        m = self.ifaddrmsg()
        m["family"] = AF_UNSPEC
        return [a for a in self.request(m, RTM_GETADDR, NLM_F_DUMP) if a["index"] == index]

    # -- routes -----------------------------------------------------------------------------------

    def route(self, command: str, dst: str, dst_len: int, oif: int = 0, gateway: str | None = None,
              scope: int = 0, proto: int | None = None, prefsrc: str | None = None,
              table: int = RT_TABLE_MAIN) -> None:
        m = self.rtmsg()
        m["family"] = AF_INET6 if ":" in dst else AF_INET
        m["dst_len"] = dst_len
        m["table"] = table
        m["scope"] = scope
        # add: RTPROT_BOOT like iproute2; del: 0 = any protocol (the kernel's own routes say "kernel")
        m["proto"] = (3 if command == "add" else 0) if proto is None else proto
        m["type"] = RTN_UNICAST
        attrs: list[Any] = [("RTA_DST", dst)]
        if oif:
            attrs.append(("RTA_OIF", oif))
        if gateway:
            attrs.append(("RTA_GATEWAY", gateway))
        if prefsrc:
            attrs.append(("RTA_PREFSRC", prefsrc))
        m["attrs"] = attrs
        self._change("route", command, m, RTM_NEWROUTE, RTM_DELROUTE, f"{dst}/{dst_len}")

    def get_routes(self, family: int, table: int = RT_TABLE_MAIN) -> list[Any]:
        m = self.rtmsg()
        m["family"] = family
        out = []
        for r in self.request(m, RTM_GETROUTE, NLM_F_DUMP):
            t = r.get("RTA_TABLE") or r["table"]
            if t == table:
                out.append(r)
        return out
