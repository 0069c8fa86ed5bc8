"""``loopback``: set ``lo`` up inside the container (upstream plugins/main/loopback).

A new network namespace has a ``lo`` that is DOWN: not even 127.0.0.1 answers. ADD sets it
up and reports it (CNI_IFNAME is ignored; the interface is always ``lo``); with a
``prevResult`` (chained) that result is passed through unchanged. DEL sets it down and
succeeds when the netns is already gone. CHECK fails when ``lo`` is down.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
# every plugin module starts this way: typing costs ms per plugin exec (annotations are
# strings anyway), and the names come from skel
if TYPE_CHECKING:
    from typing import Any

from sandbox._sys.libc import IFF_UP
from sandbox.net.plugins import link
from sandbox.net.plugins.skel import (
    ERR_INTERNAL,
    CmdArgs,
    CNIError,
    load_netconf,
    plugin_main,
)


def _lo(a: CmdArgs, up: bool | None) -> Any:
    fd = link.open_netns(a.netns)
    try:
        with link.iproute_in(fd) as ipr:
            lo = link.link_by_name(ipr, "lo")
            if lo is None:
                raise CNIError(ERR_INTERNAL, "failed to find lo in the container netns")
            if up is not None:
                ipr.link("set", index=lo["index"], state="up" if up else "down")
                lo = link.link_by_name(ipr, "lo")
            return lo, link.addresses(ipr, lo["index"])
    finally:
        os.close(fd)


def cmd_add(a: CmdArgs) -> dict[str, Any]:
    prev = load_netconf(a)      # the config first: a bad prevResult touches nothing
    lo, addrs = _lo(a, up=True)
    if prev is not None:  # chained: pass the previous result through
        return prev
    # what the kernel gave lo once it was up (127.0.0.1/8, and ::1/128 unless IPv6 is off in
    # this netns), read back as upstream's plugin reads it (netlink.AddrList)
    return {"interfaces": [{"name": "lo", "mac": lo.get("address") or "00:00:00:00:00:00",
                            "sandbox": a.netns}],
            "ips": [{"interface": 0, "address": x} for x in addrs], "dns": {}}


def cmd_del(a: CmdArgs) -> None:
    if not a.netns:
        return
    try:
        _lo(a, up=False)
    except link.NetnsGone:
        pass  # nothing left to undo


def cmd_check(a: CmdArgs) -> None:
    prev = load_netconf(a)
    lo, addrs = _lo(a, up=None)
    flags = lo["flags"]
    if not flags & IFF_UP:
        raise CNIError(ERR_INTERNAL, "loopback interface is down",
                       "Something set lo down after ADD; ADD again or run `ip link set lo up` in the container.")
    if prev is not None:
        want = [ip for ip in prev["ips"] if ip.get("interface") is not None
                and prev["interfaces"][ip["interface"]].get("name") == "lo"]
        have = {link.norm_addr(x) for x in addrs}
        for ip in want:
            if link.norm_addr(ip["address"]) not in have:
                raise CNIError(ERR_INTERNAL, f"Failed to match addr {ip['address']} on interface lo")


HANDLERS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check}


def main() -> None:
    plugin_main("loopback", HANDLERS)


if __name__ == "__main__":
    main()
