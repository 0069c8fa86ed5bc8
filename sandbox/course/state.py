"""What the kit has made on this machine right now, section by section — for the live state view.

:func:`snapshot` reads it through the library's own views (nothing here parses kernel state
itself): pods and their apps (:func:`sandbox.pod.stage0.list_pods`), the kit's network
namespaces with their links and addresses (:func:`sandbox.net.netns.snapshot`), the kit's links
in the host namespace, CNI cache entries (:class:`sandbox.net.cni.cache.Cache`) and host-local's
IPAM leases (:class:`sandbox.net.plugins.host_local.Store`) wherever the kit keeps them, trusted
keys (:class:`sandbox.trust.truststore.TrustStore`), rendered trees and clean copies
(:mod:`sandbox.render.treestore`), mounts below the state directory
(:func:`sandbox._sys.mountinfo.below`), lab workspaces and notebook state.

Each entry has a stable key, so two snapshots can be compared: what appeared, what went away
(:func:`diff`). Reading never changes anything.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandbox import config

SECTIONS = ("pods", "network namespaces", "host links", "CNI cache", "IPAM leases",
            "trusted keys", "rendered trees", "clean copies", "mounts", "labs and notebooks")


@dataclass(frozen=True)
class Entry:
    key: str            # stable across snapshots (what the object is)
    text: str           # what it looks like now (addresses, states…)
    kind: str = ""      # the palette kind it is drawn with (netns, veth, bridge, key, …)


Snapshot = dict[str, list[Entry]]

# Where the kit and its notebooks/labs keep CNI caches (``results/``) and host-local data
# (``networks/<net>/``) below the state directory; the walk goes no deeper than this.
_STATE_SUBDIRS = ("cni", "pods", "labs", "notebooks")
_MAX_DEPTH = 5


def _pods() -> list[Entry]:
    from sandbox.pod import stage0
    out = []
    for p in stage0.list_pods():
        apps = ", ".join(f"{a['name']} {a['state']}" for a in p["apps"])
        ips = ", ".join(ip for n in p.get("networks", []) for ip in n.get("ips", []) if ip)
        out.append(Entry(f"pod {p['uuid']}", f"pod {p['uuid'][:8]} {p['state']}: {apps}"
                         + (f" · {ips}" if ips else ""), "netns"))
    return out


def _links(snap: dict) -> str:
    parts = []
    for l in snap["links"]:
        if l["name"] == "lo" and not l["addrs"]:
            continue
        state = "UP" if l["up"] else "DOWN"
        kind = f" {l['kind']}" if l.get("kind") and l["kind"] != "loopback" else ""
        master = f" in {l['master']}" if l.get("master") else ""
        addrs = " " + " ".join(a for a in l["addrs"] if not a.startswith("fe80")) if l["addrs"] else ""
        parts.append(f"{l['name']}{kind} {state}{master}{addrs}".rstrip())
    return "; ".join(parts) or "only lo"


def _netns(prefix: str) -> list[Entry]:
    from sandbox.net import netns
    from sandbox.errors import SandboxError
    out = []
    for name in netns.list():
        if not name.startswith(prefix):
            continue
        try:
            text = _links(netns.snapshot(name))
        except (OSError, SandboxError) as e:
            text = f"cannot be read ({e})"
        out.append(Entry(f"netns {name}", f"{name}: {text}", "netns"))
    return out


def _host_links(prefix: str) -> list[Entry]:
    from sandbox.net import netns
    snap = netns.snapshot("/proc/self/ns/net")
    out = []
    for l in snap["links"]:
        if l["name"].startswith(prefix):
            kind = "bridge" if l.get("kind") == "bridge" else "veth"
            out.append(Entry(f"link {l['name']}", _links({"links": [l]}), kind))
    return out


def _walk(root: Path, name: str) -> list[Path]:
    """Directories called ``name`` below the kit's parts of ``root`` (bounded depth)."""
    found = []
    for part in _STATE_SUBDIRS:
        base = root / part
        if not base.is_dir():
            continue
        for dirpath, dirnames, _ in os.walk(base):
            if name in dirnames:
                found.append(Path(dirpath) / name)
            depth = len(Path(dirpath).relative_to(base).parts)
            # never into what was found, nor into a rootfs (an image's files can be many)
            dirnames[:] = [] if depth >= _MAX_DEPTH else [
                d for d in dirnames if d not in (name, "rootfs")]
    return found


def _cache_dirs() -> list[Path]:
    from sandbox.net.cni.cache import DEFAULT_CACHE_DIR
    dirs = [Path(DEFAULT_CACHE_DIR)] + [p.parent for p in _walk(config.sandbox_dir(), "results")]
    return list(dict.fromkeys(dirs))


