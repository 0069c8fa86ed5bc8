"""Watch network namespaces change by change, as the kernel announces it (for the stepper).

A :class:`KernelFilm` takes a full dump of some network namespaces (links, addresses, routes, and
the nftables rules of the first one), then records every change notification the kernel sends
while something else works there — a CNI plugin, ``ip`` commands typed by a learner, anything:

* rtnetlink (rtnetlink(7)): one ``NETLINK_ROUTE`` socket in the first ("home") namespace,
  subscribed to the link, address and route groups with ``NETLINK_LISTEN_ALL_NSID``: it also
  receives the notifications of every namespace that has an *nsid* in the home namespace (we
  assign one to each watched namespace, as ``ip netns set NAME auto`` does). One socket, so the
  changes of all the namespaces arrive in the one order the kernel made them.
* nfnetlink (``NFNLGRP_NFTABLES``): every table, chain and rule that ``iptables-nft`` adds or
  deletes in the home namespace, decoded back into ``iptables -S`` lines.

A notification is queued on the socket before the system call that made the change returns,
so once the watched work is over, :meth:`KernelFilm.take` has all of it. The state after change
*i* (:meth:`KernelFilm.state`) is the dump with changes 0…i applied: what the kernel said at
that moment, in the same shape as :func:`sandbox.net.netns.snapshot` (plus ``"nat"``).
The listener thread only reads; :meth:`KernelFilm.take` decodes what arrived (links, addresses
and routes by hand, :func:`_rtnl_msg`; nftables rules with pyroute2).
"""
from __future__ import annotations

import functools
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from typing import Any, NamedTuple

from sandbox.errors import SandboxError
from sandbox.net import netns as _netns

SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NETLINK_LISTEN_ALL_NSID = 270, 1, 8
NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
RTNLGRP = {"link": 1, "ipv4_ifaddr": 5, "ipv4_route": 7, "ipv6_ifaddr": 9, "ipv6_route": 11}
NFNLGRP_NFTABLES = 7
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE = 18, 22, 26
RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3
NFT_SUBSYS = 10
NFT_NEWTABLE, NFT_DELTABLE, NFT_NEWCHAIN, NFT_DELCHAIN = 0, 2, 3, 5
NFT_NEWRULE, NFT_DELRULE, NFT_NEWGEN = 6, 8, 15
NFT_GETTABLE, NFT_GETCHAIN, NFT_GETRULE = 1, 4, 7
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_APPEND = 0x1, 0x4, 0x300, 0x800
NLMSG_ERROR, NLMSG_DONE = 2, 3


class WatchError(SandboxError):
    """The kernel could not be watched (no such namespace, or notifications were lost)."""


class Event(NamedTuple):
    """One notification: when it was received, from which watched namespace (its label),
    rtnetlink or nftables, the message type and flags, and its bytes."""

    t: float
    ns: str
    proto: str          # "rtnl" | "nft"
    type: int
    flags: int
    data: bytes


def _msgs(data: bytes) -> list[tuple[int, int, bytes]]:
    """Split a netlink datagram into (type, flags, message bytes)."""
    out, off = [], 0
    while off + 16 <= len(data):
        length, kind, flags = struct.unpack_from("=IHH", data, off)
        if length < 16:
            break
        out.append((kind, flags, data[off:off + length]))
        off += (length + 3) & ~3
    return out


@functools.cache
def _classes() -> dict[str, Any]:
    """pyroute2's nftables message classes (rules need its expression decoder; links, addresses
    and routes are decoded by :func:`_rtnl_msg`). The whole package is imported first: the
    plugins' light import (:mod:`sandbox.net.plugins.rtnl`) would leave this process without
    ``IPRoute``."""
    import pyroute2  # noqa: F401  (~0.4 s once; only a recording stepper gets here)
    from pyroute2.netlink.nfnetlink import nftsocket as nft
    return {"rule": nft.nft_rule_msg, "chain": nft.nft_chain_msg, "table": nft.nft_table_msg,
            "gen": nft.nft_gen_msg}


def _decode(cls: Any, data: bytes) -> Any:
    m = cls(data)
    m.decode()
    return m


