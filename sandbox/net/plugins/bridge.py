"""``bridge``: connect the container to a Linux bridge in the node through a veth pair
(upstream: containernetworking/plugins plugins/main/bridge, whose behaviour this follows).

Configuration keys::

    bridge            bridge name (default "cni0"); created if missing, deleted only by the
                      ADD that created it if that ADD fails and no other port joined meanwhile
    isGateway         put the gateway address on the bridge, turn on forwarding in the node
    isDefaultGateway  also add a default route via the gateway in the container (implies isGateway)
    forceAddress      replace a different address already on the bridge instead of failing
    ipMasq            source-NAT the container's outgoing traffic (see ``ipmasq``)
    mtu               MTU of the bridge and both veth ends
    hairpinMode       let frames go back out of the port they came in on (not with promiscMode)
    promiscMode       put the bridge in promiscuous mode
    ipam              the IPAM plugin to delegate to, e.g. {"type": "host-local", ...};
                      {} = layer 2 only, no addresses

ADD: ensure the bridge; create ``veth<8 hex>`` in the node with its peer born inside CNI_NETNS
as CNI_IFNAME; attach the host end; run the IPAM plugin (in parallel, see ``ipam``); put the
addresses and routes on the container end; put the gateway on the bridge; add the NAT rules.
The result lists interfaces [bridge, host veth, container veth] and every IP points at 2.

DEL: delete the container end (its peer dies with it), release the addresses through IPAM,
remove the NAT chain. Each step tolerates what is already gone, so DEL is idempotent and works
after the container's netns was deleted (including the NAT chain, unlike upstream, #810).
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
    ERR_INVALID_CONFIG,
    ERR_UNSUPPORTED_FIELD,
    CmdArgs,
    CNIError,
    dns_set,
    load_netconf,
    plugin_main,
    prev_result,
    trace,
    validate_ifname,
)

DEFAULT_BRIDGE = "cni0"


class BridgeConf:
    """The bridge plugin's keys, with upstream's defaults."""

    def __init__(self, name: str, bridge: str = DEFAULT_BRIDGE, is_gw: bool = False,
                 is_default_gw: bool = False, force_address: bool = False, ip_masq: bool = False,
                 hairpin: bool = False, promisc: bool = False, ipam_type: str = "",
                 dns: dict[str, Any] | None = None) -> None:
        self.name, self.bridge, self.is_gw, self.is_default_gw = name, bridge, is_gw, is_default_gw
        self.force_address, self.ip_masq, self.hairpin, self.promisc = force_address, ip_masq, hairpin, promisc
        self.ipam_type, self.dns = ipam_type, dns
        self.mtu = 0
        self.mac = ""


# the keys bridge reads, with the JSON type upstream's NetConf gives each (error 6 otherwise)
SPEC = {"bridge": str, "isGateway": bool, "isDefaultGateway": bool, "forceAddress": bool,
        "ipMasq": bool, "mtu": int, "hairpinMode": bool, "promiscMode": bool, "vlan": int,
        "vlanTrunk": list, "macspoofchk": bool, "args": {"cni": {"mac": str}},
        "runtimeConfig": {"mac": str}}


def load_conf(a: CmdArgs) -> BridgeConf:
    c = a.conf
    load_netconf(a, SPEC)
    n = BridgeConf(name=a.name, bridge=c.get("bridge") or DEFAULT_BRIDGE,
                   is_gw=bool(c.get("isGateway")), is_default_gw=bool(c.get("isDefaultGateway")),
                   force_address=bool(c.get("forceAddress")), ip_masq=bool(c.get("ipMasq")),
                   hairpin=bool(c.get("hairpinMode")), promisc=bool(c.get("promiscMode")),
                   ipam_type=(c.get("ipam") or {}).get("type") or "", dns=c.get("dns"))
    n.mtu = link.check_mtu(c.get("mtu") or 0)
    try:
        validate_ifname(n.bridge)
    except CNIError as e:
        raise CNIError(ERR_INVALID_CONFIG, f"bridge {e.msg.removeprefix('interface ')}",
                       "The bridge is a Linux interface: at most 15 characters, no '/', ':' or "
                       "spaces.") from e
    for key in ("vlan", "vlanTrunk", "macspoofchk"):
        if c.get(key):  # accepted by upstream, not implemented here: say so (spec error 2)
            raise CNIError(ERR_UNSUPPORTED_FIELD, f"unsupported field {key}={c[key]!r}",
                           f"The kit's bridge plugin does not implement {key}; use /usr/lib/cni/bridge for it.")
    if n.is_default_gw:
        n.is_gw = True
    if n.hairpin and n.promisc:
        raise CNIError(ERR_INTERNAL, "cannot set hairpin mode and promiscuous mode at the same time")
    env = a.cni_args(known=("MAC",))
    n.mac = env.get("MAC", "")
    n.mac = ((c.get("args") or {}).get("cni") or {}).get("mac") or n.mac
    n.mac = (c.get("runtimeConfig") or {}).get("mac") or n.mac
    link.check_mac(n.mac)
    return n


def calc_gateways(result: dict[str, Any], n: BridgeConf) -> list[str]:
    """Point every IP at the container interface (2), fill in missing gateways (network + 1)
    when isGateway, add a default route per family when isDefaultGateway. Returns the gateway
    addresses (``gw/prefix``) to put on the bridge."""
    gws: list[str] = []
    default_done: set[int] = set()
    for ip in result["ips"]:
        iface = ipaddress.ip_interface(ip["address"])
        ip["interface"] = 2
        if not ip.get("gateway") and n.is_gw:
            ip["gateway"] = str(iface.network.network_address + 1)
        if n.is_default_gw and iface.version not in default_done:
            zero = "0.0.0.0/0" if iface.version == 4 else "::/0"
            if not any(r.get("gw") and link.norm_cidr(r["dst"]) == zero for r in result["routes"]):
                result["routes"].append({"dst": zero, "gw": ip.get("gateway")} if ip.get("gateway")
                                        else {"dst": zero})
            default_done.add(iface.version)
        if n.is_gw and ip.get("gateway"):
            gws.append(f"{ip['gateway']}/{iface.network.prefixlen}")
    return gws


def ensure_addr(ipr: Any, br: Any, gw: str, force: bool) -> None:
    """Put ``gw`` on the bridge; another IPv4 address (or an overlapping IPv6 one) is an error
    unless forceAddress, which replaces it (upstream ensureAddr)."""
    want = ipaddress.ip_interface(gw)
    for a in link.addresses(ipr, br["index"]):
        have = ipaddress.ip_interface(a)
        if have.version != want.version:
            continue
        if have == want:
            return
        if want.version == 4 or have.ip in want.network or want.ip in have.network:
            if not force:
                raise CNIError(ERR_INTERNAL, f'failed to set bridge addr: "{br.get("ifname")}" already has an IP '
                               f"address different from {gw}",
                               "Another network uses this bridge with another subnet; use another bridge "
                               'name, or set "forceAddress": true to replace the address.')
            ipr.addr("del", index=br["index"], address=str(have.ip), prefixlen=have.network.prefixlen)
    try:
        ipr.addr("add", index=br["index"], address=str(want.ip), prefixlen=want.network.prefixlen)
    except link.netlink_error() as e:
        if e.code != 17:  # EEXIST
            raise CNIError(ERR_INTERNAL, f"could not add IP address to {br.get('ifname')!r}: {e}") from e
    # pin the bridge MAC: otherwise it follows the lowest port MAC and changes as ports come and go
    ipr.link("set", index=br["index"], address=br.get("address"))


def cmd_add(a: CmdArgs) -> dict[str, Any]:
    n = load_conf(a)
    job = ipam.Delegation(a, "ADD").start() if n.ipam_type else None  # runs while we do netlink
    trace("IPAM started")
    with attach.Add("bridge", a, job) as add:
        add.open()
        node, cont = add.node, add.cont
        br = link.ensure_bridge(node, n.bridge, n.mtu, n.promisc, made=add.bridges)
        host, hl, cl = link.create_veth(node, add.fd, cont, a.ifname, n.mtu, n.mac)
        add.made = True
        trace("bridge and veth made")
        node.link("set", index=hl["index"], master=br["index"], state="up")
        if n.hairpin:
            node.brport("set", index=hl["index"], mode=1)  # IFLA_BRPORT_MODE: hairpin
        result: dict[str, Any] = {
            "interfaces": [{"name": n.bridge, "mac": br.get("address")},
                           {"name": host, "mac": hl.get("address")},
                           {"name": a.ifname, "mac": cl.get("address"), "sandbox": a.netns}],
            "ips": [], "routes": [], "dns": {}}
        if job is not None:
            r = add.ipam_result()
            result["ips"], result["routes"], result["dns"] = r["ips"], r["routes"], r["dns"]
            gws = calc_gateways(result, n)
            if n.ip_masq:  # iptables-restore runs while we configure the interfaces
                add.masq = ipmasq.setup(n.name, a.container_id, result["ips"])
            with link.entered(add.fd):
                link.sysctl(f"net/ipv6/conf/{a.ifname}/accept_dad", "0")
                link.sysctl(f"net/ipv4/conf/{a.ifname}/arp_notify", "1")
            link.configure_iface(cont, cl["index"], result, 2)
            if n.is_gw:
                for gw in gws:
                    ensure_addr(node, br, gw, n.force_address)
                link.enable_forwarding([{"address": g} for g in gws])
        else:
            cont.link("set", index=cl["index"], state="up")
        trace("addresses, routes, gateway set")
        hl = link.wait_oper_up(node, host)
        trace("host veth up")
        if hl is None or not link.oper_up(hl):
            raise CNIError(ERR_INTERNAL, f"bridge port in error state: {hl.get('operstate') if hl else 'gone'}")
        result["interfaces"][1]["mac"] = hl.get("address")
        result["interfaces"][0]["mac"] = link.link_by_name(node, n.bridge).get("address")
        if dns_set(n.dns):
            result["dns"] = n.dns
        if add.masq is not None:
            add.masq.wait()
            trace("NAT rules in")
        return result


def cmd_del(a: CmdArgs) -> None:
    n = load_conf(a)
    # no IPAM = no addresses, so ADD made no NAT rules either
    attach.delete(a, with_ipam=bool(n.ipam_type), ip_masq=bool(n.ipam_type) and n.ip_masq)


def _find(prev: dict[str, Any], pred: Any) -> tuple[int, dict[str, Any]] | tuple[None, None]:
    for i, itf in enumerate(prev["interfaces"]):
        if pred(itf):
            return i, itf
    return None, None


def cmd_check(a: CmdArgs) -> None:
    n = load_conf(a)
    attach.check(a, bool(n.ipam_type), lambda fd: _check(a, n, fd))


def _check(a: CmdArgs, n: BridgeConf, fd: int) -> None:
    """Compare the kernel with the cached ADD result (upstream bridge cmdCheck)."""
    prev = prev_result(a)
    if prev is None:
        raise CNIError(ERR_INTERNAL, "Required prevResult missing",
                       "CHECK compares the kernel with the cached ADD result; the runtime must pass it.")
    _, br_want = _find(prev, lambda i: i.get("name") == n.bridge)
    cpos, c_want = _find(prev, lambda i: i.get("name") == a.ifname and i.get("sandbox") == a.netns)
    with link.iproute() as node, link.iproute_in(fd) as cont:
        br = link.link_by_name(node, n.bridge)
        if br_want is None or br is None:
            raise CNIError(ERR_INTERNAL, f"CNI created bridge {n.bridge} in host namespace was not found")
        if link.kind(br) != "bridge":
            raise CNIError(ERR_INTERNAL, f"Interface {n.bridge} does not have link type of bridge")
        if br_want.get("mac") and br_want["mac"] != br.get("address"):
            raise CNIError(ERR_INTERNAL, f"Bridge interface {n.bridge} Mac doesn't match: {br_want['mac']}")
        if bool(br["flags"] & link.IFF_PROMISC) != n.promisc:
            raise CNIError(ERR_INTERNAL, f"Bridge interface {n.bridge} configured Promisc Mode {n.promisc} "
                           "doesn't match current state")
        if c_want is None:
            raise CNIError(ERR_INTERNAL, f"Sandbox in prevResult doesn't match configured netns: {a.netns}")
        cl = link.link_by_name(cont, a.ifname)
        if cl is None:
            raise CNIError(ERR_INTERNAL, f"CNI created interface in container {a.ifname} not found")
        if link.kind(cl) != "veth":
            raise CNIError(ERR_INTERNAL, f"Error: Container interface {a.ifname} not of type veth")
        if c_want.get("mac") and c_want["mac"] != cl.get("address"):
            raise CNIError(ERR_INTERNAL, f"Interface {a.ifname} Mac {c_want['mac']} doesn't match container "
                           f"Mac: {cl.get('address')}")
        peer = cl.get("link")
        ok = False
        for itf in prev["interfaces"]:
            if itf is br_want or itf is c_want or itf.get("sandbox"):
                continue
            hl = link.link_by_name(node, itf.get("name", ""))
            if hl is not None and link.kind(hl) == "veth" and hl["index"] == peer \
                    and hl.get("master") == br["index"]:
                if itf.get("mac") and itf["mac"] != hl.get("address"):
                    raise CNIError(ERR_INTERNAL, f"Interface {itf['name']} Mac doesn't match: {itf['mac']}")
                ok = True
                break
        if not ok:
            raise CNIError(ERR_INTERNAL, f"CNI veth created for bridge {n.bridge} was not found")
        ips = [ip for ip in prev["ips"] if ip.get("interface", cpos) == cpos]
        link.check_ips(cont, a.ifname, ips)
        link.check_routes(cont, prev["routes"])


def cmd_gc(a: CmdArgs) -> None:
    """Spec 1.1.0 GC: forward to the IPAM plugin (required by §4), and drop the NAT chains of
    attachments that are not in ``cni.dev/valid-attachments``."""
    n = load_conf(a)
    attach.gc(a, bool(n.ipam_type), n.ip_masq, log_as="bridge")


def cmd_status(a: CmdArgs) -> None:
    n = load_conf(a)
    if n.ip_masq:
        try:
            ipmasq._tool(4)
        except CNIError as e:
            raise CNIError(50, f"bridge cannot do ipMasq: {e.msg}", e.details) from e
    if n.ipam_type:
        ipam.run(a, "STATUS")


HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}


def main() -> None:
    plugin_main("bridge", HANDLERS)


if __name__ == "__main__":
    main()
