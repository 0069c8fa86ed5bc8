"""appc ImageManifest and PodManifest (spec 0.8.11: aci.md §Image Manifest Schema, pods.md
§Pod Manifest Schema, ace.md §Isolators, types.md), parsed into typed objects and validated.

Public API (other modules code against it):

    ImageManifest.from_json(data)   -> ImageManifest   (raises ManifestError)
    PodManifest.from_json(data)     -> PodManifest     (raises ManifestError)
    validate_json(data)             -> list[str]       problems, "json.path: rule" each
    m.to_json()                     -> dict            canonical JSON-able form
    ImageManifest: name, labels (dict, insertion order), app (App|None), dependencies
      (list[Dependency]), path_whitelist (list[str]), annotations (dict), ac_version, raw
    Dependency: image_name, image_id (str|None), labels (dict), size (int|None)
    PodManifest: apps (list[RuntimeApp]), volumes, isolators, annotations, ports,
      user_annotations, user_labels; reification_problems(images) / is_reified(images)
    parse_json(data)                -> either kind, as acKind says
    ignored_fields(data)            -> list[str]       non-appc fields (ignored), with case hints

Notes for callers: a pod's annotation names are AC *Names* (pods.md: no '.' or '/'), an image's
are AC Identifiers (aci.md). os/arch labels must be a whitelisted pair (sandbox._sys.platform.VALID_OS_ARCH).
Pass the manifest text (not an already-decoded dict) to get repeated JSON keys reported.

Validation collects every problem, each as ``<json path>: <rule>``, e.g.
``app.ports[0].port: 70000 is outside 1..65535``. It follows the spec text; where actool 0.8.11
decides differently, docs/appc-vs-actool.md lists the case. Unknown fields are ignored (not kept
in the typed objects), as the spec asks.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Mapping

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.image import types as t
from sandbox.steps import Steps, record

__all__ = [
    "ManifestError", "Label", "Annotation", "Isolator", "EventHandler", "MountPoint", "Port",
    "App", "Dependency", "ImageManifest", "RuntimeImage", "Volume", "Mount", "RuntimeApp",
    "ExposedPort", "PodManifest", "validate_json", "parse_json", "ignored_fields",
]

ROOT = "(root)"


class ManifestError(SandboxError):
    """A manifest broke one or more rules; ``problems`` lists them as ``path: rule``."""

    def __init__(self, problems: list[str], source: str = "manifest") -> None:
        self.problems = problems
        n = len(problems)
        super().__init__(f"{source} is invalid ({n} problem{'s' if n != 1 else ''}): "
                         + "; ".join(problems),
                         hint="Fix the listed fields (see appc spec aci.md / pods.md).")


# --------------------------------------------------------------------------- typed objects

@dataclass(frozen=True)
class Label:
    """aci.md §labels: a name (AC Identifier) and an arbitrary string value."""
    name: str
    value: str


@dataclass(frozen=True)
class Annotation:
    """aci.md / pods.md §annotations: a name and an arbitrary string value."""
    name: str
    value: str


@dataclass
class Isolator:
    """types.md §Isolator Type: name (AC Identifier) + arbitrary JSON value (ace.md §Isolators)."""
    name: str
    value: Any

    def quantity(self, key: str) -> Fraction | None:
        """A resource isolator's ``request``/``limit`` in base units (bytes, cores), exactly."""
        v = self.value.get(key) if isinstance(self.value, dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return _number_quantity(v)
        return t.parse_quantity(v) if isinstance(v, str) else None

    @property
    def request(self) -> Fraction | None:
        """ace.md §Resource Isolators: request defaults to limit when omitted."""
        r = self.quantity("request")
        return r if r is not None else self.quantity("limit")

    @property
    def limit(self) -> Fraction | None:
        return self.quantity("limit")

    @property
    def set(self) -> list[str]:
        """The ``set`` of a capabilities or seccomp isolator."""
        v = self.value.get("set") if isinstance(self.value, dict) else None
        return list(v) if isinstance(v, list) else []

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


@dataclass
class EventHandler:
    """aci.md §app.eventHandlers: ``pre-start`` or ``post-stop`` and what to exec."""
    name: str
    exec: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "exec": list(self.exec)}


@dataclass
class MountPoint:
    """aci.md §app.mountPoints: where the app expects external data."""
    name: str
    path: str
    read_only: bool = False

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "path": self.path}
        if self.read_only:
            d["readOnly"] = True
        return d


@dataclass
class Port:
    """aci.md §app.ports: a port or a range [port, port+count-1]."""
    name: str
    protocol: str
    port: int
    count: int = 1
    socket_activated: bool = False

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "protocol": self.protocol, "port": self.port}
        if self.count != 1:
            d["count"] = self.count
        if self.socket_activated:
            d["socketActivated"] = True
        return d


@dataclass
class App:
    """aci.md §app: how to execute the image (also a pod's per-app override, pods.md)."""
    user: str
    group: str
    exec: list[str] = field(default_factory=list)
    supplementary_gids: list[int] = field(default_factory=list)
    event_handlers: list[EventHandler] = field(default_factory=list)
    working_directory: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    isolators: list[Isolator] = field(default_factory=list)
    mount_points: list[MountPoint] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    user_annotations: dict[str, str] = field(default_factory=dict)
    user_labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.exec:
            d["exec"] = list(self.exec)
        d["user"] = self.user
        d["group"] = self.group
        if self.supplementary_gids:
            d["supplementaryGIDs"] = list(self.supplementary_gids)
        if self.event_handlers:
            d["eventHandlers"] = [e.to_json() for e in self.event_handlers]
        if self.working_directory is not None:
            d["workingDirectory"] = self.working_directory
        if self.environment:
            d["environment"] = [{"name": k, "value": v} for k, v in self.environment.items()]
        if self.isolators:
            d["isolators"] = [i.to_json() for i in self.isolators]
        if self.mount_points:
            d["mountPoints"] = [m.to_json() for m in self.mount_points]
        if self.ports:
            d["ports"] = [p.to_json() for p in self.ports]
        if self.user_annotations:
            d["userAnnotations"] = dict(self.user_annotations)
        if self.user_labels:
            d["userLabels"] = dict(self.user_labels)
        return d

    def event_handler(self, name: str) -> EventHandler | None:
        return next((e for e in self.event_handlers if e.name == name), None)