def _raw_dump(s: socket.socket, mtype: int, body: bytes) -> list[tuple[int, int, bytes]]:
    """One NLM_F_DUMP request on ``s``; the answer's messages, undecoded."""
    s.send(struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    out: list[tuple[int, int, bytes]] = []
    while True:
        for kind, flags, chunk in _msgs(s.recv(1 << 20)):
            if kind == NLMSG_DONE:
                return out
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", chunk, 16)[0]
                if err:
                    raise WatchError(f"the kernel refused a dump: {os.strerror(err)}.")
                return out
            out.append((kind, flags, chunk))


# -- rtnetlink messages, decoded by hand ----------------------------------------------------------
# Only the fields and attributes the pictures use, under pyroute2's names (``m["index"]``,
# ``m.get("ifname")``, ``m.get(("linkinfo", "kind"))``) so :func:`sandbox.net.netns.snapshot_from`
# takes these and pyroute2's messages alike; about ten times cheaper than pyroute2's decoder,
# which matters because every notification of a recorded operation is decoded.

class _Msg:
    """A decoded link, address or route message: header fields by item, attributes by ``get``."""

    __slots__ = ("fields", "attrs")

    def __init__(self, fields: dict[str, int], attrs: dict[Any, Any]) -> None:
        self.fields, self.attrs = fields, attrs

    def __getitem__(self, key: str) -> int:
        return self.fields[key]

    def get(self, key: Any, default: Any = None) -> Any:
        v = self.attrs.get(key)
        return v if v is not None else self.fields.get(key, default)

    def __repr__(self) -> str:
        return f"_Msg({self.fields}, {self.attrs})"


_OPERSTATE = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")


def _ip(family: int, raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if family == socket.AF_INET6 else socket.AF_INET, raw)


def _nla(data: bytes, off: int) -> list[tuple[int, bytes]]:
    """The (type, payload) of each netlink attribute from ``off`` on."""
    out = []
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out.append((kind & 0x3FFF, data[off + 4:off + length]))
        off += (length + 3) & ~3
    return out


def _u32(b: bytes) -> int:
    return struct.unpack("=I", b[:4])[0]


def _s32(b: bytes) -> int:
    return struct.unpack("=i", b[:4])[0]


def _str(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace")


def _rtnl_msg(kind: int, data: bytes) -> _Msg:
    """RTM_NEW/DEL LINK, ADDR or ROUTE (``data`` with its 16-byte netlink header)."""
    attrs: dict[Any, Any] = {}
    if kind in (RTM_NEWLINK, RTM_DELLINK):      # struct ifinfomsg
        family, _t, index, flags, _c = struct.unpack_from("=BxHiII", data, 16)
        fields = {"family": family, "index": index, "flags": flags}
        for t, v in _nla(data, 32):
            if t == 3:
                attrs["ifname"] = _str(v)
            elif t == 1:
                attrs["address"] = ":".join(f"{x:02x}" for x in v)
            elif t in (4, 5, 10):
                attrs[{4: "mtu", 5: "link", 10: "master"}[t]] = _u32(v)
            elif t == 16:
                attrs["operstate"] = _OPERSTATE[v[0]] if v[0] < len(_OPERSTATE) else str(v[0])
            elif t == 37:
                attrs["link_netnsid"] = _s32(v)
            elif t == 45:
                attrs["new_netnsid"] = _s32(v)
            elif t == 18:                        # IFLA_LINKINFO: IFLA_INFO_KIND
                for it, iv in _nla(v, 0):
                    if it == 1:
                        attrs[("linkinfo", "kind")] = _str(iv)
        return _Msg(fields, attrs)
    if kind in (RTM_NEWADDR, RTM_DELADDR):      # struct ifaddrmsg
        family, prefixlen, _f, scope, index = struct.unpack_from("=BBBBI", data, 16)
        fields = {"family": family, "prefixlen": prefixlen, "scope": scope, "index": index}
        for t, v in _nla(data, 24):
            if t in (1, 2):
                attrs["address" if t == 1 else "local"] = _ip(family, v)
        return _Msg(fields, attrs)
    # struct rtmsg
    family, dst_len, _s, tos, table, _p, scope, rtype, _fl = struct.unpack_from("=BBBBBBBBI", data, 16)
    fields = {"family": family, "dst_len": dst_len, "tos": tos, "table": table, "scope": scope,
              "type": rtype}
    for t, v in _nla(data, 28):
        if t in (1, 5):
            attrs["dst" if t == 1 else "gateway"] = _ip(family, v)
        elif t in (4, 6, 15):
            attrs[{4: "oif", 6: "RTA_PRIORITY", 15: "RTA_TABLE"}[t]] = _u32(v)
    return _Msg(fields, attrs)


# -- nftables rules back into iptables -S lines ---------------------------------------------------

_V4 = {12: "-s", 16: "-d"}
_V6 = {8: "-s", 24: "-d"}


def _attrs(expr_data: Any) -> dict[str, Any]:
    return dict(expr_data.get("attrs", [])) if expr_data else {}


def _value(data_attr: Any) -> bytes:
    return dict(data_attr.get("attrs", [])).get("NFTA_DATA_VALUE", b"") if data_attr else b""


def rule_line(family: int, chain: str, exprs: list[Any]) -> str:
    """The ``iptables -S`` line of a rule that iptables-nft wrote (the expressions it uses for
    addresses, interfaces, comments and targets; anything else is shown by its nft name)."""
    parts: list[str] = []
    load: dict[str, Any] | None = None     # the last payload/meta load into a register
    mask: bytes | None = None
    for e in exprs:
        name = e.get_attr("NFTA_EXPR_NAME")
        a = _attrs(e.get_attr("NFTA_EXPR_DATA"))
        if name in ("payload", "meta"):
            load, mask = {"name": name, **a}, None
        elif name == "bitwise":
            mask = _value(a.get("NFTA_BITWISE_MASK"))
        elif name == "cmp" and load is not None:
            neg = "! " if a.get("NFTA_CMP_OP") == "NFT_CMP_NEQ" else ""
            data = _value(a.get("NFTA_CMP_DATA"))
            if load["name"] == "payload" and load.get("NFTA_PAYLOAD_BASE") == "NFT_PAYLOAD_NETWORK_HEADER":
                table = _V6 if family == 10 else _V4
                flag = table.get(load.get("NFTA_PAYLOAD_OFFSET", -1))
                size = 16 if family == 10 else 4
                if flag:
                    raw = data.ljust(size, b"\0")
                    plen = (sum(bin(b).count("1") for b in mask) if mask is not None
                            else 8 * len(data))
                    ip = ipaddress.ip_address(raw)
                    parts.append(f"{neg}{flag} {ip}/{plen}")
                    load = None
                    continue
            if load["name"] == "meta" and load.get("NFTA_META_KEY") in ("NFT_META_IIFNAME", "NFT_META_OIFNAME"):
                dev = data.split(b"\0")[0].decode(errors="replace")
                parts.append(f"{neg}{'-i' if 'IIF' in load['NFTA_META_KEY'] else '-o'} {dev}")
                load = None
                continue
            parts.append(f"<{load['name']} {neg}{data.hex()}>")
            load = None
        elif name == "match":
            mname = a.get("NFTA_MATCH_NAME")
            info = a.get("NFTA_MATCH_INFO", "")
            if mname == "comment":
                raw = bytes.fromhex(info.replace(":", "")) if isinstance(info, str) else bytes(info)
                text = raw.split(b"\0")[0].decode(errors="replace")
                parts.append('-m comment --comment "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
            else:
                parts.append(f"-m {mname}")
        elif name == "counter":
            continue
        elif name == "immediate":
            verdict = dict(_attrs(a.get("NFTA_IMMEDIATE_DATA")).get("NFTA_DATA_VERDICT", {}).get("attrs", []))
            code = verdict.get("NFTA_VERDICT_CODE")
            if code in ("NFT_JUMP", "NFT_GOTO"):
                parts.append(f"{'-j' if code == 'NFT_JUMP' else '-g'} {verdict.get('NFTA_VERDICT_CHAIN')}")
            elif code:
                parts.append("-j " + {"NF_ACCEPT": "ACCEPT", "NF_DROP": "DROP",
                                      "NFT_RETURN": "RETURN"}.get(code, code))
        elif name == "target":
            parts.append(f"-j {a.get('NFTA_TARGET_NAME')}")
        elif name == "masq":
            parts.append("-j MASQUERADE")
        else:
            parts.append(f"<{name}>")
    return " ".join([f"-A {chain}", *parts])


# -- the film --------------------------------------------------------------------------------------

class KernelFilm:
    """Records the changes of some network namespaces: ``{label: netns path}``; the first is
    "home" (its nftables rules are watched too; ``None`` = the caller's own netns).

        film = KernelFilm({"node": node_path, "c1": c1_path}); film.start()
        … work …
        new = film.take()        # indices of the changes since the last take
        film.stop()
        film.state(i)            # {"kind": "net", "namespaces": {label: snapshot}, "nat": […]}
    """

    def __init__(self, namespaces: dict[str, str | os.PathLike[str] | None]) -> None:
        if not namespaces:
            raise WatchError("nothing to watch: name at least one network namespace.")
        self.labels = list(namespaces)
        self.paths = {k: (os.fspath(v) if v is not None else None) for k, v in namespaces.items()}
        self.home = self.labels[0]
        self.events: list[Event] = []
        self.lost = 0                      # notifications the kernel dropped (ENOBUFS)
        self._taken = 0
        self._raw_base: dict[str, dict[str, list[tuple[int, int, bytes]]]] = {}
        self._base: dict[str, dict[str, Any]] = {}
        self._decoding = threading.Lock()
        self._inodes: dict[str, int] = {}
        self._nsid: dict[int, str] = {}
        self._rtnl: socket.socket | None = None
        self._nft: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._synced = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ops: list[tuple[Any, ...] | None] = []
        self._changes: list[dict[str, Any] | None] = []
        self._run: dict[str, Any] | None = None
        self._cursor: tuple[int, dict[str, Any]] | None = None
        self._state_cache: dict[int, dict[str, Any]] = {}

    # -- recording ------------------------------------------------------------------------------
    def start(self) -> "KernelFilm":
        """Subscribe, give each watched namespace an nsid in the home one, dump the start
        state, and start the listener thread."""
        for label, path in self.paths.items():
            if path is not None and not _netns.is_netns(path):
                raise WatchError(f"There is no network namespace at {path} ({label}).")
        _netns.in_thread(self._open)
        for label, path in self.paths.items():
            self._raw_base[label] = _netns.in_thread(self._dump, path, label == self.home)
            self._inodes[label] = _netns.ns_inode(path or f"/proc/self/task/{threading.get_native_id()}/ns/net")
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._drain(keep=False)            # changes seen while dumping are in the dump
        self._thread = threading.Thread(target=self._listen, name="sandbox-kernel-film", daemon=True)
        self._thread.start()
        return self

    def _enter(self, path: str | None) -> Any:
        import contextlib
        return _netns.enter(path) if path is not None else contextlib.nullcontext()

    def _open(self) -> None:
        """Both listening sockets, created inside the home namespace (a socket stays in the
        netns it was made in); the nsid of each other namespace as seen from home."""
        with self._enter(self.paths[self.home]):
            r = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
            n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
            for s in (r, n):
                try:   # root may exceed rmem_max: a burst of changes must not overflow
                    s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)      # SO_RCVBUFFORCE
                except OSError:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            r.bind((0, 0))
            r.setsockopt(SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, 1)
            for g in RTNLGRP.values():
                r.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g)
            n.bind((0, 0))
            n.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
            self._rtnl, self._nft = r, n
            for label, path in self.paths.items():
                if label != self.home and path is not None:
                    self._nsid[self._nsid_of(path)] = label

    def _nsid_of(self, path: str) -> int:
        """The nsid of ``path`` in the calling thread's netns: assigned if it has none yet
        (RTM_NEWNSID with NETNSA_NSID -1 = "any free one", as ``ip netns set NAME auto``)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                               NETLINK_ROUTE) as s:
                s.bind((0, 0))
                fd_attr = struct.pack("=HHI", 8, NETNSA_FD, fd)
                for mtype, attrs in ((RTM_NEWNSID, fd_attr + struct.pack("=HHi", 8, NETNSA_NSID, -1)),
                                     (RTM_GETNSID, fd_attr)):
                    body = bytes(4) + attrs              # struct rtgenmsg (AF_UNSPEC), padded
                    s.send(struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | NLM_F_ACK,
                                       1, 0) + body)
                    for kind, _f, chunk in _msgs(s.recv(65536)):
                        if kind == RTM_NEWNSID:
                            nsid = next((_s32(v) for t, v in _nla(chunk, 20) if t == NETNSA_NSID), -1)
                            if nsid >= 0:
                                return nsid
                        elif kind == NLMSG_ERROR:
                            err = -struct.unpack_from("=i", chunk, 16)[0]
                            if err and mtype == RTM_GETNSID:
                                raise WatchError(f"the kernel gave {path} no nsid: {os.strerror(err)}.")
            raise WatchError(f"the kernel gave {path} no nsid.")
        finally:
            os.close(fd)

    def _dump(self, path: str | None, with_nat: bool) -> dict[str, list[tuple[int, int, bytes]]]:
        """The start state of one namespace as the kernel's raw dump answers: links, addresses,
        routes and (home) nftables chains and rules. Decoded later, off the caller's path."""
        out: dict[str, list[tuple[int, int, bytes]]] = {"rtnl": [], "nft": []}
        with self._enter(path):
            with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                               NETLINK_ROUTE) as s:
                s.bind((0, 0))
                for mtype, body in ((RTM_GETLINK, bytes(16)), (RTM_GETADDR, bytes(8)),
                                    (RTM_GETROUTE, bytes([socket.AF_INET]) + bytes(11)),
                                    (RTM_GETROUTE, bytes([socket.AF_INET6]) + bytes(11))):
                    out["rtnl"] += _raw_dump(s, mtype, body)
            if with_nat:
                with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_NETFILTER) as s:
                    s.bind((0, 0))
                    for sub in (NFT_GETCHAIN, NFT_GETRULE):
                        out["nft"] += _raw_dump(s, (NFT_SUBSYS << 8) | sub, bytes(4))
        return out

    def _decode_base(self) -> None:
        """Decode the dumps into the start model (links, addresses, routes by the keys the
        notifications use; nftables chains and rules)."""
        for label, raw in self._raw_base.items():
            st: dict[str, Any] = {"links": {}, "addrs": {}, "routes": {}}
            for kind, _flags, chunk in raw["rtnl"]:
                if kind == RTM_NEWLINK:
                    l = _rtnl_msg(kind, chunk)
                    st["links"][l["index"]] = l
                elif kind == RTM_NEWADDR:
                    x = _rtnl_msg(kind, chunk)
                    st["addrs"][_addr_key(x)] = x
                elif kind == RTM_NEWROUTE:
                    r = _rtnl_msg(kind, chunk)
                    if _main(r):
                        st["routes"][_route_key(r)] = r
            if label == self.home:
                nft: dict[str, Any] = {"chains": {}, "rules": {}}
                for kind, flags, chunk in raw["nft"]:
                    sub = kind & 0xFF
                    if sub in (NFT_NEWCHAIN, NFT_NEWRULE):
                        msg = _decode(_classes()["chain" if sub == NFT_NEWCHAIN else "rule"], chunk)
                        _nft_apply(nft, sub, flags, msg, dump=True)
                st["nft"] = nft
            self._base[label] = st

    def _listen(self) -> None:
        """Receive notifications until stopped. Decoding waits for :meth:`take` (measured: doing
        it here, while the caller waits for a plugin, slows the caller down through the GIL)."""
        socks = [s for s in (self._rtnl, self._nft) if s is not None]
        while True:
            ready, _, _ = select.select([*socks, self._wake_r], [], [])
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
                self._drain()
                self._synced.set()
                if self._stopping:
                    return
            else:
                self._drain()

    def _drain(self, keep: bool = True) -> None:
        """Read every queued notification (non-blocking) and keep it with its arrival time."""
        for proto, s in (("rtnl", self._rtnl), ("nft", self._nft)):
            if s is None:
                continue
            while True:
                try:
                    data, anc, _flags, _addr = s.recvmsg(1 << 20, 64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == 105:       # ENOBUFS: the kernel dropped notifications
                        self.lost += 1
                        continue
                    raise
                if not keep:
                    continue
                t = time.monotonic()
                nsid = next((struct.unpack("=i", d[:4])[0] for lvl, typ, d in anc
                             if lvl == SOL_NETLINK and typ == NETLINK_LISTEN_ALL_NSID), None)
                label = self.home if nsid is None else self._nsid.get(nsid)
                if label is None:
                    continue                 # a namespace we do not watch
                for kind, flags, chunk in _msgs(data):
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        continue
                    self.events.append(Event(t, label, proto, kind, flags, chunk))

    def _sync(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self._synced.clear()
        os.write(self._wake_w, b"s")
        self._synced.wait(10)

    def take(self) -> list[int]:
        """Indices of the changes recorded since the last call (every notification queued
        before this call is in)."""
        self._sync()
        new = list(range(self._taken, len(self.events)))
        self._taken = len(self.events)
        self._decode_new()
        return new

    def stop(self) -> None:
        """Stop listening (what was queued is kept) and close the sockets."""
        if self._thread is not None and self._thread.is_alive():
            self._stopping = True
            self._sync()
            self._thread.join(10)
        for s in (self._rtnl, self._nft):
            if s is not None:
                s.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._rtnl = self._nft = None
        self._wake_r = self._wake_w = -1
        if self.lost:
            raise WatchError(f"the kernel dropped {self.lost} batches of notifications; the film "
                             "is incomplete.", hint="Record a smaller operation.")

    def __enter__(self) -> "KernelFilm":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- replay ---------------------------------------------------------------------------------
    # Two passes over the same decoded changes: ``_decode_new`` (at take(): what each change did,
    # whether a picture shows it) and ``state(i)`` (at draw time: the whole state after change i).
    def _fresh_model(self) -> dict[str, Any]:
        out = {}
        for label, b in self._base.items():   # shallow copies: messages are replaced, never changed
            m: dict[str, Any] = {k: dict(b[k]) for k in ("links", "addrs", "routes")}
            m["paired"] = {i for i, l in b["links"].items() if l.get("link")}
            m["nft"] = ({"chains": dict(b["nft"]["chains"]),
                         "rules": {c: dict(r) for c, r in b["nft"]["rules"].items()}}
                        if "nft" in b else None)
            out[label] = m
        return out

    def _decode_new(self) -> None:
        """Decode the notifications not decoded yet."""
        with self._decoding:
            if not self._base:
                self._decode_base()
            if len(self._ops) == len(self.events):
                return
            if self._run is None:
                self._run = self._fresh_model()
            for ev in self.events[len(self._ops):]:
                op = self._decode_op(ev)
                change = self._describe(op) if op is not None else None
                if op is not None:
                    _apply_op(self._run, op)
                self._ops.append(op)
                self._changes.append(change)

    def _decode_op(self, ev: Event) -> tuple[Any, ...] | None:
        """One notification as an operation on the model: (kind, ns, key, new message or None,
        the message)."""
        if ev.proto == "nft":
            sub = ev.type & 0xFF
            kind = {NFT_NEWCHAIN: "chain", NFT_DELCHAIN: "chain", NFT_NEWRULE: "rule",
                    NFT_DELRULE: "rule", NFT_DELTABLE: "table"}.get(sub)
            return None if kind is None else ("nft", ev.ns, (sub, ev.flags), _decode(_classes()[kind], ev.data))
        if ev.type in (RTM_NEWLINK, RTM_DELLINK):
            l = _rtnl_msg(ev.type, ev.data)
            if l["family"] == socket.AF_BRIDGE:
                return None   # a bridge port's own notification: the link itself is unchanged
            old = self._run[ev.ns]["links"].get(l["index"]) if self._run else None
            kind = ("linkinfo", "kind")
            if old is not None and l.get(kind) is None and old.get(kind):
                l.attrs[kind] = old.get(kind)      # a notification without IFLA_LINKINFO: keep it
            return ("link", ev.ns, l["index"], l if ev.type == RTM_NEWLINK else None, l)
        if ev.type in (RTM_NEWADDR, RTM_DELADDR):
            a = _rtnl_msg(ev.type, ev.data)
            return ("addr", ev.ns, _addr_key(a), a if ev.type == RTM_NEWADDR else None, a)
        if ev.type in (RTM_NEWROUTE, RTM_DELROUTE):
            r = _rtnl_msg(ev.type, ev.data)
            if not _main(r):
                return None
            return ("route", ev.ns, _route_key(r), r if ev.type == RTM_NEWROUTE else None, r)
        return None

    def _describe(self, op: tuple[Any, ...]) -> dict[str, Any] | None:
        """What ``op`` does to the model as it is before it: text, and whether a topology
        picture shows the difference."""
        kind, ns = op[0], op[1]
        assert self._run is not None
        m = self._run[ns]
        if kind == "nft":
            (sub, flags), msg = op[2], op[3]
            nft = m["nft"] if m["nft"] is not None else {"chains": {}, "rules": {}}
            scratch = {"chains": dict(nft["chains"]),
                       "rules": {k: dict(v) for k, v in nft["rules"].items()}}
            change = _nft_apply(scratch, sub, flags, msg)
            if change is None:
                return None
            return {**change, "ns": ns, "visible": _in_nat(msg)}
        key, new, msg = op[2], op[3], op[4]
        if kind == "link":
            old = m["links"].get(key)
            name = msg.get("ifname")
            if new is None:
                moved = msg.get("new_netnsid")
                where = self._nsid.get(moved) if moved is not None else None
                what = (f"{name} moved to {where or 'another namespace'}" if moved is not None
                        else f"{name} deleted")
                return {"ns": ns, "what": "link " + what, "kind": "link", "name": name, "visible": True}

            def shown(l: Any) -> tuple[Any, ...]:
                return (l.get("ifname"), l.get(("linkinfo", "kind")), bool(l["flags"] & 1),
                        l.get("master"), l.get("link"))
            return {"ns": ns, "what": "link " + _link_change(old, new), "kind": "link", "name": name,
                    "visible": old is None or shown(old) != shown(new)}
        if kind == "addr":
            dev = _ifname(m, msg["index"])
            text = f"address {key[1]} {'on' if new is not None else 'removed from'} {dev}"
            return {"ns": ns, "what": text, "kind": "addr", "name": dev,
                    "visible": not key[1].startswith("fe80:")}
        text = _route_text(msg, lambda i: _ifname(m, i))
        return {"ns": ns, "what": f"route {text}" + ("" if new is not None else " removed"),
                "kind": "route", "name": text, "visible": msg["family"] == socket.AF_INET}

    def change(self, i: int) -> dict[str, Any] | None:
        """What change ``i`` did: ``{"ns", "what", "kind", "name", "visible"}``, or None when it
        is nothing a picture knows (a route in another table, a generation marker)."""
        self._decode_new()
        return self._changes[i]

    def visible(self, i: int) -> bool:
        """Does change ``i`` alter what a topology picture shows?"""
        c = self.change(i)
        return bool(c and c["visible"])

    def state(self, i: int) -> dict[str, Any]:
        """The state after change ``i`` (-1: the start), in the shape of
        :func:`sandbox.net.netns.snapshot` per namespace, plus the nat rules of home."""
        self._decode_new()
        if i in self._state_cache:
            return self._state_cache[i]
        if self._cursor is None or self._cursor[0] > i:
            self._cursor = (-1, self._fresh_model())
        at, model = self._cursor
        for op in self._ops[at + 1:i + 1]:
            if op is not None:
                _apply_op(model, op)
        self._cursor = (i, model)
        out: dict[str, Any] = {}
        for label in self.labels:
            mm = model[label]
            out[label] = _netns.snapshot_from(mm["links"].values(), mm["addrs"].values(),
                                              mm["routes"].values(), self.paths[label] or "",
                                              self._inodes[label])
            for l in out[label]["links"]:
                l["peer_cut"] = not l["peer_index"] and l["index"] in mm.get("paired", ())
        nft = model[self.home]["nft"] or {"chains": {}, "rules": {}}
        st = {"kind": "net", "namespaces": out, "nat": nat_lines(nft)}
        if len(self._state_cache) > 256:
            self._state_cache.clear()
        self._state_cache[i] = st
        return st

    def record_into(self, steps: Any, op: str = "") -> Any:
        """Add a step for every change a topology picture shows (kind ``net``), in order; the
        first step is the start state. Returns ``steps``. (The CNI runtime interleaves the
        changes with its own steps itself: :mod:`sandbox.net.cni.film`.)"""
        self._decode_new()
        steps.add("check", f"watching {', '.join(self.labels)}", after={"kind": "net", "film": self,
                                                                           "i": -1, "op": op},
                  t=self.events[0].t if self.events else time.monotonic())
        for i, ev in enumerate(self.events):
            ch = self._changes[i]
            if ch is None or not ch["visible"]:
                continue
            steps.add("netlink" if ev.proto == "rtnl" else "nftables", ch["what"], t=ev.t,
                      after={"kind": "net", "film": self, "i": i, "op": op},
                      namespace=ch["ns"], change=ch["kind"])
        return steps

    def last_before(self, t: float) -> int:
        """Index of the last change received at or before ``t`` (-1: none)."""
        i = -1
        for j, ev in enumerate(self.events):
            if ev.t > t:
                break
            i = j
        return i


def _ifname(model: dict[str, Any], index: int) -> str:
    l = model["links"].get(index)
    return l.get("ifname") if l is not None else f"#{index}"


def _in_nat(msg: Any) -> bool:
    for attr in ("NFTA_RULE_TABLE", "NFTA_CHAIN_TABLE", "NFTA_TABLE_NAME"):
        v = msg.get_attr(attr)
        if v is not None:
            return v == "nat"
    return False


def _apply_op(model: dict[str, Any], op: tuple[Any, ...]) -> None:
    kind, ns = op[0], op[1]
    m = model[ns]
    if kind == "nft":
        if m["nft"] is None:
            m["nft"] = {"chains": {}, "rules": {}}
        (sub, flags), msg = op[2], op[3]
        _nft_apply(m["nft"], sub, flags, msg)
        return
    table = {"link": "links", "addr": "addrs", "route": "routes"}[kind]
    key, new = op[2], op[3]
    if new is None:
        m[table].pop(key, None)
    else:
        m[table][key] = new
        if kind == "link" and new.get("link"):
            m.setdefault("paired", set()).add(key)   # it had a peer: losing it means the pair was cut
    if kind == "link" and (new is None or not new["flags"] & 1):
        # The kernel removes a link's IPv4 routes when it goes down or away, and (going away)
        # its addresses, without telling anyone (fib_sync_down_dev): do the same here.
        for rk in [rk for rk, r in m["routes"].items() if r.get("oif") == key
                   and (new is None or r["family"] == socket.AF_INET)]:
            del m["routes"][rk]
        if new is None:
            for ak in [ak for ak in m["addrs"] if ak[0] == key]:
                del m["addrs"][ak]


def _link_change(old: Any, new: Any) -> str:
    name = new.get("ifname")
    if old is None:
        kind = new.get(("linkinfo", "kind")) or "link"
        return f"{name} created ({kind})"
    bits = []
    if old.get("ifname") != name:
        bits.append(f"{old.get('ifname')} renamed {name}")
    if bool(old["flags"] & 1) != bool(new["flags"] & 1):
        bits.append(f"{name} set {'up' if new['flags'] & 1 else 'down'}")
    if old.get("link") and not new.get("link") and new.get(("linkinfo", "kind")) == "veth":
        bits.append(f"{name}'s veth pair cut")
    if old.get("master") != new.get("master"):
        bits.append(f"{name} attached to a bridge" if new.get("master") else f"{name} detached")
    if old.get("address") != new.get("address"):
        bits.append(f"{name} MAC {new.get('address')}")
    if old.get("mtu") != new.get("mtu"):
        bits.append(f"{name} mtu {new.get('mtu')}")
    if old.get("operstate") != new.get("operstate"):
        bits.append(f"{name} carrier {new.get('operstate')}")
    return ", ".join(bits) or f"{name} changed"


def _addr_key(a: Any) -> tuple[int, str]:
    return a["index"], f"{a.get('address')}/{a['prefixlen']}"


def _main(r: Any) -> bool:
    return (r.get("RTA_TABLE") or r["table"]) == 254 and r["family"] in (2, 10)


def _route_key(r: Any) -> tuple[Any, ...]:
    return (r["family"], r.get("dst"), r["dst_len"], r.get("RTA_PRIORITY"), r["tos"], r.get("oif"))


def _route_text(r: Any, ifname: Any) -> str:
    dst = f"{r.get('dst')}/{r['dst_len']}" if r.get("dst") else ("default" if r["family"] == 2 else "::/0")
    via = f" via {r.get('gateway')}" if r.get("gateway") else ""
    dev = f" dev {ifname(r.get('oif'))}" if r.get("oif") else ""
    return dst + via + dev


def _nft_apply(model: dict[str, Any], sub: int, flags: int, m: Any,
               dump: bool = False) -> dict[str, Any] | None:
    """Apply one decoded nftables message to ``{"chains": {(fam, table, chain): is_base},
    "rules": {(fam, table, chain): {handle: line}}}``; returns what it changed."""
    if sub in (NFT_NEWCHAIN, NFT_DELCHAIN):
        key = (m["nfgen_family"], m.get_attr("NFTA_CHAIN_TABLE"), m.get_attr("NFTA_CHAIN_NAME"))
        if sub == NFT_NEWCHAIN:
            new = key not in model["chains"]
            model["chains"][key] = m.get_attr("NFTA_CHAIN_HOOK") is not None
            model["rules"].setdefault(key, {})
            if not new or dump or model["chains"][key]:
                return None       # a built-in chain iptables-nft makes on first use: not news
            return {"what": f"iptables: chain {key[2]} created", "kind": "nat", "name": key[2]}
        model["chains"].pop(key, None)
        model["rules"].pop(key, None)
        return {"what": f"iptables: chain {key[2]} deleted", "kind": "nat", "name": key[2]}
    if sub in (NFT_NEWRULE, NFT_DELRULE):
        fam = m["nfgen_family"]
        key = (fam, m.get_attr("NFTA_RULE_TABLE"), m.get_attr("NFTA_RULE_CHAIN"))
        handle = m.get_attr("NFTA_RULE_HANDLE")
        rules = model["rules"].setdefault(key, {})
        if sub == NFT_DELRULE:
            line = rules.pop(handle, None)
            return {"what": f"iptables: rule removed: {line}" if line else
                    f"iptables: rule {handle} removed", "kind": "nat", "name": line or ""}
        line = rule_line(fam, key[2], m.get_attr("NFTA_RULE_EXPRESSIONS") or [])
        pos = m.get_attr("NFTA_RULE_POSITION")
        items = list(rules.items())
        if dump or (flags & NLM_F_APPEND and pos is None):
            items.append((handle, line))
        elif pos is not None and pos in rules:
            at = [h for h, _ in items].index(pos) + (1 if flags & NLM_F_APPEND else 0)
            items.insert(at, (handle, line))
        else:
            items.insert(0, (handle, line))
        model["rules"][key] = dict(items)
        return {"what": f"iptables: {line}", "kind": "nat", "name": line}
    if sub == NFT_DELTABLE:
        fam, table = m["nfgen_family"], m.get_attr("NFTA_TABLE_NAME")
        for k in [k for k in model["chains"] if k[:2] == (fam, table)]:
            model["chains"].pop(k, None)
            model["rules"].pop(k, None)
        return None
    return None


def nat_lines(model: dict[str, Any]) -> list[str]:
    """The nat table as ``iptables -t nat -S`` prints it, minus policies: ``-N`` for each user
    chain, then each chain's rules (IPv4 first, then IPv6 marked ``[v6]``)."""
    out: list[str] = []
    hooks = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
    for fam in (2, 10):
        chains = [k for k in model["chains"] if k[0] == fam and k[1] == "nat"]
        # as iptables -S: built-in chains in hook order, then user chains as they were made
        chains.sort(key=lambda k: (0, hooks.index(k[2])) if model["chains"][k] and k[2] in hooks
                    else (1, 0))
        tag = "" if fam == 2 else "[v6] "
        out += [f"{tag}-N {k[2]}" for k in chains if not model["chains"][k]]
        for k in chains:
            out += [tag + line for line in model["rules"].get(k, {}).values()]
    return out
