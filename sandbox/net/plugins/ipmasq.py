"""``ipMasq``: source NAT for a container's traffic leaving the network, done the way upstream
does it (containernetworking/plugins pkg/ip ipmasq_linux.go) so both can clean up each other:

    nat chain  CNI-<first 24 hex of sha512(network name + container ID)>
      -A CNI-… -d <container subnet> -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j ACCEPT
      -A CNI-… ! -d 224.0.0.0/4      -m comment --comment "…" -j MASQUERADE   (IPv6: ff00::/8)
    -A POSTROUTING -s <container ip>/32 -m comment --comment "…" -j CNI-…

The rules go into the netns the plugin runs in (the "node"). Teardown differs from upstream on
purpose: upstream rebuilds the POSTROUTING rule from the container's live addresses, which it
cannot read once the netns is gone, so the chain leaks (plugins#810). Here teardown finds every
POSTROUTING rule that jumps to the attachment's chain by *name* (derived from network name and
container ID, both known at DEL), so DEL always removes it. GC removes the chains of attachments
that are not valid any more, found by the comment.
"""
from __future__ import annotations

import ipaddress
import os
import re

from sandbox.net.plugins.spawn import Proc

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ms per plugin exec; annotations are strings anyway
    from typing import Any, Iterable

from sandbox.net.plugins.skel import ERR_INTERNAL, CNIError, step

_COMMENT_RE = re.compile(r'--comment "name: \\"(?P<net>[^"\\]*)\\" id: \\"(?P<cid>[^"\\]*)\\""')


def chain_name(network: str, container_id: str) -> str:
    """Upstream utils.FormatChainName: ``CNI-`` + 24 hex digits of sha512(name + id)."""
    try:
        from _sha512 import (
            sha512,  # the builtin module: hashlib would load OpenSSL first
        )
    except ImportError:
        from hashlib import sha512
    return "CNI-" + sha512((network + container_id).encode()).hexdigest()[:24]


def comment(network: str, container_id: str) -> str:
    """Upstream utils.FormatComment."""
    return f'name: "{network}" id: "{container_id}"'


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tool(family: int, restore: bool = False) -> str:
    name = ("iptables" if family == 4 else "ip6tables") + ("-restore" if restore else "")
    dirs = os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]
    path = next((os.path.join(d, name) for d in dirs
                 if d and os.access(os.path.join(d, name), os.X_OK)), None)
    if path is None:
        raise CNIError(ERR_INTERNAL, f"{name} not found", "ipMasq needs iptables (Debian package iptables).")
    return path


class Pending:
    """iptables-restore calls running in the background (the caller does netlink meanwhile)."""

    def __init__(self) -> None:
        self.procs: list[tuple[Proc, str]] = []

    def start(self, family: int, lines: list[str]) -> None:
        """Apply nat-table changes in one iptables-restore call (--noflush keeps other rules)."""
        text = "*nat\n" + "\n".join(lines) + "\nCOMMIT\n"
        step("exec", f"{'iptables' if family == 4 else 'ip6tables'}-restore -w --noflush", stdin=text)
        self.procs.append((Proc([_tool(family, restore=True), "-w", "--noflush"], text.encode()), text))

    def wait(self, check: bool = True) -> bool:
        ok = True
        for p, text in self.procs:
            rc, out = p.wait()
            if rc != 0:
                ok = False
                if check:
                    raise CNIError(ERR_INTERNAL, f"failed to apply ipMasq rules: {out.decode().strip()}", text)
        self.procs = []
        return ok


def _restore(family: int, lines: list[str]) -> None:
    p = Pending()
    p.start(family, lines)
    p.wait()


def _list_nat(family: int) -> list[str]:
    rc, out = Proc([_tool(family), "-w", "-t", "nat", "-S"]).wait()
    if rc != 0:
        raise CNIError(ERR_INTERNAL, f"failed to list nat rules: {out.decode().strip()}")
    return out.decode().splitlines()