@dataclass
class Dependency:
    """aci.md §dependencies: an image to lay down before this one."""
    image_name: str
    image_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"imageName": self.image_name}
        if self.image_id is not None:
            d["imageID"] = self.image_id
        if self.labels:
            d["labels"] = _labels_json(self.labels)
        if self.size is not None:
            d["size"] = self.size
        return d


def _labels_json(labels: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in labels.items()]


def _coerce(value: Any, parse: Callable[[_Parser, Any, str], Any], what: str) -> Any:
    """Let callers build objects from plain dicts (e.g. ``app={...}``): parse and check them."""
    p = _Parser()
    out = parse(p, value, what)
    if p.problems:
        raise ManifestError(p.problems, source=what)
    return out


class _Document:
    """What an image and a pod manifest share as whole documents."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The canonical manifest file content (2-space indented JSON, trailing newline)."""
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    def problems(self) -> list[str]:
        """Re-check an object built in code (e.g. after editing fields)."""
        return validate_json(self.to_json())


@dataclass
class ImageManifest(_Document):
    """aci.md §Image Manifest Schema."""
    name: str
    ac_version: str = "0.8.11"
    labels: dict[str, str] = field(default_factory=dict)
    app: App | None = None
    dependencies: list[Dependency] = field(default_factory=list)
    path_whitelist: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    ac_kind = "ImageManifest"

    def __post_init__(self) -> None:
        if isinstance(self.app, dict):
            self.app = _coerce(self.app, _parse_app, "app")
        self.dependencies = [_coerce(d, _parse_dependency, "dependency") if isinstance(d, dict)
                             else d for d in self.dependencies]
        if not self.raw:   # built in code: the document is its canonical form
            self.raw = self.to_json()

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any], *, steps: Steps | None = None,
                  source: str = "image manifest") -> "ImageManifest":
        """Parse and validate; raises ManifestError listing every problem."""
        return _parse_checked(data, _parse_image_manifest, "ImageManifest", source, steps)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": self.ac_version,
                             "name": self.name}
        if self.labels:
            d["labels"] = _labels_json(self.labels)
        if self.app is not None:
            d["app"] = self.app.to_json()
        if self.dependencies:
            d["dependencies"] = [x.to_json() for x in self.dependencies]
        if self.path_whitelist:
            d["pathWhitelist"] = list(self.path_whitelist)
        if self.annotations:
            d["annotations"] = _labels_json(self.annotations)
        return d

    @property
    def label_list(self) -> list[Label]:
        return [Label(k, v) for k, v in self.labels.items()]

    @property
    def annotation_list(self) -> list[Annotation]:
        return [Annotation(k, v) for k, v in self.annotations.items()]

    def _repr_html_(self) -> str:
        import html
        e = html.escape
        labels = ", ".join(f"{e(k)}={e(v)}" for k, v in self.labels.items()) or "–"
        exec_ = " ".join(e(a) for a in self.app.exec) if self.app and self.app.exec else "–"
        user = f"{e(self.app.user)}:{e(self.app.group)}" if self.app else "–"
        deps = "<br>".join(
            e(d.image_name) + (f" <small>{e(d.image_id[:19])}…</small>" if d.image_id else "")
            + ("".join(f" {e(k)}={e(v)}" for k, v in d.labels.items()))
            for d in self.dependencies) or "–"
        rows = [("name", f"<b>{e(self.name)}</b>"), ("acVersion", e(self.ac_version)),
                ("labels", labels), ("app exec", f"<code>{exec_}</code>"), ("user:group", user),
                ("dependencies", deps)]
        if self.path_whitelist:
            rows.append(("pathWhitelist", "<br>".join(e(x) for x in self.path_whitelist)))
        if self.annotations:
            rows.append(("annotations", "<br>".join(f"{e(k)}: {e(v)}" for k, v in self.annotations.items())))
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
                       for k, v in rows)
        return f"<table class='sandbox-manifest'><caption>ImageManifest</caption>{body}</table>"


@dataclass
class RuntimeImage:
    """pods.md §apps[].image: the image by ID (a template may leave the ID out), name, labels."""
    id: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.id is not None:
            d["id"] = self.id
        if self.name is not None:
            d["name"] = self.name
        if self.labels:
            d["labels"] = _labels_json(self.labels)
        return d


@dataclass
class Volume:
    """pods.md §volumes: ``empty`` (a fresh directory) or ``host`` (a bind of ``source``)."""
    name: str
    kind: str
    source: str | None = None
    read_only: bool | None = None      # unset: the mount point's readOnly decides
    recursive: bool | None = None      # host only; unset: the executor SHOULD bind recursively
    mode: str | None = None            # empty only; default "0755"
    uid: int | None = None             # empty only; default 0
    gid: int | None = None             # empty only; default 0

    def __post_init__(self) -> None:
        if self.kind == "empty":   # pods.md: defaults for empty volumes
            self.mode = "0755" if self.mode is None else self.mode
            self.uid = 0 if self.uid is None else self.uid
            self.gid = 0 if self.gid is None else self.gid

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        for key, val in (("source", self.source), ("readOnly", self.read_only),
                         ("recursive", self.recursive), ("mode", self.mode),
                         ("uid", self.uid), ("gid", self.gid)):
            if val is not None:
                d[key] = val
        return d


@dataclass
class Mount:
    """pods.md §apps[].mounts: volume name -> path in the app (appVolume overrides the lookup)."""
    volume: str
    path: str
    app_volume: Volume | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"volume": self.volume, "path": self.path}
        if self.app_volume is not None:
            d["appVolume"] = self.app_volume.to_json()
        return d


