"""Network configurations (SPEC.md §1 "Network configuration format"; libcni conf.go).

A *network configuration* (a ``.conflist``; spec 1.0 calls it just "network configuration")
names a network and lists the plugins to run, in order. The older single-plugin form (``.conf``,
the one on seed slide 47) is up-converted to a list of one, as libcni does. Files are read from a
directory (default ``/etc/cni/net.d``) in lexical order of their names; ``*.conf``,
``*.conflist`` and ``*.json`` count, and the first file that defines a name wins.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.net.cni import version as cniversion
from sandbox.steps import Steps, record

DEFAULT_CONF_DIR = "/etc/cni/net.d"
EXTENSIONS = (".conf", ".conflist", ".json")
# libcni pkg/utils: network names and container IDs
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


class ConfError(SandboxError):
    """A network configuration file is missing or malformed."""


def _go_json(obj: Any) -> bytes:
    """JSON the way Go's encoding/json writes a map: compact, keys sorted, <>& escaped."""
    s = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


@dataclass
class NetworkConfig:
    """One network: its name, the spec version to speak, and the plugin objects in order."""

    name: str
    cni_version: str                       # "" when the file has none (pre-0.2 configs)
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    disable_gc: bool = False
    cni_versions: list[str] = field(default_factory=list)   # 1.1.0 "cniVersions"
    source: Path | None = None
    bytes: bytes = b""                     # what libcni keeps in the cache ("config", base64)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def types(self) -> list[str]:
        return [p["type"] for p in self.plugins]

    @property
    def effective_version(self) -> str:
        """The version plugins will read: '' counts as 0.1.0 (libcni/skel decoder)."""
        return self.cni_version or "0.1.0"

    @classmethod
    def from_bytes(cls, data: bytes, source: Path | str | None = None) -> "NetworkConfig":
        where = f"{source}" if source else "the network configuration"
        try:   # bounded: CNI_CONFIG_BYTES, JSON_DEPTH, numbers a float64 holds
            raw = bounded.loads(data, where, limit=bounded.CNI_CONFIG_BYTES)
        except bounded.BadJSON as e:
            raise ConfError(e.message) from e
        except bounded.InputTooLarge as e:
            raise ConfError(e.message) from e
        if not isinstance(raw, dict):
            raise ConfError(f"{where} must be a JSON object.")
        name = raw.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfError(f"{where} needs a \"name\" made of letters, digits, '_', '.' or '-' "
                            f"(got {name!r}).")
        ver = raw.get("cniVersion", "")
        if not isinstance(ver, str):
            raise ConfError(f"{where}: \"cniVersion\" must be a string like \"1.0.0\".")
        versions = raw.get("cniVersions") or []
        if versions:  # 1.1.0 §1: the runtime picks the highest version it supports
            if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
                raise ConfError(f"{where}: \"cniVersions\" must be a list of version strings.")
        try:
            for v in [ver, *versions]:
                if v:
                    cniversion.parse(v)
        except ValueError as e:
            raise ConfError(f"{where}: {e}.") from e
        if versions:
            ours = [v for v in [*versions, ver] if v in cniversion.SUPPORTED_VERSIONS]
            if ours:
                ver = cniversion.highest(ours)
        if ver and ver not in cniversion.SUPPORTED_VERSIONS + cniversion.LEGACY_VERSIONS:
            raise ConfError(f"{where} asks for cniVersion {ver}, which this runtime does not speak.",
                            hint="Use one of " + ", ".join(cniversion.SUPPORTED_VERSIONS) + ".")

        def flag(key: str) -> bool:  # boolean, or "true"/"false" (0.4.0 wrote it as a string)
            v = raw.get(key, False)
            if isinstance(v, str) and v.lower() in ("true", "false"):
                return v.lower() == "true"
            if not isinstance(v, bool):
                raise ConfError(f"{where}: \"{key}\" must be true or false.")
            return v

        if "plugins" in raw:  # a list
            plugins = raw["plugins"]
            if not isinstance(plugins, list) or not plugins:
                raise ConfError(f"{where}: \"plugins\" must be a non-empty list of plugin objects.")
            body = data
        else:  # a single plugin config (.conf): up-convert like libcni ConfListFromConf
            plugins = [raw]
            body = _go_json({"cniVersion": raw.get("cniVersion", ""), "name": name,
                             "plugins": [raw]})
        for i, p in enumerate(plugins):
            if not isinstance(p, dict) or not isinstance(p.get("type"), str) or not p["type"]:
                raise ConfError(f"{where}: plugin {i} needs a \"type\" (the plugin executable's "
                                "name, e.g. \"bridge\").")
            caps = p.get("capabilities")
            if caps is not None and not (isinstance(caps, dict)
                                         and all(isinstance(v, bool) for v in caps.values())):
                raise ConfError(f"{where}: plugin {i}'s \"capabilities\" must be an object of "
                                "true/false, e.g. {\"portMappings\": true}.")
        return cls(name=name, cni_version=ver, plugins=plugins, disable_check=flag("disableCheck"),
                   disable_gc=flag("disableGC"), cni_versions=versions,
                   source=Path(source) if source else None, bytes=bytes(body), raw=raw)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "NetworkConfig":
        p = Path(path)
        try:
            return cls.from_bytes(bounded.read_file(p, bounded.CNI_CONFIG_BYTES), p)
        except FileNotFoundError as e:
            raise ConfError(f"There is no configuration file {p}.") from e
        except IsADirectoryError as e:
            raise ConfError(f"{p} is a directory, not a configuration file.") from e
        except bounded.InputTooLarge as e:
            raise ConfError(e.message) from e

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> "NetworkConfig":
        """From a dict (notebooks build configs in cells)."""
        return cls.from_bytes(json.dumps(obj, indent=2).encode())


def files(conf_dir: str | os.PathLike[str] = DEFAULT_CONF_DIR) -> list[Path]:
    """Configuration files in ``conf_dir``, lexical order."""
    d = Path(conf_dir)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.suffix in EXTENSIONS and p.is_file()),
                  key=lambda p: p.name)


def load_all(conf_dir: str | os.PathLike[str] = DEFAULT_CONF_DIR,
             steps: Steps | None = None) -> list[NetworkConfig]:
    """Every network in ``conf_dir`` (first file wins for a name), lexical file order."""
    seen: dict[str, NetworkConfig] = {}
    for f in files(conf_dir):
        net = NetworkConfig.from_file(f)
        record(steps, "read", str(f), network=net.name, plugins=",".join(net.types),
               cniVersion=net.cni_version or "(none: 0.1.0)")
        seen.setdefault(net.name, net)
    return list(seen.values())


def load(name: str, conf_dir: str | os.PathLike[str] = DEFAULT_CONF_DIR,
         steps: Steps | None = None) -> NetworkConfig:
    """The network called ``name`` from ``conf_dir``."""
    nets = load_all(conf_dir, steps)
    for net in nets:
        if net.name == name:
            return net
    known = ", ".join(n.name for n in nets) or "none"
    raise ConfError(f"No network named '{name}' in {conf_dir} (networks there: {known}).",
                    hint="Add a .conf/.conflist file or pass --conf-dir.")
