"""``ptp``: a point-to-point veth pair between the node and the container, no bridge
(upstream: containernetworking/plugins plugins/main/ptp, whose semantics this follows).

Configuration keys: ``ipam`` (required: ptp routes by address), ``ipMasq``, ``mtu``, ``dns``.

ADD, for each address the IPAM plugin gives (say 10.1.1.5/24, gateway 10.1.1.1):

* container end ``CNI_IFNAME`` gets 10.1.1.5/24, but the kernel's "10.1.1.0/24 dev eth0" route is
  replaced by "10.1.1.1/32 dev eth0 scope link" plus "10.1.1.0/24 via 10.1.1.1": every packet,
  even to a neighbour, goes to the gateway (a veth cannot be IFF_POINTOPOINT, this is the
  next best thing). The IPAM routes (e.g. a default route) are added too.
* host end ``veth<8 hex>`` gets the gateway as 10.1.1.1/32 and the route "10.1.1.5/32 dev veth…";
  the node forwards between containers (ip_forward is turned on).

The result lists interfaces [host veth, container veth]; every IP points at 1.
"""
from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
# every plugin module starts this way: typing costs ms per plugin exec (annotations are
# strings anyway), and the names come from skel
if TYPE_CHECKING:
    from typing import Any

from sandbox.net.plugins import attach, ipam, ipmasq, link
from sandbox.net.plugins.skel import (
    ERR_INTERNAL,
    CmdArgs,
    CNIError,
    dns_set,
    load_netconf,
    plugin_main,
    prev_result,
)


def _conf(a: CmdArgs) -> tuple[bool, int]:
    c = a.conf
    load_netconf(a, {"ipMasq": bool, "mtu": int})     # upstream NetConf's types (error 6)
    masq, mtu = bool(c.get("ipMasq")), link.check_mtu(c.get("mtu") or 0)
    if not (c.get("ipam") or {}).get("type"):
        raise CNIError(ERR_INTERNAL, "ptp needs an IPAM plugin",
                       'Add "ipam": {"type": "host-local", "subnet": "..."} to the configuration.')
    return masq, mtu


def _point_to_point_routes(cont: Any, index: int, ips: list[dict[str, Any]]) -> None:
    NetlinkError = link.netlink_error()
    for ip in ips:
        iface = ipaddress.ip_interface(ip["address"])
        gw = ip.get("gateway")
        if not gw:
            raise CNIError(ERR_INTERNAL, f"IPAM gave {ip['address']} without a gateway; ptp needs one")
        net = iface.network
        try:
            cont.route("del", dst=str(net.network_address), dst_len=net.prefixlen, oif=index,
                       scope=255)  # RT_SCOPE_NOWHERE: any scope (the kernel route is scope link)
        except NetlinkError as e:
            raise CNIError(ERR_INTERNAL, f"failed to delete route {net}: {e}") from e
        try:
            cont.route("add", dst=gw, dst_len=iface.max_prefixlen, oif=index, scope=253,  # link
                       prefsrc=str(iface.ip), proto=link.RTPROT_BOOT)
            cont.route("add", dst=str(net.network_address), dst_len=net.prefixlen, oif=index,
                       gateway=gw, prefsrc=str(iface.ip), proto=link.RTPROT_BOOT)
        except NetlinkError as e:
            raise CNIError(ERR_INTERNAL, f"failed to add route: {e}") from e


