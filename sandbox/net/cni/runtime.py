"""The runtime side of CNI, libcni's job in Python (SPEC.md §3 "Execution of Network
Configurations"; libcni/api.go).

- ADD runs the plugins of a network in order; each one after the first gets the previous
  plugin's result as ``prevResult`` (§3 "Adding an attachment"). The final result is cached.
- CHECK (0.4.0+) runs them in order with the cached result as ``prevResult``, unless the network
  says ``disableCheck``.
- DEL runs them in *reverse* order with the cached result as ``prevResult`` (0.4.0+), then
  removes the cache entry. DEL must succeed when things are already gone.
- GC (1.1.0) DELs every cached attachment of the network that is no longer valid, then sends GC
  with the list of valid attachments to each plugin. STATUS (1.1.0) asks each plugin whether it
  can take ADDs.
- ``runtimeConfig`` for a plugin = the runtime's capability arguments it declared in
  ``capabilities`` (CONVENTIONS.md).
- A container can join several networks, one interface each (eth0, eth1, …); the attachment key
  is (container ID, interface name).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError
from sandbox.net import netns as _netns
from sandbox.net.cni import version as cniversion
from sandbox.net.cni.cache import DEFAULT_CACHE_DIR, Attachment, Cache
from sandbox.net.cni.conf import (
    DEFAULT_CONF_DIR,
    NAME_RE,
    NetworkConfig,
    load,
    load_all,
)
from sandbox.net.cni.errors import CniError
from sandbox.net.cni.invoke import (
    Exec,
    args_pairs,
    args_string,
    cni_path_list,
    exec_plugin,
    find_plugin,
    supported_versions,
)
from sandbox.steps import Steps, record, snapshotting

Args = str | dict[str, str] | list | None


class AttachmentError(SandboxError):
    """The runtime refused an operation on an attachment (bad names, double ADD, no netns)."""


def validate_ifname(name: str) -> None:
    """libcni ValidateInterfaceName: a Linux interface name."""
    bad = (not name or len(name) > 15 or name in (".", "..") or "/" in name or ":" in name
           or any(c.isspace() for c in name))
    if bad:
        raise AttachmentError(f"'{name}' is not a valid interface name.",
                              hint="Use at most 15 characters without '/', ':' or spaces, e.g. eth0.")


def validate_container_id(cid: str) -> None:
    if not NAME_RE.match(cid or ""):
        raise AttachmentError(f"'{cid}' is not a valid container ID.",
                              hint="Use letters, digits, '_', '.' or '-', starting with a letter or digit.")


def _link_exists(ns_path: str, ifname: str) -> bool:
    """Is there an interface ``ifname`` in that netns? (if_nametoindex(3) on a netlink socket
    the calling thread opens while inside the netns: cheap, no pyroute2 import.)"""
    with _netns.enter(ns_path):
        try:
            socket.if_nametoindex(ifname)
            return True
        except OSError:
            return False


@dataclass
class GcReport:
    """What GC did for one network."""

    network: str
    deleted: list[tuple[str, str]] = field(default_factory=list)   # (container ID, ifname)
    kept: list[tuple[str, str]] = field(default_factory=list)
    plugins_gc: list[str] = field(default_factory=list)            # plugins sent GC
    errors: list[str] = field(default_factory=list)
    note: str = ""


class Runtime:
    """A CNI runtime: configuration directory, plugin path, result cache and (optionally) the
    node netns the plugins run in (``node=``) and a directory they see as /var/lib/cni
    (``plugin_state_dir=``, so host-local's default state stays out of the machine's)."""

    def __init__(self, conf_dir: str | os.PathLike[str] = DEFAULT_CONF_DIR,
                 cni_path: str | list[str] | None = None,
                 cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
                 node: str | os.PathLike[str] | None = None,
                 netns_dir: str | os.PathLike[str] = _netns.DEFAULT_DIR,
                 timeout: float = 60.0, cleanup_on_error: bool = True,
                 plugin_state_dir: str | os.PathLike[str] | None = None) -> None:
        self.conf_dir = Path(conf_dir)
        self.cni_path = cni_path_list(cni_path)
        self.cache = Cache(cache_dir)
        self.node = str(_netns.path_of(node, netns_dir)) if node is not None else None
        self.netns_dir = Path(netns_dir)
        self.timeout = timeout
        self.cleanup_on_error = cleanup_on_error
        # plugins see this directory as /var/lib/cni (private mount namespace), see invoke
        self.plugin_state_dir = Path(plugin_state_dir) if plugin_state_dir is not None else None
        self.calls: list[Exec] = []          # every plugin exec, in order (for --explain)
        self._lock = threading.Lock()
        self._film: Any = None               # the recording, while a stepper's Steps is given

    # -- configuration ---------------------------------------------------------------------
    def networks(self, steps: Steps | None = None) -> list[NetworkConfig]:
        return load_all(self.conf_dir, steps)

    def network(self, net: str | NetworkConfig, steps: Steps | None = None) -> NetworkConfig:
        return net if isinstance(net, NetworkConfig) else load(net, self.conf_dir, steps)

    def plugin_path(self, type_: str) -> Path:
        return find_plugin(type_, self.cni_path)

    def versions(self, type_: str) -> list[str]:
        """The plugin's VERSION answer."""
        return supported_versions(self.plugin_path(type_))

    def negotiate(self, net: NetworkConfig, steps: Steps | None = None) -> str:
        """The cniVersion to send. With ``cniVersions`` (1.1.0 §1) pick the highest version this
        runtime *and* every plugin of the list support (asked with VERSION); else the config's."""
        if not net.cni_versions:
            return net.cni_version
        wanted = {v for v in [*net.cni_versions, net.cni_version] if v} & set(
            cniversion.SUPPORTED_VERSIONS)
        common = set(wanted)
        for p in net.plugins:
            vs = self.versions(p["type"])
            record(steps, "check", f"VERSION {p['type']}", supportedVersions=vs)
            common &= set(vs)
        if not common:
            raise CniError(1, f"no version in {sorted(wanted, key=cniversion.parse)} is supported "
                           f"by every plugin of network {net.name}", network=net.name,
                           versions=sorted(wanted, key=cniversion.parse))
        chosen = cniversion.highest(sorted(common))
        record(steps, "check", f"negotiated cniVersion {chosen}", network=net.name,
               offered=net.cni_versions)
        return chosen

    # -- helpers ---------------------------------------------------------------------------
    def netns_path(self, netns: str | os.PathLike[str] | None) -> str:
        """CNI_NETNS: a name becomes <netns dir>/<name>; a path stays a path; None/'' -> ''."""
        if netns is None or os.fspath(netns) == "":
            return ""
        return str(_netns.path_of(netns, self.netns_dir).absolute())

    def container_id_for(self, netns: str | os.PathLike[str]) -> str:
        """Default container ID: the netns name (also for <netns dir>/<name>), else a digest
        of its path."""
        s = os.fspath(netns)
        if "/" in s and Path(s).parent == self.netns_dir:
            s = Path(s).name
        if "/" not in s and NAME_RE.match(s):
            return s
        return "sbx-" + hashlib.sha256(os.path.abspath(s).encode()).hexdigest()[:16]

    def plugin_config(self, net: NetworkConfig, plugin: dict[str, Any], version: str,
                      prev_result: dict[str, Any] | None,
                      capability_args: dict[str, Any] | None) -> bytes:
        """The stdin of one plugin call (§3 "Deriving execution configuration from plugin
        configuration"): the plugin object with the list's ``name`` and ``cniVersion``,
        ``runtimeConfig`` from declared capabilities, and ``prevResult``."""
        conf: dict[str, Any] = {"cniVersion": version, "name": net.name}
        conf.update({k: v for k, v in plugin.items() if k not in ("cniVersion", "name")})
        caps = plugin.get("capabilities") or {}
        rc = {c: capability_args[c] for c, on in caps.items()
              if on and capability_args and c in capability_args}
        if rc:
            conf["runtimeConfig"] = rc
        if prev_result is not None:
            conf["prevResult"] = prev_result
        return json.dumps(conf).encode()

    def _exec(self, net: NetworkConfig, plugin: dict[str, Any], command: str, stdin: bytes,
              cid: str, netns: str, ifname: str, args: str,
              steps: Steps | None) -> dict[str, Any] | None:
        film = self._film
        kw: dict[str, Any] = dict(container_id=cid, netns=netns, ifname=ifname, args=args,
                                  cni_path=self.cni_path, node=self.node, network=net.name,
                                  timeout=self.timeout, log=self.calls,
                                  plugin_state_dir=self.plugin_state_dir)
        if film is None:
            return exec_plugin(self.plugin_path(plugin["type"]), command, stdin, steps=steps, **kw)
        n = len(self.calls)
        try:   # the film records the exec step itself, after the changes it made
            return exec_plugin(self.plugin_path(plugin["type"]), command, stdin, steps=None,
                               extra_env=film.env(), on_start=film.on_start, **kw)
        finally:
            film.done(self.calls[-1] if len(self.calls) > n else None)

    @contextlib.contextmanager
    def _filming(self, steps: Steps | None, op: str, containers: dict[str, str],
                 since: int = 0) -> Any:
        """While a stepper asked for it (a snapshotting ``Steps``), record the operation with
        the kernel's changes in the node and container namespaces (:mod:`sandbox.net.cni.film`);
        ``since``: where the operation's steps begin in ``steps``. Nothing is watched
        otherwise; a nested operation (GC's DELs) joins the running film."""
        if self._film is not None or not snapshotting(steps):
            yield
            return
        assert steps is not None
        from sandbox.net.cni.film import CniFilm  # only a recording stepper pays for it
        live = {k: v for k, v in containers.items() if v and _netns.is_netns(v)}
        film = CniFilm(steps, op, self.node, live).start(since)
        self._film = film
        try:
            yield
        finally:
            self._film = None
            film.stop()

    # -- ADD / CHECK / DEL -----------------------------------------------------------------
    def add(self, net: str | NetworkConfig, netns: str | os.PathLike[str],
            container_id: str | None = None, ifname: str = "eth0", args: Args = None,
            capability_args: dict[str, Any] | None = None,
            steps: Steps | None = None) -> dict[str, Any]:
        """Attach the container whose netns is ``netns`` to ``net`` as ``ifname``; return the
        final result (in the network's cniVersion) and cache it."""
        since = len(steps) if steps is not None else 0
        net = self.network(net, steps)
        cid = container_id or self.container_id_for(netns)
        validate_container_id(cid)
        validate_ifname(ifname)
        ns_path = self.netns_path(netns)
        if not _netns.is_netns(ns_path):
            raise AttachmentError(f"There is no network namespace at {ns_path}.",
                                  hint="Create it first: sandbox netns add NAME.")
        for a in self.cache.attachments(container_id=cid):
            if a.ifname == ifname:  # the attachment key is (container ID, interface)
                raise AttachmentError(
                    f"Container {cid} already has {ifname} (network '{a.network}').",
                    hint=f"DEL it first (sandbox net del {a.network} …) or use another --ifname.")
        # If the interface is already there, a failed ADD must not be undone by DEL: DEL would
        # delete an interface this attachment never made (e.g. another network's eth0).
        existed = _link_exists(ns_path, ifname)
        version = self.negotiate(net, steps)
        self.cache.ensure()     # before any plugin attaches what could not be cached
        with self._filming(steps, "ADD", {cid: ns_path}, since):
            return self._add(net, cid, ns_path, ifname, args, capability_args, version, existed,
                             steps)

    def _add(self, net: NetworkConfig, cid: str, ns_path: str, ifname: str, args: Args,
             capability_args: dict[str, Any] | None, version: str, existed: bool,
             steps: Steps | None) -> dict[str, Any]:
        a_str = args_string(args)
        result: dict[str, Any] | None = None

        def undo() -> None:
            # any failure after an earlier plugin (or this one) took something: addresses
            # reserved by host-local, links, NAT rules. §3: the runtime then calls DEL.
            if existed:
                record(steps, "check", f"ADD failed; {ifname} existed before, so no DEL")
            elif self.cleanup_on_error:
                record(steps, "check", "ADD failed: running DEL to undo it", network=net.name)
                try:
                    self._del_plugins(net, version, None, cid, ns_path, ifname, a_str,
                                      capability_args, steps, best_effort=True)
                except SandboxError as e:
                    record(steps, "check", "cleanup DEL failed too", error=str(e))

        for plugin in net.plugins:
            stdin = self.plugin_config(net, plugin, version, result, capability_args)
            try:
                result = self._exec(net, plugin, "ADD", stdin, cid, ns_path, ifname, a_str, steps)
                if result is None:
                    raise CniError(6, "ADD succeeded but printed no result", plugin=plugin["type"],
                                   command="ADD", network=net.name,
                                   explanation="A plugin must print its result JSON on ADD.")
            except SandboxError:
                undo()
                raise
        assert result is not None
        try:    # an attachment that cannot be cached cannot be DELeted later: undone now
            self.cache.put(Attachment(network=net.name, container_id=cid, ifname=ifname,
                                      netns=ns_path, config=net.bytes, cni_args=args_pairs(args),
                                      capability_args=capability_args or {}, result=result), steps)
        except SandboxError:
            undo()
            raise
        return result

    def cached(self, net: str | NetworkConfig, container_id: str, ifname: str = "eth0") -> Attachment | None:
        name = net.name if isinstance(net, NetworkConfig) else net
        return self.cache.get(name, container_id, ifname)

    def check(self, net: str | NetworkConfig, netns: str | os.PathLike[str],
              container_id: str | None = None, ifname: str = "eth0", args: Args = None,
              capability_args: dict[str, Any] | None = None, steps: Steps | None = None) -> None:
        """CHECK the attachment against the cached ADD result; raises CniError on drift."""
        net = self.network(net, steps)
        cid = container_id or self.container_id_for(netns)
        version = self.negotiate(net, steps)
        if not cniversion.at_least(version or "0.1.0", "0.4.0"):
            raise AttachmentError(f"Network '{net.name}' uses cniVersion {version or '(none)'}; "
                                  "CHECK exists from 0.4.0 on.",
                                  hint="Raise cniVersion in its configuration file.")
        if net.disable_check:
            record(steps, "check", f"network {net.name} has disableCheck: nothing run")
            return
        cached = self.cache.get(net.name, cid, ifname, steps)
        if cached is None:
            raise AttachmentError(f"Nothing cached for container {cid} {ifname} on '{net.name}'.",
                                  hint="CHECK compares with the ADD result: ADD it first.")
        prev = cniversion.convert_result(cached.result, version)
        a_str = args_string(args) if args is not None else args_string(cached.cni_args)
        caps = capability_args if capability_args is not None else cached.capability_args
        for plugin in net.plugins:
            stdin = self.plugin_config(net, plugin, version, prev, caps)
            self._exec(net, plugin, "CHECK", stdin, cid, self.netns_path(netns), ifname, a_str,
                       steps)

    def _del_plugins(self, net: NetworkConfig, version: str, prev: dict[str, Any] | None,
                     cid: str, ns_path: str, ifname: str, a_str: str,
                     caps: dict[str, Any] | None, steps: Steps | None,
                     best_effort: bool = False) -> None:
        """DEL of every plugin, in reverse order (§3). ``best_effort`` (the clean-up after a
        failed ADD): a plugin's failure does not stop the ones before it from giving back what
        they took (host-local's reservation); the first error is raised at the end."""
        first: SandboxError | None = None
        for plugin in reversed(net.plugins):
            stdin = self.plugin_config(net, plugin, version, prev, caps)
            try:
                self._exec(net, plugin, "DEL", stdin, cid, ns_path, ifname, a_str, steps)
            except SandboxError as e:
                if not best_effort:
                    raise
                record(steps, "check", f"cleanup DEL of {plugin['type']} failed", error=str(e))
                first = first or e
        if first is not None:
            raise first

    def delete(self, net: str | NetworkConfig, netns: str | os.PathLike[str] | None = None,
               container_id: str | None = None, ifname: str = "eth0", args: Args = None,
               capability_args: dict[str, Any] | None = None, steps: Steps | None = None) -> None:
        """DEL: reverse order, cached result as prevResult (0.4.0+), then drop the cache entry.

        Works when the netns is gone (or ``netns`` is None/''), and twice in a row."""
        since = len(steps) if steps is not None else 0
        net = self.network(net, steps)
        if container_id is None:
            if netns is None:
                raise AttachmentError("DEL needs a container ID or a netns.")
            container_id = self.container_id_for(netns)
        validate_container_id(container_id)
        validate_ifname(ifname)
        version = self.negotiate(net, steps)
        cached = self.cache.get(net.name, container_id, ifname, steps)
        prev = None
        if cached is not None and cniversion.at_least(version or "0.1.0", "0.4.0"):
            prev = cniversion.convert_result(cached.result, version)
        ns_path = self.netns_path(netns) if netns is not None else (cached.netns if cached else "")
        a_str = args_string(args) if args is not None else args_string(cached.cni_args if cached else None)
        caps = capability_args if capability_args is not None else (
            cached.capability_args if cached else None)
        with self._filming(steps, "DEL", {container_id: ns_path}, since):
            self._del_plugins(net, version, prev, container_id, ns_path, ifname, a_str, caps, steps)
            self.cache.delete(net.name, container_id, ifname, steps)

    # -- GC / STATUS -----------------------------------------------------------------------
    def attachments(self, container_id: str | None = None,
                    network: str | None = None) -> list[Attachment]:
        return self.cache.attachments(container_id, network)

    def gc(self, net: str | NetworkConfig | None = None,
           valid: list[tuple[str, str]] | None = None,
           steps: Steps | None = None) -> list[GcReport]:
        """Garbage-collect one network (or every network in the conf dir).

        ``valid`` lists the (container ID, ifname) attachments still in use; by default, those
        whose cached netns still exists. Stale ones get a DEL; then 1.1.0+ networks send GC with
        the valid list (both the 1.1.0 key ``cni.dev/attachments`` and the newer
        ``cni.dev/valid-attachments``) so plugins free what no cache entry covers."""
        since = len(steps) if steps is not None else 0
        nets = [self.network(net, steps)] if net is not None else self.networks(steps)
        live = {a.container_id: a.netns for n in nets for a in self.cache.attachments(network=n.name)}
        with self._filming(steps, "GC", live, since):
            return self._gc(nets, valid, steps)

    def _gc(self, nets: list[NetworkConfig], valid: list[tuple[str, str]] | None,
            steps: Steps | None) -> list[GcReport]:
        reports = []
        for n in nets:
            rep = GcReport(n.name)
            cached = self.cache.attachments(network=n.name)
            keep = set(valid) if valid is not None else {
                (a.container_id, a.ifname) for a in cached if _netns.is_netns(a.netns)}
            for a in cached:
                key = (a.container_id, a.ifname)
                if key in keep:
                    rep.kept.append(key)
                    continue
                try:
                    self.delete(n, a.netns or None, a.container_id, a.ifname, a.cni_args,
                                a.capability_args, steps)
                    rep.deleted.append(key)
                except SandboxError as e:
                    rep.errors.append(f"DEL {a.container_id} {a.ifname}: {e}")
            version = n.cni_version
            if n.disable_gc:
                rep.note = "disableGC is set: plugins were not sent GC"
            elif not cniversion.at_least(version or "0.1.0", "1.1.0"):
                rep.note = f"cniVersion {version or '(none)'} < 1.1.0: plugins were not sent GC"
            else:
                still = [{"containerID": c, "ifname": i} for c, i in sorted(keep)]
                for plugin in n.plugins:
                    conf: dict[str, Any] = {"cniVersion": version, "name": n.name}
                    conf.update({k: v for k, v in plugin.items() if k not in ("cniVersion", "name")})
                    conf["cni.dev/attachments"] = still
                    conf["cni.dev/valid-attachments"] = still
                    try:
                        self._exec(n, plugin, "GC", json.dumps(conf).encode(), "", "", "", "", steps)
                        rep.plugins_gc.append(plugin["type"])
                    except SandboxError as e:
                        rep.errors.append(f"GC {plugin['type']}: {e}")
            reports.append(rep)
        return reports

    def status(self, net: str | NetworkConfig | None = None,
               steps: Steps | None = None) -> dict[str, str | CniError]:
        """STATUS (1.1.0) per network: 'ok', a note for older versions, or the CniError."""
        nets = [self.network(net, steps)] if net is not None else self.networks(steps)
        out: dict[str, str | CniError] = {}
        for n in nets:
            if not cniversion.at_least(n.cni_version or "0.1.0", "1.1.0"):
                out[n.name] = f"ok (cniVersion {n.cni_version or 'none'} has no STATUS; assumed ready)"
                continue
            out[n.name] = "ok"
            for plugin in n.plugins:
                conf: dict[str, Any] = {"cniVersion": n.cni_version, "name": n.name}
                conf.update({k: v for k, v in plugin.items() if k not in ("cniVersion", "name")})
                try:
                    self._exec(n, plugin, "STATUS", json.dumps(conf).encode(), "", "", "", "", steps)
                except CniError as e:
                    out[n.name] = e
                    break
        return out