def setup(network: str, container_id: str, ips: list[dict[str, Any]]) -> Pending:
    """Start adding the chain and the POSTROUTING jump for each of the result's addresses;
    call ``.wait()`` on the answer."""
    chain, note = chain_name(network, container_id), _quote(comment(network, container_id))
    pending = Pending()
    for family in (4, 6):
        nets = [ipaddress.ip_interface(ip["address"]) for ip in ips]
        nets = [n for n in nets if n.version == family]
        if not nets:
            continue
        multicast = "224.0.0.0/4" if family == 4 else "ff00::/8"
        lines = [f":{chain} - [0:0]"]
        for n in nets:
            lines.append(f"-A {chain} -d {n.network} -m comment --comment {note} -j ACCEPT")
        lines.append(f"-A {chain} ! -d {multicast} -m comment --comment {note} -j MASQUERADE")
        for n in nets:
            lines.append(f"-A POSTROUTING -s {n.ip}/{n.max_prefixlen} -m comment --comment {note} -j {chain}")
        pending.start(family, lines)
    return pending


def _teardown_chains(family: int, chains: set[str], rules: list[str]) -> list[str]:
    lines = [("-D" + r[2:]) for r in rules
             if r.startswith("-A POSTROUTING ") and r.split(" -j ")[-1].strip() in chains]
    present = {r.split()[1] for r in rules if r.startswith("-N ")} & chains
    for c in sorted(present):
        lines += [f"-F {c}", f"-X {c}"]
    if lines:
        _restore(family, lines)
    return sorted(present)


class Teardown:
    """Remove the attachment's POSTROUTING jumps and its chain, whatever its IPs were.

    Fast path (one exec per family, started at construction so it runs in the background):
    with the cached result's addresses, delete the exact rules ADD made, then the chain, in one
    atomic iptables-restore. If that does not apply (rules already gone, or other addresses),
    :meth:`finish` lists the nat table and removes every jump to the chain by its *name*: this
    needs neither the netns nor the IPs (plugins#810)."""

    def __init__(self, network: str, container_id: str, result: dict[str, Any] | None = None,
                 families: Iterable[int] = (4, 6)) -> None:
        self.chain = chain_name(network, container_id)
        note = _quote(comment(network, container_id))
        ips = [ipaddress.ip_interface(ip["address"]) for ip in (result or {}).get("ips", [])]
        self.fast: dict[int, Pending] = {}
        self.families = tuple(families)
        for family in self.families:
            mine = [i for i in ips if i.version == family]
            if mine:
                p = self.fast[family] = Pending()
                p.start(family, [f"-D POSTROUTING -s {i.ip}/{i.max_prefixlen} -m comment --comment {note} "
                                 f"-j {self.chain}" for i in mine] + [f"-F {self.chain}", f"-X {self.chain}"])

    def finish(self) -> None:
        for family in self.families:
            if family in self.fast and self.fast[family].wait(check=False):
                continue
            _teardown_chains(family, {self.chain}, _list_nat(family))


def teardown(network: str, container_id: str, result: dict[str, Any] | None = None,
             families: Iterable[int] = (4, 6)) -> None:
    """:class:`Teardown`, waited for."""
    Teardown(network, container_id, result, families).finish()


def gc(network: str, valid_ids: set[str], families: Iterable[int] = (4, 6)) -> list[str]:
    """Remove the ipMasq chains of this network whose container ID is not valid any more."""
    removed = []
    for family in families:
        rules = _list_nat(family)
        stale = set()
        for r in rules:
            m = _COMMENT_RE.search(r)
            if r.startswith("-A POSTROUTING ") and m and m["net"] == network and m["cid"] not in valid_ids:
                stale.add(r.split(" -j ")[-1].strip())
        if stale:
            removed += _teardown_chains(family, stale, rules)
    return removed


def families_of(result: dict[str, Any] | None, conf: dict[str, Any] | None = None) -> tuple[int, ...]:
    """Address families to look at for teardown: from the cached result, else from the
    host-local subnets of the config, else both."""
    if result and result.get("ips"):
        return tuple(sorted({6 if ":" in ip["address"] else 4 for ip in result["ips"]}))
    ipam = (conf or {}).get("ipam") or {}
    subnets = [ipam.get("subnet")] + [r.get("subnet") for rs in ipam.get("ranges") or [] for r in rs
                                      if isinstance(r, dict)]
    subnets = [str(x) for x in subnets if x]
    if ipam.get("type") == "host-local" and subnets and not (conf or {}).get("runtimeConfig", {}).get("ipRanges"):
        return tuple(sorted({6 if ":" in x else 4 for x in subnets}))
    return (4, 6)
