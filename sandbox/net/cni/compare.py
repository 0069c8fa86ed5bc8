"""Compare two attachments of the same configuration made by different plugin sets (ours vs
upstream): results modulo what is random by design (MAC addresses, host veth names, the netns
path), and kernel state read back with pyroute2 modulo the same."""
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