def cmd_add(a: CmdArgs) -> dict[str, Any]:
    masq, mtu = _conf(a)
    job = ipam.Delegation(a, "ADD").start()  # runs while we do netlink
    with attach.Add("ptp", a, job) as add:
        add.open()
        node, cont = add.node, add.cont
        host, hl, cl = link.create_veth(node, add.fd, cont, a.ifname, mtu)
        add.made = True
        node.link("set", index=hl["index"], state="up")
        r = add.ipam_result()
        for ip in r["ips"]:
            ip["interface"] = 1
        result: dict[str, Any] = {
            "interfaces": [{"name": host, "mac": hl.get("address")},
                           {"name": a.ifname, "mac": cl.get("address"), "sandbox": a.netns}],
            "ips": r["ips"], "routes": r["routes"], "dns": r["dns"]}
        link.enable_forwarding(result["ips"])
        link.configure_iface(cont, cl["index"], result, 1)
        _point_to_point_routes(cont, cl["index"], result["ips"])
        NetlinkError = link.netlink_error()
        for ip in result["ips"]:
            iface = ipaddress.ip_interface(ip["address"])
            try:
                node.addr("add", index=hl["index"], address=ip["gateway"], prefixlen=iface.max_prefixlen)
            except NetlinkError as e:
                raise CNIError(ERR_INTERNAL, f"failed to add IP addr {ip['gateway']} to {host}: {e}") from e
            try:
                node.route("add", dst=str(iface.ip), dst_len=iface.max_prefixlen, oif=hl["index"],
                           scope=254, proto=link.RTPROT_BOOT)  # a host route, as upstream's AddHostRoute
            except NetlinkError as e:
                if e.code != 17:  # EEXIST is fine
                    raise CNIError(ERR_INTERNAL, f"failed to add route on host: {e}") from e
        if masq:
            add.masq = ipmasq.setup(a.name, a.container_id, result["ips"])
            add.masq.wait()
        hl = link.link_by_name(node, host)
        result["interfaces"][0]["mac"] = hl.get("address")
        if dns_set(a.conf.get("dns")):
            result["dns"] = a.conf["dns"]
        return result


def cmd_del(a: CmdArgs) -> None:
    masq, _ = _conf(a)
    attach.delete(a, with_ipam=True, ip_masq=masq)


def cmd_check(a: CmdArgs) -> None:
    _conf(a)
    attach.check(a, True, lambda fd: _check(a, fd))


# The container side is bridge._check's in upstream ptp's own words ("ptp: …", "veth/p2p");
# what the two share is one already: attach.check, link.check_ips, link.check_routes.
def _check(a: CmdArgs, fd: int) -> None:
    """Compare the container interface with the cached ADD result (upstream ptp cmdCheck)."""
    prev = prev_result(a)
    if prev is None:
        raise CNIError(ERR_INTERNAL, "ptp: Required prevResult missing",
                       "CHECK compares the kernel with the cached ADD result; the runtime must pass it.")
    want = next((i for i in prev["interfaces"]
                 if i.get("name") == a.ifname and i.get("sandbox") == a.netns), None)
    if want is None:
        raise CNIError(ERR_INTERNAL, f"Sandbox in prevResult doesn't match configured netns: {a.netns}")
    with link.iproute_in(fd) as cont:
        cl = link.link_by_name(cont, a.ifname)
        if cl is None:
            raise CNIError(ERR_INTERNAL, f"ptp: Container Interface name in prevResult: {a.ifname} not found")
        if link.kind(cl) != "veth":
            raise CNIError(ERR_INTERNAL, f"Error: Container interface {a.ifname} not of type veth/p2p")
        if want.get("mac") and want["mac"] != cl.get("address"):
            raise CNIError(ERR_INTERNAL, f"ptp: Interface {a.ifname} Mac {want['mac']} doesn't match "
                           f"container Mac: {cl.get('address')}")
        link.check_ips(cont, a.ifname, prev["ips"])
        link.check_routes(cont, prev["routes"])


def cmd_gc(a: CmdArgs) -> None:
    masq, _ = _conf(a)
    attach.gc(a, True, masq)


def cmd_status(a: CmdArgs) -> None:
    _conf(a)
    ipam.run(a, "STATUS")


# every plugin ends this way (skel.plugin_main runs the table): only the table differs
HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}


def main() -> None:
    plugin_main("ptp", HANDLERS)


if __name__ == "__main__":
    main()