@dataclass
class RuntimeApp:
    """pods.md §apps[]."""
    name: str
    image: RuntimeImage
    app: App | None = None
    read_only_rootfs: bool = False
    mounts: list[Mount] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "image": self.image.to_json()}
        if self.app is not None:
            d["app"] = self.app.to_json()
        if self.read_only_rootfs:
            d["readOnlyRootFS"] = True
        if self.mounts:
            d["mounts"] = [m.to_json() for m in self.mounts]
        if self.annotations:
            d["annotations"] = _labels_json(self.annotations)
        return d


@dataclass
class ExposedPort:
    """pods.md §ports: expose an app port (by name) on the host."""
    name: str
    host_port: int
    host_ip: str | None = None
    pod_port: Port | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "hostPort": self.host_port}
        if self.host_ip is not None:
            d["hostIP"] = self.host_ip
        if self.pod_port is not None:
            d["podPort"] = self.pod_port.to_json()
        return d


@dataclass
class PodManifest(_Document):
    """pods.md §Pod Manifest Schema. A template may leave image IDs and volumes unresolved;
    :meth:`reification_problems` says what a runtime manifest still lacks."""
    apps: list[RuntimeApp] = field(default_factory=list)
    ac_version: str = "0.8.11"
    volumes: list[Volume] = field(default_factory=list)
    isolators: list[Isolator] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    ports: list[ExposedPort] = field(default_factory=list)
    user_annotations: dict[str, str] = field(default_factory=dict)
    user_labels: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    ac_kind = "PodManifest"

    def __post_init__(self) -> None:
        if not self.raw:   # built in code: the document is its canonical form
            self.raw = self.to_json()

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any], *, steps: Steps | None = None,
                  source: str = "pod manifest") -> "PodManifest":
        """Parse and validate; raises ManifestError listing every problem."""
        return _parse_checked(data, _parse_pod_manifest, "PodManifest", source, steps)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"acKind": "PodManifest", "acVersion": self.ac_version,
                             "apps": [a.to_json() for a in self.apps]}
        if self.volumes:
            d["volumes"] = [v.to_json() for v in self.volumes]
        if self.isolators:
            d["isolators"] = [i.to_json() for i in self.isolators]
        if self.annotations:
            d["annotations"] = _labels_json(self.annotations)
        if self.ports:
            d["ports"] = [p.to_json() for p in self.ports]
        if self.user_annotations:
            d["userAnnotations"] = dict(self.user_annotations)
        if self.user_labels:
            d["userLabels"] = dict(self.user_labels)
        return d

    def _repr_html_(self) -> str:
        import html
        e = html.escape
        rows = []
        for a in self.apps:
            img = e(a.image.name or "") + (f" <small>{e(a.image.id[:19])}…</small>" if a.image.id
                                           else " <i>(no image ID)</i>")
            exec_ = " ".join(e(x) for x in a.app.exec) if a.app and a.app.exec else "<i>image default</i>"
            mounts = ", ".join(f"{e(m.volume)}→{e(m.path)}" for m in a.mounts) or "–"
            rows.append(f"<tr><td><b>{e(a.name)}</b></td><td>{img}</td><td><code>{exec_}</code></td>"
                        f"<td>{mounts}</td></tr>")
        vols = ", ".join(f"{e(v.name)} ({e(v.kind)}{': ' + e(v.source) if v.source else ''})"
                         for v in self.volumes) or "–"
        ports = ", ".join(f"{e(p.name)}→{e(p.host_ip or '*')}:{p.host_port}" for p in self.ports) or "–"
        return ("<table class='sandbox-pod-manifest'><caption>PodManifest</caption>"
                "<tr><th>app</th><th>image</th><th>exec</th><th>mounts</th></tr>" + "".join(rows)
                + f"<tr><th>volumes</th><td colspan='3'>{vols}</td></tr>"
                + f"<tr><th>ports</th><td colspan='3'>{ports}</td></tr></table>")

    def app(self, name: str) -> RuntimeApp | None:
        return next((a for a in self.apps if a.name == name), None)

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)

    def reification_problems(self, images: Mapping[str, ImageManifest] | None = None) -> list[str]:
        """What keeps this pod manifest from being *reified* (pods.md: every app referenced by
        image ID, every mountPoint satisfied by a volume). ``images`` maps image IDs to their
        manifests, to see mountPoints the image declares when the pod does not override ``app``."""
        problems: list[str] = []
        for i, ra in enumerate(self.apps):
            at = f"apps[{i}]"
            if not ra.image.id:
                problems.append(f"{at}.image.id: app {ra.name!r} has no image ID; a runtime pod "
                                "manifest must name every image by ID")
            for j, m in enumerate(ra.mounts):
                if m.app_volume is None and self.volume(m.volume) is None:
                    problems.append(f"{at}.mounts[{j}].volume: no volume named {m.volume!r} in volumes")
            app = ra.app
            if app is None and images is not None and ra.image.id in images:
                app = images[ra.image.id].app
            where = f"{at}.app" if ra.app is not None else f"{at}.image.app"
            for k, mp in enumerate(app.mount_points if app else []):
                # pods.md: a mount fulfils a mountPoint by using its path; older manifests
                # named the volume after the mountPoint, which rkt also accepts.
                if not any(m.path == mp.path or m.volume == mp.name for m in ra.mounts):
                    problems.append(f"{where}.mountPoints[{k}]: mountPoint {mp.name!r} ({mp.path}) "
                                    f"of app {ra.name!r} has no mount/volume")
        return problems

    def is_reified(self, images: Mapping[str, ImageManifest] | None = None) -> bool:
        return not self.reification_problems(images)


# --------------------------------------------------------------------------- parsing

class _Parser:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, rule: str) -> None:
        self.problems.append(f"{path}: {rule}")


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return key if path in ("", ROOT) else f"{path}.{key}"


def _key(path: str, key: str) -> str:
    """The path of a free-form object key (userLabels, sysctl): ``a.b`` or ``a["x.y"]``."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _clause(sentence: str) -> str:
    """A sentence as a problem's rule: lower-case start, no final period."""
    return sentence[:1].lower() + sentence[1:].rstrip(".")


