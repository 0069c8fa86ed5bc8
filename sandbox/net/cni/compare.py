"""Compare two attachments of the same configuration made by different plugin sets (ours vs
upstream): results modulo what is random by design (MAC addresses, host veth names, the netns
path), and kernel state read back with pyroute2 modulo the same. :func:`twins` makes such a pair
(each plugin set in a node of its own), :func:`del_without_netns` DELs the hard ways."""
from __future__ import annotations

import copy
import re
from typing import Any

_VETH = re.compile(r"^veth[0-9a-f]{8}$")


def normalize_result(result: dict[str, Any]) -> dict[str, Any]:
    """The result with MACs, generated veth names and sandbox paths replaced by placeholders."""
    r = copy.deepcopy(result)
    for i in r.get("interfaces", []):
        if "mac" in i:
            i["mac"] = "<mac>" if i["mac"] != "00:00:00:00:00:00" else i["mac"]
        if _VETH.match(i.get("name", "")):
            i["name"] = "<veth>"
        if i.get("sandbox"):
            i["sandbox"] = "<netns>"
    r.pop("dns", None) if r.get("dns") in ({}, None) else None
    return r


def normalize_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    """Links (name, kind, up, master, IPv4/global addresses) and routes, sorted, without indexes,
    MACs and generated veth names."""
    def name(n: str | None) -> str | None:
        return "<veth>" if n and _VETH.match(n) else n

    links = sorted(
        (name(l["name"]) or "", l.get("kind") or "", l["up"], name(l.get("master")) or "",
         tuple(sorted(a for a in l["addrs"] if not a.startswith("fe80:"))))
        for l in snap["links"])
    routes = sorted((r["dst"], r.get("gateway") or "", name(r.get("dev")) or "")
                    for r in snap["routes"] if r.get("family") == 4)
    return {"links": links, "routes": routes}


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values (empty list = equivalent)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}.{k}: only in second ({b[k]!r})")
            elif k not in b:
                out.append(f"{path}.{k}: only in first ({a[k]!r})")
            else:
                out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)} ({a!r} vs {b!r})"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path or '.'}: {a!r} vs {b!r}"]


# -- the same configuration through two plugin sets (notebook 06) --------------------------------

class Twin:
    """One plugin set's run of a configuration: its runtime, node, container and ADD result."""

    def __init__(self, label: str, runtime: Any, node: Any, container: Any,
                 result: dict[str, Any]) -> None:
        self.label, self.runtime, self.node, self.container, self.result = (
            label, runtime, node, container, result)

    def __repr__(self) -> str:
        return f"Twin({self.label}: node {self.node}, container {self.container})"


def twins(session: Any, conf: dict[str, Any], plugin_sets: dict[str, Any],
          workdir: Any) -> dict[str, Twin]:
    """ADD one container with ``conf`` through each plugin set (``{label: CNI_PATH}``), each
    set in a node of its own (``session`` makes the namespaces) with its own state under
    ``workdir/<label>``."""
    import json
    from pathlib import Path

    from sandbox.net.cni.runtime import Runtime
    out = {}
    for label, cni_path in plugin_sets.items():
        d = Path(workdir) / label
        (d / "net.d").mkdir(parents=True)
        (d / "net.d" / f"10-{conf['name']}.conf").write_text(json.dumps(conf, indent=2))
        node, container = session.node(), session.create()
        rt = Runtime(conf_dir=d / "net.d", cni_path=cni_path, cache_dir=d / "cache", node=node,
                     plugin_state_dir=d / "state")
        out[label] = Twin(label, rt, node, container, rt.add(conf["name"], container))
    return out


def twin_differences(pair: dict[str, Twin]) -> dict[str, list[str]]:
    """What differs between the first two twins, modulo what is random by design: the results,
    the nodes' kernel state and the containers' (read back with netlink)."""
    from sandbox.net import netns
    a, b = list(pair.values())[:2]
    return {
        "result": differences(normalize_result(a.result), normalize_result(b.result)),
        "node": differences(normalize_snapshot(netns.snapshot(a.node)),
                            normalize_snapshot(netns.snapshot(b.node))),
        "container": differences(normalize_snapshot(netns.snapshot(a.container)),
                                 normalize_snapshot(netns.snapshot(b.container))),
    }


def del_without_netns(twin: Twin, how: str) -> dict[str, Any]:
    """ADD one more container through ``twin``'s plugins, then DEL it the hard way:
    ``how="gone"`` — its netns is deleted first, DEL names a path that no longer exists;
    ``how="empty"`` — DEL with an empty CNI_NETNS (what plugins#810 is about). Returns what was
    left behind in the node: NAT rules naming the container, and whether its address is free."""
    from sandbox.net import netns
    from sandbox.net.plugins import ipmasq
    if how not in ("gone", "empty"):
        raise ValueError("how is 'gone' or 'empty'")
    rt, name = twin.runtime, json_name(twin)
    c = netns.unique_name("sbx")
    path = netns.create(c)
    try:
        res = rt.add(name, path)
        cid = rt.container_id_for(path)
        ip = res["ips"][0]["address"].split("/")[0]
        if how == "gone":
            netns.delete(c)
            rt.delete(name, path, container_id=cid)
        else:
            rt.delete(name, "", container_id=cid)
        chain = ipmasq.chain_name(name, cid)
        left = [r for r in netns.nat_rules(twin.node) if chain in r]
        state = rt.plugin_state_dir / "networks" / name / ip if rt.plugin_state_dir else None
        return {"plugins": twin.label, "DEL with CNI_NETNS": "a path that is gone" if how == "gone"
                else "'' (empty)", "NAT rules left for it": len(left),
                "address freed": state is not None and not state.exists()}
    finally:
        netns.delete(c, missing_ok=True)


def json_name(twin: Twin) -> str:
    """The network name of a twin (its one configuration)."""
    return twin.runtime.networks()[0].name