def _cni_cache(prefix: str) -> list[Entry]:
    from sandbox.net.cni.cache import DEFAULT_CACHE_DIR, Cache
    out = []
    for d in _cache_dirs():
        for a in Cache(d).attachments():
            if str(d) == DEFAULT_CACHE_DIR and not a.network.startswith(prefix):
                continue   # the machine's own CNI users are not the kit's business
            ips = ", ".join(ip.get("address", "") for ip in a.result.get("ips", []) or [])
            out.append(Entry(f"cache {a.path}", f"{a.network}: {a.container_id[:12]} {a.ifname}"
                             + (f" {ips}" if ips else "") + f" — {a.path}", "file"))
    return out


def _leases(prefix: str) -> list[Entry]:
    from sandbox.net.cni.cache import DEFAULT_CACHE_DIR
    from sandbox.net.plugins.host_local import Store
    data_dirs = [Path(DEFAULT_CACHE_DIR) / "networks"] + _walk(config.sandbox_dir(), "networks")
    out = []
    for d in dict.fromkeys(data_dirs):
        if not d.is_dir():
            continue
        for net in sorted(p.name for p in d.iterdir() if p.is_dir()):
            if d == Path(DEFAULT_CACHE_DIR) / "networks" and not net.startswith(prefix):
                continue
            for ip, holder in Store(d, net).entries():
                cid, _, ifname = holder.partition("\r\n")
                out.append(Entry(f"lease {d / net / ip}",
                                 f"{net}: {ip} → {cid[:12]} {ifname} — {d / net / ip}", "file"))
    return out


def _keys() -> list[Entry]:
    from sandbox.trust.truststore import TrustStore
    out = []
    for k in TrustStore().list():
        scope = "root (every name)" if k.scope == "root" else f"prefix {k.prefix}"
        who = ", ".join(k.uids) or ("masked" if k.masked else "")
        out.append(Entry(f"key {k.path}", f"{scope}: {k.fingerprint[:16]}… {who} ({k.origin})", "key"))
    return out


def _trees() -> list[Entry]:
    from sandbox.render import treestore
    return [Entry(f"tree {t.key}", f"{t.name} — {len(t.layers)} layer(s), rendered {t.rendered_at}",
                  "hashed") for t in treestore.list_trees()]


def _copies() -> list[Entry]:
    from sandbox.render import treestore
    out = []
    for c in treestore.active_copies():
        where = c.get("target") or c.get("state")
        out.append(Entry(f"copy {c['state']}", f"{c.get('name', '?')} at {where}"
                         + (" (overlay)" if c.get("overlay") else ""), "mount"))
    return out


def _mounts() -> list[Entry]:
    from sandbox._sys import mountinfo
    return [Entry(f"mount {m}", m, "mount") for m in mountinfo.below(config.sandbox_dir())]


def _course() -> list[Entry]:
    from sandbox.course import notebook
    out = []
    labs = config.sandbox_dir() / "labs"
    for d in sorted(labs.iterdir()) if labs.is_dir() else []:
        out.append(Entry(f"lab {d.name}", f"lab {int(d.name)} workspace {d}", "file"))
    dead = set(notebook.abandoned())
    nbs = notebook.notebooks_dir()
    for d in sorted(nbs.iterdir()) if nbs.is_dir() else []:
        note = " (its kernel is gone: rerun its first cell)" if d.name in dead else ""
        out.append(Entry(f"notebook {d.name}", f"notebook {d.name} state {d}{note}", "file"))
    return out


READERS: dict[str, Callable[[str], list[Entry]]] = {
    "pods": lambda p: _pods(),
    "network namespaces": _netns,
    "host links": _host_links,
    "CNI cache": _cni_cache,
    "IPAM leases": _leases,
    "trusted keys": lambda p: _keys(),
    "rendered trees": lambda p: _trees(),
    "clean copies": lambda p: _copies(),
    "mounts": lambda p: _mounts(),
    "labs and notebooks": lambda p: _course(),
}


def snapshot(prefix: str = config.NAME_PREFIX) -> Snapshot:
    """Every section, each a list of entries; a section that cannot be read says why."""
    from sandbox.errors import SandboxError
    out: Snapshot = {}
    for section in SECTIONS:
        try:
            out[section] = READERS[section](prefix)
        except (OSError, SandboxError, ValueError) as e:
            out[section] = [Entry(f"error {section}", f"cannot be read: {e}", "refused")]
    return out


def diff(before: Snapshot | None, now: Snapshot) -> tuple[set[str], dict[str, list[Entry]]]:
    """(keys that are new since ``before``, entries of ``before`` that are gone, per section)."""
    if before is None:
        return set(), {}
    new = {e.key for s in now.values() for e in s} - {e.key for s in before.values() for e in s}
    gone = {}
    for section, entries in before.items():
        keys = {e.key for e in now.get(section, [])}
        lost = [e for e in entries if e.key not in keys]
        if lost:
            gone[section] = lost
    return new, gone