class _DuplicateKey(bounded.BadJSON):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """RFC 4627: names in an object SHOULD be unique; which duplicate wins is undefined (Go and
    Python even disagree), so a manifest with a repeated key is refused."""
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise _DuplicateKey(f"the key {k!r} appears twice in one object (RFC 4627: keys "
                                "should be unique; tools disagree on which one counts)")
        d[k] = v
    return d


def _parse_checked(data: bytes | str | dict[str, Any], parse: Any, kind: str, source: str,
                   steps: Steps | None) -> Any:
    """Load JSON, run ``parse`` collecting every problem, record the check; raise
    ManifestError when anything is wrong."""
    d, problems = _load(data)
    obj = None
    if not problems:
        p = _Parser()
        obj = parse(p, d)
        problems = p.problems
    record(steps, "check", source, kind=kind, problems=len(problems))
    if problems:
        raise ManifestError(problems, source=source)
    assert obj is not None
    return obj


def _load(data: bytes | str | dict[str, Any]) -> tuple[Any, list[str]]:
    if isinstance(data, dict):
        return data, []
    try:
        # bounded: the size (MANIFEST_BYTES), the nesting, numbers a float64 holds, no NaN
        d = bounded.loads(data, "the manifest", limit=bounded.MANIFEST_BYTES,
                          object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        return None, [f"{ROOT}: {e.reason}"]
    except bounded.BadJSON as e:
        return None, [f"{ROOT}: {e.reason}"]
    except bounded.InputTooLarge as e:
        return None, [f"{ROOT}: {_clause(e.message)}"]
    if not isinstance(d, dict):
        return None, [f"{ROOT}: must be a JSON object, not {_jtype(d)}"]
    return d, []


def _missing(p: _Parser, d: dict, key: str, at: str) -> None:
    """A required key is absent; point at a key that differs only in case (Go would take it)."""
    near = [k for k in d if k.lower() == key.lower() and k != key]
    hint = f" (found {near[0]!r}: JSON keys are case-sensitive)" if near else ""
    p.bad(at, "is required" + hint)


def _str(p: _Parser, d: dict, key: str, path: str, *, required: bool = False,
         nonempty: bool = False) -> str | None:
    at = _at(path, key)
    v = d.get(key)
    if v is None:
        if required:
            _missing(p, d, key, at)
        return None
    if not isinstance(v, str):
        p.bad(at, f"must be a string, not {_jtype(v)}")
        return None
    if nonempty and v == "":
        p.bad(at, "must not be empty")
        return None
    return v


def _bool(p: _Parser, d: dict, key: str, path: str) -> bool | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        p.bad(_at(path, key), f"must be true or false, not {_jtype(v)}")
        return None
    return v


def _int(p: _Parser, d: dict, key: str, path: str, *, required: bool = False) -> int | None:
    at = _at(path, key)
    v = d.get(key)
    if v is None:
        if required:
            _missing(p, d, key, at)
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        p.bad(at, f"must be an integer, not {_jtype(v)}")
        return None
    return v


def _list(p: _Parser, d: dict, key: str, path: str, *, required: bool = False) -> list | None:
    at = _at(path, key)
    v = d.get(key)
    if v is None:
        if required:
            _missing(p, d, key, at)
        return None
    if not isinstance(v, list):
        p.bad(at, f"must be an array, not {_jtype(v)}")
        return None
    return v


def _obj(p: _Parser, v: Any, at: str) -> dict | None:
    if not isinstance(v, dict):
        p.bad(at, f"must be an object, not {_jtype(v)}")
        return None
    return v


def _strings(p: _Parser, d: dict, key: str, path: str) -> list[str] | None:
    items = _list(p, d, key, path)
    if items is None:
        return None
    out = []
    for i, s in enumerate(items):
        if not isinstance(s, str):
            p.bad(_at(_at(path, key), i), f"must be a string, not {_jtype(s)}")
        else:
            out.append(s)
    return out


def _strmap(p: _Parser, d: dict, key: str, path: str) -> dict[str, str]:
    """userAnnotations/userLabels: an object whose values are all strings."""
    v = d.get(key)
    if v is None:
        return {}
    at = _at(path, key)
    if not isinstance(v, dict):
        p.bad(at, f"must be an object of strings, not {_jtype(v)}")
        return {}
    out = {}
    for k, val in v.items():
        if not isinstance(val, str):
            p.bad(_key(at, k), f"must be a string, not {_jtype(val)}")
        else:
            out[k] = val
    return out


def _check(p: _Parser, at: str, value: str | None, checker: Callable[[str], str | None]) -> bool:
    if value is None:
        return False
    rule = checker(value)
    if rule:
        p.bad(at, rule)
        return False
    return True


def _name_value_list(p: _Parser, d: dict, key: str, path: str, what: str,
                     name_check: Callable[[str], str | None]) -> tuple[dict[str, str], dict[str, str]]:
    """labels/annotations/environment: [{name, value}] with unique names.
    Returns (name -> value, name -> JSON path of the value)."""
    items = _list(p, d, key, path)
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    first: dict[str, int] = {}
    for i, item in enumerate(items or []):
        at = _at(_at(path, key), i)
        if _obj(p, item, at) is None:
            continue
        name = _str(p, item, "name", at, required=True)
        value = _str(p, item, "value", at, required=True)
        if name is None:
            continue
        _check(p, f"{at}.name", name, name_check)
        if name in first:
            p.bad(f"{at}.name", f"duplicate {what} {name!r} (first at {_at(_at(path, key), first[name])})")
            continue
        first[name] = i
        if value is not None:
            out[name] = value
            where[name] = f"{at}.value"
    return out, where


def _parse_labels(p: _Parser, d: dict, key: str, path: str) -> dict[str, str]:
    """aci.md §labels: AC Identifier names, unique, not "name", os/arch from the spec's list."""
    labels, where = _name_value_list(p, d, key, path, "label", t.check_ac_identifier)
    items = d.get(key) if isinstance(d.get(key), list) else []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == "name":
            p.bad(f"{_at(_at(path, key), i)}.name",
                  "a label cannot be called 'name' (it would be confused with the image name)")
    bad = t.check_os_arch(labels.get("os"), labels.get("arch"))
    if bad:
        p.bad(where[bad[0]], bad[1])
    return labels


def _parse_annotations(p: _Parser, d: dict, key: str, path: str, *, pod: bool = False) -> dict[str, str]:
    """aci.md §annotations (AC Identifier names, recognized created/homepage/documentation) and
    pods.md §annotations (AC Name names)."""
    ann, where = _name_value_list(p, d, key, path, "annotation",
                                  t.check_ac_name if pod else t.check_ac_identifier)
    if not pod:
        for name, checker in (("created", t.check_timestamp), ("homepage", t.check_http_url),
                              ("documentation", t.check_http_url)):
            if name in ann:
                _check(p, where[name], ann[name], checker)
        flag = "appc.io/executor/supports-systemd-notify"
        if flag in ann and ann[flag] not in ("true", "false"):
            p.bad(where[flag], f"{ann[flag]!r} is not a boolean ('true' or 'false')")
    return ann


# ace.md §Isolators: the isolators the spec defines, with their scope.
_APP_ONLY = {"os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set",
             "os/linux/no-new-privileges", "os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set"}
_POD_ONLY = {"os/unix/sysctl"}
_RESOURCE_DEFAULT = {"resource/block-bandwidth", "resource/block-iops", "resource/network-bandwidth"}
_RESOURCE_REQ_LIMIT = {"resource/cpu", "resource/memory"}
KNOWN_ISOLATORS = _APP_ONLY | _POD_ONLY | _RESOURCE_DEFAULT | _RESOURCE_REQ_LIMIT | {
    "os/linux/selinux-context"}
_SINGLE = {"os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set",
           "os/linux/selinux-context", "os/unix/sysctl"}
_CONFLICTS = [("os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set"),
              ("os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set")]


def _number_quantity(x: int | float) -> Fraction | None:
    """A bare JSON number as a quantity (exact), None when it is not finite or over
    :data:`sandbox.image.types.MAX_QUANTITY`."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    q = Fraction(x) if isinstance(x, int) else Fraction(repr(x))
    return q if abs(q) <= t.MAX_QUANTITY else None


def _check_isolator_value(p: _Parser, name: str, v: Any, at: str) -> None:
    if name in _RESOURCE_REQ_LIMIT or name in _RESOURCE_DEFAULT:
        if _obj(p, v, at) is None:
            return
        q: dict[str, Fraction | None] = {}
        for k in ("request", "limit"):
            if v.get(k) is None:
                continue
            x = v[k]
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                if x < 0:   # a bare JSON number is an unsuffixed quantity; it cannot be negative
                    p.bad(f"{at}.{k}", f"{x} is negative")
                elif _number_quantity(x) is None:
                    p.bad(f"{at}.{k}", f"{x:.3g} is larger than 2^63 - 1, the largest quantity")
                else:
                    q[k] = _number_quantity(x)
            elif not isinstance(x, str):
                p.bad(f"{at}.{k}", f"must be a quantity like \"500m\" or \"1G\", not {_jtype(x)}")
            elif _check(p, f"{at}.{k}", x, t.check_quantity):
                q[k] = t.parse_quantity(x)
        if name in _RESOURCE_DEFAULT:
            if v.get("default") is not True:
                p.bad(f"{at}.default", f"must be true for {name}")
            if v.get("limit") is None:
                p.bad(f"{at}.limit", "is required")
        elif q.get("request") is not None and q.get("limit") is not None and q["request"] > q["limit"]:
            p.bad(f"{at}.request", f"{v['request']!r} is above the limit {v['limit']!r}")
    elif name in ("os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set",
                  "os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set"):
        if _obj(p, v, at) is None:
            return
        s = _strings(p, v, "set", at)
        if s is None and v.get("set") is None:
            p.bad(f"{at}.set", "is required")
        elif s is not None and not v["set"]:
            p.bad(f"{at}.set", "must not be empty")
        if "capabilities" in name:
            for i, c in enumerate(s or []):
                if not c.startswith("CAP_") or not c[4:].replace("_", "").isalnum() or c != c.upper():
                    p.bad(f"{at}.set[{i}]", f"{c!r} is not a capability name (like CAP_NET_BIND_SERVICE)")
        else:
            errno = _str(p, v, "errno", at)   # errno(3) names: E + uppercase letters/digits
            if errno and not re.fullmatch(r"E[A-Z0-9]+", errno):
                p.bad(f"{at}.errno", f"{errno!r} is not an errno name (E and uppercase letters or digits, like ENOTSUP)")
    elif name == "os/linux/no-new-privileges":
        if not isinstance(v, bool):
            p.bad(at, f"must be true or false, not {_jtype(v)}")
    elif name == "os/linux/selinux-context":
        if _obj(p, v, at) is None:
            return
        for k in ("user", "role", "type", "level"):
            part = _str(p, v, k, at, required=True, nonempty=True)
            # the context is user:role:type:level, so only the level may contain ':' (s0:c1,c2)
            if part and k != "level" and ":" in part:
                p.bad(f"{at}.{k}", f"{part!r} cannot contain ':' (it is one part of user:role:type:level)")
    elif name == "os/unix/sysctl":
        if _obj(p, v, at) is None:
            return
        for k, val in v.items():
            if not isinstance(val, str):
                p.bad(_key(at, k), f"must be a string, not {_jtype(val)}")


def _parse_isolators(p: _Parser, d: dict, key: str, path: str, scope: str) -> list[Isolator]:
    """types.md §Isolator Type + ace.md §Isolators: shapes of the isolators the spec defines;
    unknown names are kept (an executor MAY ignore them)."""
    out: list[Isolator] = []
    seen: dict[str, int] = {}
    base = _at(path, key)
    for i, item in enumerate(_list(p, d, key, path) or []):
        at = _at(base, i)
        if _obj(p, item, at) is None:
            continue
        name = _str(p, item, "name", at, required=True)
        if "value" not in item:
            _missing(p, item, "value", f"{at}.value")
        if name is None or not _check(p, f"{at}.name", name, t.check_ac_identifier):
            continue
        if "value" in item:
            _check_isolator_value(p, name, item["value"], f"{at}.value")
        if scope == "pod" and name in _APP_ONLY:
            p.bad(f"{at}.name", f"{name} applies to single apps; put it in an app's isolators")
        if scope == "app" and name in _POD_ONLY:
            p.bad(f"{at}.name", f"{name} applies to the whole pod; put it in the pod's isolators")
        if name in _SINGLE and name in seen:
            p.bad(f"{at}.name", f"only one {name} isolator is allowed here (first at {_at(base, seen[name])})")
        for a, b in _CONFLICTS:
            other = b if name == a else a if name == b else None
            if other and other in seen:
                p.bad(f"{at}.name", f"{name} cannot be used together with {other} ({_at(base, seen[other])})")
        seen.setdefault(name, i)
        out.append(Isolator(name, item.get("value")))
    return out


def _parse_port(p: _Parser, v: Any, at: str) -> Port | None:
    """aci.md §app.ports."""
    if _obj(p, v, at) is None:
        return None
    name = _str(p, v, "name", at, required=True)
    _check(p, f"{at}.name", name, t.check_ac_name)
    protocol = _str(p, v, "protocol", at, required=True, nonempty=True)
    port = _int(p, v, "port", at, required=True)
    count = _int(p, v, "count", at)
    sa = _bool(p, v, "socketActivated", at)
    ok = True
    if port is not None and not 1 <= port <= 65535:
        p.bad(f"{at}.port", f"{port} is outside 1..65535")
        ok = False
    if count is not None and count < 1:
        p.bad(f"{at}.count", f"{count} is below 1")
        ok = False
    if ok and port is not None and count is not None and port + count - 1 > 65535:
        p.bad(f"{at}.count", f"the range {port}..{port + count - 1} goes past 65535")
    if name is None or protocol is None or port is None:
        return None
    return Port(name, protocol, port, count if count is not None else 1, bool(sa))


def _parse_app(p: _Parser, v: Any, at: str) -> App | None:
    """aci.md §app (also pods.md apps[].app)."""
    if _obj(p, v, at) is None:
        return None
    exec_ = _strings(p, v, "exec", at)
    user = _str(p, v, "user", at, required=True, nonempty=True)
    group = _str(p, v, "group", at, required=True, nonempty=True)
    gids = []
    for i, g in enumerate(_list(p, v, "supplementaryGIDs", at) or []):
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= 0xFFFFFFFF:
            p.bad(f"{at}.supplementaryGIDs[{i}]", f"{json.dumps(g)} is not an unsigned 32-bit group ID")
        else:
            gids.append(g)
    handlers: list[EventHandler] = []
    first: dict[str, int] = {}
    for i, h in enumerate(_list(p, v, "eventHandlers", at) or []):
        hat = f"{at}.eventHandlers[{i}]"
        if _obj(p, h, hat) is None:
            continue
        name = _str(p, h, "name", hat, required=True)
        hexec = _strings(p, h, "exec", hat)
        if h.get("exec") is None:
            _missing(p, h, "exec", f"{hat}.exec")
        elif hexec is not None and not hexec:
            p.bad(f"{hat}.exec", "must not be empty")
        if name is None:
            continue
        if name not in ("pre-start", "post-stop"):
            p.bad(f"{hat}.name", f"{name!r} is not an event (pre-start or post-stop)")
            continue
        if name in first:
            p.bad(f"{hat}.name", f"only one {name} handler is allowed (first at {at}.eventHandlers[{first[name]}])")
            continue
        first[name] = i
        handlers.append(EventHandler(name, hexec or []))
    wd = _str(p, v, "workingDirectory", at)
    if wd is not None:
        _check(p, f"{at}.workingDirectory", wd, t.check_absolute)
    env, _ = _name_value_list(p, v, "environment", at, "environment variable", t.check_env_name)
    isolators = _parse_isolators(p, v, "isolators", at, "app")
    mps = []
    for i, m in enumerate(_list(p, v, "mountPoints", at) or []):
        mat = f"{at}.mountPoints[{i}]"
        if _obj(p, m, mat) is None:
            continue
        name = _str(p, m, "name", mat, required=True)
        _check(p, f"{mat}.name", name, t.check_ac_name)
        path = _str(p, m, "path", mat, required=True, nonempty=True)
        ro = _bool(p, m, "readOnly", mat)
        if name is not None and path is not None:
            mps.append(MountPoint(name, path, bool(ro)))
    ports = []
    pfirst: dict[str, int] = {}
    for i, pv in enumerate(_list(p, v, "ports", at) or []):
        port = _parse_port(p, pv, f"{at}.ports[{i}]")
        if port is None:
            continue
        if port.name in pfirst:
            p.bad(f"{at}.ports[{i}].name", f"duplicate port name {port.name!r} (first at {at}.ports[{pfirst[port.name]}])")
            continue
        pfirst[port.name] = i
        ports.append(port)
    ua = _strmap(p, v, "userAnnotations", at)
    ul = _strmap(p, v, "userLabels", at)
    if user is None or group is None:
        return None
    return App(user=user, group=group, exec=exec_ or [], supplementary_gids=gids,
               event_handlers=handlers, working_directory=wd, environment=env,
               isolators=isolators, mount_points=mps, ports=ports,
               user_annotations=ua, user_labels=ul)


def _parse_dependency(p: _Parser, v: Any, at: str) -> Dependency | None:
    """aci.md §dependencies."""
    if _obj(p, v, at) is None:
        return None
    name = _str(p, v, "imageName", at, required=True)
    _check(p, f"{at}.imageName", name, t.check_ac_identifier)
    image_id = _str(p, v, "imageID", at)
    _check(p, f"{at}.imageID", image_id, t.check_image_id)
    labels = _parse_labels(p, v, "labels", at)
    size = _int(p, v, "size", at)
    if size is not None and size < 0:
        p.bad(f"{at}.size", f"{size} is negative")
    if name is None:
        return None
    return Dependency(name, image_id, labels, size)


def _parse_head(p: _Parser, d: dict, kind: str) -> str:
    """acKind (types.md §AC Kind Type) and acVersion (§AC Version Type)."""
    k = _str(p, d, "acKind", ROOT, required=True)
    if k is not None and k != kind:
        p.bad("acKind", f"must be {kind!r}, not {k!r}")
    ver = _str(p, d, "acVersion", ROOT, required=True, nonempty=True)
    _check(p, "acVersion", ver, t.check_ac_version)
    return ver or ""


def _parse_image_manifest(p: _Parser, d: dict) -> ImageManifest | None:
    """aci.md §Image Manifest Schema."""
    ver = _parse_head(p, d, "ImageManifest")
    name = _str(p, d, "name", ROOT, required=True, nonempty=True)
    _check(p, "name", name, t.check_ac_identifier)
    labels = _parse_labels(p, d, "labels", ROOT)
    app = _parse_app(p, d["app"], "app") if d.get("app") is not None else None
    deps = []
    for i, dep in enumerate(_list(p, d, "dependencies", ROOT) or []):
        x = _parse_dependency(p, dep, f"dependencies[{i}]")
        if x is not None:
            deps.append(x)
    pwl = _strings(p, d, "pathWhitelist", ROOT) or []
    for i, path in enumerate(pwl):
        _check(p, f"pathWhitelist[{i}]", path, t.check_absolute)
    ann = _parse_annotations(p, d, "annotations", ROOT)
    if name is None:
        return None
    return ImageManifest(name=name, ac_version=ver, labels=labels, app=app, dependencies=deps,
                         path_whitelist=pwl, annotations=ann, raw=d)


def _parse_volume(p: _Parser, v: Any, at: str) -> Volume | None:
    """pods.md §volumes."""
    if _obj(p, v, at) is None:
        return None
    name = _str(p, v, "name", at, required=True)
    _check(p, f"{at}.name", name, t.check_ac_name)
    kind = _str(p, v, "kind", at, required=True)
    if kind is not None and kind not in ("empty", "host"):
        p.bad(f"{at}.kind", f"{kind!r} is not a volume kind (empty or host)")
        kind = None
    source = _str(p, v, "source", at)
    ro = _bool(p, v, "readOnly", at)
    rec = _bool(p, v, "recursive", at)
    mode = _str(p, v, "mode", at)
    uid = _int(p, v, "uid", at)
    gid = _int(p, v, "gid", at)
    if kind == "host":
        if source is None:
            p.bad(f"{at}.source", "is required for a host volume")
        else:
            _check(p, f"{at}.source", source, t.check_absolute)
    elif kind == "empty":
        _check(p, f"{at}.mode", mode, t.check_mode)
        for k, x in (("uid", uid), ("gid", gid)):
            if x is not None and not 0 <= x <= 0xFFFFFFFF:
                p.bad(f"{at}.{k}", f"{x} is not a valid {k.upper()}")
    if name is None or kind is None:
        return None
    if kind == "empty":   # only interpreted for empty volumes (pods.md)
        return Volume(name, kind, None, ro, None, mode, uid, gid)
    return Volume(name, kind, source, ro, rec)


def _parse_pod_manifest(p: _Parser, d: dict) -> PodManifest | None:
    """pods.md §Pod Manifest Schema."""
    ver = _parse_head(p, d, "PodManifest")
    apps: list[RuntimeApp] = []
    first: dict[str, int] = {}
    port_owner: dict[str, str] = {}
    for i, a in enumerate(_list(p, d, "apps", ROOT, required=True) or []):
        at = f"apps[{i}]"
        if _obj(p, a, at) is None:
            continue
        name = _str(p, a, "name", at, required=True)
        _check(p, f"{at}.name", name, t.check_ac_name)
        if name is not None and name in first:
            p.bad(f"{at}.name", f"duplicate app name {name!r} (first at apps[{first[name]}])")
        elif name is not None:
            first[name] = i
        img = None
        if a.get("image") is None:
            _missing(p, a, "image", f"{at}.image")
        elif _obj(p, a["image"], f"{at}.image") is not None:
            iv = a["image"]
            iid = _str(p, iv, "id", f"{at}.image")
            _check(p, f"{at}.image.id", iid, t.check_image_id)
            iname = _str(p, iv, "name", f"{at}.image")
            _check(p, f"{at}.image.name", iname, t.check_ac_identifier)
            img = RuntimeImage(iid, iname, _parse_labels(p, iv, "labels", f"{at}.image"))
        app = _parse_app(p, a["app"], f"{at}.app") if a.get("app") is not None else None
        if app is not None and name is not None:
            # pods.md §ports: port names MUST be unique among the apps of a pod.
            for j, port in enumerate(app.ports):
                owner = port_owner.setdefault(port.name, name)
                if owner != name:
                    p.bad(f"{at}.app.ports[{j}].name", f"port name {port.name!r} is also used by app {owner!r}")
        ro = _bool(p, a, "readOnlyRootFS", at)
        mounts = []
        for j, m in enumerate(_list(p, a, "mounts", at) or []):
            mat = f"{at}.mounts[{j}]"
            if _obj(p, m, mat) is None:
                continue
            vol = _str(p, m, "volume", mat, required=True)
            _check(p, f"{mat}.volume", vol, t.check_ac_name)
            path = _str(p, m, "path", mat, required=True, nonempty=True)
            av = _parse_volume(p, m["appVolume"], f"{mat}.appVolume") if m.get("appVolume") is not None else None
            if vol is not None and path is not None:
                mounts.append(Mount(vol, path, av))
        ann = _parse_annotations(p, a, "annotations", at, pod=True)
        if name is not None and img is not None:
            apps.append(RuntimeApp(name, img, app, bool(ro), mounts, ann))
    volumes = []
    vfirst: dict[str, int] = {}
    for i, v in enumerate(_list(p, d, "volumes", ROOT) or []):
        vol = _parse_volume(p, v, f"volumes[{i}]")
        if vol is None:
            continue
        if vol.name in vfirst:
            p.bad(f"volumes[{i}].name", f"duplicate volume name {vol.name!r} (first at volumes[{vfirst[vol.name]}])")
            continue
        vfirst[vol.name] = i
        volumes.append(vol)
    isolators = _parse_isolators(p, d, "isolators", ROOT, "pod")
    ann = _parse_annotations(p, d, "annotations", ROOT, pod=True)
    ports = []
    for i, pv in enumerate(_list(p, d, "ports", ROOT) or []):
        at = f"ports[{i}]"
        if _obj(p, pv, at) is None:
            continue
        name = _str(p, pv, "name", at, required=True)
        _check(p, f"{at}.name", name, t.check_ac_name)
        hp = _int(p, pv, "hostPort", at, required=True)
        if hp is not None and not 1 <= hp <= 65535:
            p.bad(f"{at}.hostPort", f"{hp} is outside 1..65535")
        hip = _str(p, pv, "hostIP", at)
        _check(p, f"{at}.hostIP", hip, t.check_ipv4)
        pp = _parse_port(p, pv["podPort"], f"{at}.podPort") if pv.get("podPort") is not None else None
        if name is not None and hp is not None:
            ports.append(ExposedPort(name, hp, hip, pp))
    ua = _strmap(p, d, "userAnnotations", ROOT)
    ul = _strmap(p, d, "userLabels", ROOT)
    return PodManifest(apps=apps, ac_version=ver, volumes=volumes, isolators=isolators,
                       annotations=ann, ports=ports, user_annotations=ua, user_labels=ul, raw=d)


# The fields the spec defines, per object (None: a leaf or a free-form value; [x]: a list of x).
_NV = {"name": None, "value": None}
_PORT = {"name": None, "protocol": None, "port": None, "count": None, "socketActivated": None}
_VOLUME = dict.fromkeys(("name", "kind", "source", "readOnly", "recursive", "mode", "uid", "gid"))
_APP = {"exec": None, "user": None, "group": None, "supplementaryGIDs": None,
        "eventHandlers": [{"name": None, "exec": None}], "workingDirectory": None,
        "environment": [_NV], "isolators": [_NV], "mountPoints": [{"name": None, "path": None, "readOnly": None}],
        "ports": [_PORT], "userAnnotations": None, "userLabels": None}
_SCHEMA = {
    "ImageManifest": {"acKind": None, "acVersion": None, "name": None, "labels": [_NV], "app": _APP,
                      "dependencies": [{"imageName": None, "imageID": None, "labels": [_NV], "size": None}],
                      "pathWhitelist": None, "annotations": [_NV]},
    "PodManifest": {"acKind": None, "acVersion": None,
                    "apps": [{"name": None, "image": {"id": None, "name": None, "labels": [_NV]}, "app": _APP,
                              "readOnlyRootFS": None, "annotations": [_NV],
                              "mounts": [{"volume": None, "path": None, "appVolume": _VOLUME}]}],
                    "volumes": [_VOLUME], "isolators": [_NV], "annotations": [_NV],
                    "ports": [{"name": None, "hostPort": None, "hostIP": None, "podPort": _PORT}],
                    "userAnnotations": None, "userLabels": None},
}


def ignored_fields(data: bytes | str | dict[str, Any]) -> list[str]:
    """The fields of a manifest that are not appc fields, so parsing ignores them (the spec asks
    executors to ignore unknown fields): ``path: note`` each, naming a near miss in case."""
    d, problems = _load(data)
    schema = _SCHEMA.get(d.get("acKind")) if not problems else None
    out: list[str] = []

    def walk(v: Any, sch: Any, path: str) -> None:
        if isinstance(sch, list) and isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, sch[0], _at(path, i))
        elif isinstance(sch, dict) and isinstance(v, dict):
            for k, x in v.items():
                if k in sch:
                    walk(x, sch[k], _at(path, k))
                    continue
                near = [f for f in sch if f.lower() == k.lower()]
                hint = f" (did you mean {near[0]!r}? JSON keys are case-sensitive)" if near else ""
                out.append(f"{_at(path, k)}: not an appc field, ignored{hint}")

    if schema is not None:
        walk(d, schema, ROOT)
    return out




def read_document(path: str | os.PathLike[str], what: str = "the pod manifest") -> dict[str, Any]:
    """The JSON object in a manifest file, read within MANIFEST_BYTES and JSON_DEPTH, for callers
    that fill in fields before validating it (a pod manifest template); raises ManifestError."""
    try:
        d, problems = _load(bounded.read_file(path, bounded.MANIFEST_BYTES, f"{what} {path}"))
    except FileNotFoundError:
        raise ManifestError([f"{path}: no such file"], source=what) from None
    except IsADirectoryError:
        raise ManifestError([f"{path}: is a directory, not a manifest file"], source=what) from None
    except bounded.InputTooLarge as e:
        raise ManifestError([f"{ROOT}: {_clause(e.message)}"], source=what) from e
    if problems:
        raise ManifestError(problems, source=what)
    return d


def parse_json(data: bytes | str | dict[str, Any]) -> ImageManifest | PodManifest:
    """Parse either kind, as ``acKind`` says (raises ManifestError)."""
    d, problems = _load(data)
    if problems:
        raise ManifestError(problems)
    if d.get("acKind") == "PodManifest":
        return PodManifest.from_json(d)
    return ImageManifest.from_json(d)


def validate_json(data: bytes | str | dict[str, Any], kind: str | None = None) -> list[str]:
    """Every problem of a manifest (``path: rule`` each); [] when valid. ``kind`` defaults to
    the document's own ``acKind``."""
    d, problems = _load(data)
    if problems:
        return problems
    kind = kind or d.get("acKind")
    p = _Parser()
    if kind == "PodManifest":
        _parse_pod_manifest(p, d)
    elif kind == "ImageManifest":
        _parse_image_manifest(p, d)
    elif d.get("acKind") is None:
        p.bad("acKind", "is required ('ImageManifest' or 'PodManifest')")
    else:
        p.bad("acKind", f"{d['acKind']!r} is not a kind of manifest ('ImageManifest' or 'PodManifest')")
    return p.problems
