"""CNI spec versions and result conversion (SPEC.md §1 "Version", §5 "Result Types";
libcni pkg/types/{020,040,100} GetAsVersion).

The runtime speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0. Results in the legacy 0.1.0/0.2.0
shape (``ip4``/``ip6`` objects), which plugins still send for a config without ``cniVersion``
such as the one on seed slide 47, are read and up-converted.

Result shapes:
- 0.1.0/0.2.0: ``{"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns"}``
- 0.3.x/0.4.0: ``{"interfaces", "ips": [{"version": "4"|"6", "address", "gateway", "interface"}],
  "routes", "dns"}``
- 1.0.0/1.1.0: the same without ``ips[].version`` (1.1.0 adds optional fields that 1.0.0
  readers ignore).
The runtime converts cached results with it, and the kit's plugins render their results with
it: it is imported by every plugin exec, so it imports only ``sandbox.bounded``, which every
plugin exec has loaded already (``typing``, ``ipaddress`` or ``copy`` would each cost a
millisecond or more per call).
"""
from __future__ import annotations

from sandbox.bounded import plain_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")  # what this runtime sends
LEGACY_VERSIONS = ("0.1.0", "0.2.0")                                # results it can read
CURRENT = "1.1.0"


def parse(v: str) -> tuple[int, int, int]:
    """'1.0.0' -> (1, 0, 0); '' (no cniVersion) means 0.1.0, as libcni's decoder says."""
    if not v:
        return (0, 1, 0)
    # ASCII digits, at most 20 each (bounded.plain_int): "1.².0" and a 5,000-digit part are
    # not versions either, not int()'s own ValueError
    nums = [plain_int(p) for p in v.split(".")]
    if len(nums) != 3 or None in nums:
        raise ValueError(f"'{v[:40]}' is not a CNI version (expected MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    return (nums[0], nums[1], nums[2])


def at_least(v: str, minimum: str) -> bool:
    return parse(v) >= parse(minimum)


def highest(versions: list[str]) -> str:
    return max(versions, key=parse)


def family(v: str) -> str:
    """The result shape a version uses: 'legacy' (0.1/0.2), '0.x' (0.3/0.4) or '1.x'."""
    p = parse(v)
    if p < (0, 3, 0):
        return "legacy"
    return "0.x" if p < (1, 0, 0) else "1.x"


def _copy(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _ip_version(address: str) -> str:
    return "6" if ":" in address else "4"


# fields 1.1.0 added to interfaces and routes (SPEC.md §5); a 1.0.0 or older reader has none
_IFACE_11 = ("mtu", "socketPath", "pciID")
_ROUTE_11 = ("mtu", "advmss", "priority", "table", "scope")


def _from_legacy(res: dict[str, Any]) -> dict[str, Any]:
    """0.1.0/0.2.0 -> 0.3.1-shaped (libcni types040 convertFrom02x)."""
    out: dict[str, Any] = {"cniVersion": "0.3.1", "ips": [], "routes": []}
    for key, ver in (("ip4", "4"), ("ip6", "6")):
        block = res.get(key)
        if not block:
            continue
        ip: dict[str, Any] = {"version": ver, "address": block["ip"]}
        if block.get("gateway"):
            ip["gateway"] = block["gateway"]
        out["ips"].append(ip)
        out["routes"].extend(block.get("routes") or [])
    if not out["routes"]:
        del out["routes"]
    if res.get("dns"):
        out["dns"] = res["dns"]
    return out


def _to_legacy(res: dict[str, Any], to: str) -> dict[str, Any]:
    """0.3+ -> 0.2.0 shape: the first IPv4 and first IPv6 address only (libcni types020)."""
    out: dict[str, Any] = {"cniVersion": to}
    for ip in res.get("ips", []):
        key = "ip4" if _ip_version(ip["address"]) == "4" else "ip6"
        if key in out:
            continue
        block: dict[str, Any] = {"ip": ip["address"]}
        if ip.get("gateway"):
            block["gateway"] = ip["gateway"]
        routes = [r for r in res.get("routes", [])
                  if _ip_version(r["dst"]) == ("4" if key == "ip4" else "6")]
        if routes:
            block["routes"] = routes
        out[key] = block
    out["dns"] = res.get("dns", {})
    return out


def convert_result(result: dict[str, Any], to: str) -> dict[str, Any]:
    """Return ``result`` in the shape of spec version ``to`` (a new dict; input untouched).

    This is what libcni does before handing a cached result to a plugin as ``prevResult``
    (the result must be in the config's version) and what a runtime does to show results."""
    res = _copy(result)
    src = res.get("cniVersion", "")
    if family(src) == "legacy" or ("ip4" in res or "ip6" in res):
        res = _from_legacy(res)
    if family(to) == "legacy":
        return _to_legacy(res, to)
    ips = res.get("ips", [])
    if not at_least(to, "1.1.0"):           # drop what 1.1.0 added
        for key, newer in (("interfaces", _IFACE_11), ("routes", _ROUTE_11)):
            if key in res:
                res[key] = [{k: v for k, v in x.items() if k not in newer} for x in res[key]]
    if family(to) == "0.x":
        for ip in ips:  # 0.3.x/0.4.0 carry an explicit IP version
            ip.setdefault("version", _ip_version(ip["address"]))
    else:
        for ip in ips:  # 1.0.0 dropped it
            ip.pop("version", None)
    res["cniVersion"] = to
    return res
