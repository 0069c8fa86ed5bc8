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

Each object declares its JSON fields once (``FIELDS``: key, attribute, how it is read and
checked, when it is written); the parser, ``to_json`` and the list of appc fields behind
``ignored_fields`` are derived from that declaration.

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
from typing import Any, Callable, ClassVar, Mapping

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


# --------------------------------------------------------------------------- the fields, once
#
# Every appc object below declares its JSON fields once, in ``FIELDS``, in the order the spec
# lists them: the key, the attribute it fills, how it is read and checked, and when it is
# written. The parser (:func:`_read`), the canonical JSON (:meth:`_Object.to_json`) and the
# field list that :func:`ignored_fields` compares against are all derived from that one
# declaration (as appc's Go ``schema/types`` keeps a type's JSON mapping and its checks together).


def _is_set(v: Any) -> bool:
    return v is not None


def _always(v: Any) -> bool:
    return True


@dataclass(frozen=True)
class _F:
    """One JSON field of an appc object."""
    key: str                                   # as the spec spells it (camelCase)
    attr: str                                  # the typed object's attribute
    kind: str                                  # str int bool strs gids labels annotations
    #                                            pod-annotations env isolators strmap obj objs
    required: bool = False                     # absent: a problem, and no object is made
    nonempty: bool = False                     # "" (or []) is a problem
    check: Callable[[Any], str | None] | None = None   # a rule for the value (each item of strs)
    veto: bool = False                         # a value that breaks ``check`` drops the object
    of: Any = None                             # obj / objs: the class of the element
    unique: str = ""                           # objs: attribute that must differ between items
    dup: str = "duplicate {what} {value!r} (first at {first})"
    what: str = ""                             # objs: the item's name in the duplicate message
    scope: str = ""                            # isolators: "app" or "pod"
    keep: Callable[[Any], bool] = bool         # to_json writes the field when keep(value)


def _nv_json(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


_NAME_VALUE_KINDS = ("labels", "annotations", "pod-annotations", "env")


def _emit(f: _F, v: Any) -> Any:
    """A field's value as JSON (a copy: the typed object stays independent of the document)."""
    if f.kind in _NAME_VALUE_KINDS:
        return _nv_json(v)
    if f.kind == "obj":
        return v.to_json()
    if f.kind in ("objs", "isolators"):
        return [x.to_json() for x in v]
    if isinstance(v, (list, dict)):
        return type(v)(v)
    return v


class _Object:
    """An appc object made of declared fields."""
    FIELDS: ClassVar[tuple[_F, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in self.FIELDS:
            v = getattr(self, f.attr)
            if f.keep(v):
                d[f.key] = _emit(f, v)
        return d

    @classmethod
    def _post(cls, p: _Parser, at: str, values: dict[str, Any]) -> bool:
        """Rules between fields, after each field was read; False drops the object."""
        return True


@dataclass
class EventHandler(_Object):
    """aci.md §app.eventHandlers: ``pre-start`` or ``post-stop`` and what to exec."""
    name: str
    exec: list[str] = field(default_factory=list)

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, keep=_always),
        _F("exec", "exec", "strs", required=True, nonempty=True, keep=_always),
    )

    @classmethod
    def _post(cls, p: _Parser, at: str, values: dict[str, Any]) -> bool:
        name = values.get("name")
        if name is not None and name not in ("pre-start", "post-stop"):
            p.bad(f"{at}.name", f"{name!r} is not an event (pre-start or post-stop)")
            return False
        return True


@dataclass
class MountPoint(_Object):
    """aci.md §app.mountPoints: where the app expects external data."""
    name: str
    path: str
    read_only: bool = False

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, check=t.check_ac_name, keep=_always),
        _F("path", "path", "str", required=True, nonempty=True, keep=_always),
        _F("readOnly", "read_only", "bool"),
    )


@dataclass
class Port(_Object):
    """aci.md §app.ports: a port or a range [port, port+count-1]."""
    name: str
    protocol: str
    port: int
    count: int = 1
    socket_activated: bool = False

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, check=t.check_ac_name, keep=_always),
        _F("protocol", "protocol", "str", required=True, nonempty=True, keep=_always),
        _F("port", "port", "int", required=True, keep=_always),
        _F("count", "count", "int", keep=lambda c: c != 1),
        _F("socketActivated", "socket_activated", "bool"),
    )

    @classmethod
    def _post(cls, p: _Parser, at: str, values: dict[str, Any]) -> bool:
        port, count = values.get("port"), values.get("count")
        ok = True
        if port is not None and not 1 <= port <= 65535:
            p.bad(f"{at}.port", f"{port} is outside 1..65535")
            ok = False
        if count is not None and count < 1:
            p.bad(f"{at}.count", f"{count} is below 1")
            ok = False
        if ok and port is not None and count is not None and port + count - 1 > 65535:
            p.bad(f"{at}.count", f"the range {port}..{port + count - 1} goes past 65535")
        return True


@dataclass
class App(_Object):
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

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("exec", "exec", "strs"),
        _F("user", "user", "str", required=True, nonempty=True, keep=_always),
        _F("group", "group", "str", required=True, nonempty=True, keep=_always),
        _F("supplementaryGIDs", "supplementary_gids", "gids"),
        _F("eventHandlers", "event_handlers", "objs", of=EventHandler, unique="name",
           dup="only one {value} handler is allowed (first at {first})"),
        _F("workingDirectory", "working_directory", "str", check=t.check_absolute,
           keep=_is_set),
        _F("environment", "environment", "env"),
        _F("isolators", "isolators", "isolators", scope="app"),
        _F("mountPoints", "mount_points", "objs", of=MountPoint),
        _F("ports", "ports", "objs", of=Port, unique="name", what="port name"),
        _F("userAnnotations", "user_annotations", "strmap"),
        _F("userLabels", "user_labels", "strmap"),
    )

    def event_handler(self, name: str) -> EventHandler | None:
        return next((e for e in self.event_handlers if e.name == name), None)


@dataclass
class Dependency(_Object):
    """aci.md §dependencies: an image to lay down before this one."""
    image_name: str
    image_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("imageName", "image_name", "str", required=True, check=t.check_ac_identifier,
           keep=_always),
        _F("imageID", "image_id", "str", check=t.check_image_id, keep=_is_set),
        _F("labels", "labels", "labels"),
        _F("size", "size", "int", check=lambda n: f"{n} is negative" if n < 0 else None,
           keep=_is_set),
    )


def _coerce(value: Any, cls: type, what: str) -> Any:
    """Let callers build objects from plain dicts (e.g. ``app={...}``): parse and check them."""
    p = _Parser()
    out = _read(cls, p, value, what)
    if p.problems:
        raise ManifestError(p.problems, source=what)
    return out


class _Document(_Object):
    """What an image and a pod manifest share as whole documents: ``acKind`` and ``acVersion``
    (types.md §AC Kind Type, §AC Version Type) come first."""
    ac_kind: ClassVar[str] = ""
    ac_version: str

    def to_json(self) -> dict[str, Any]:
        return {"acKind": self.ac_kind, "acVersion": self.ac_version, **super().to_json()}

    def to_bytes(self) -> bytes:
        """The canonical manifest file content (2-space indented JSON, trailing newline)."""
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    def problems(self) -> list[str]:
        """Re-check an object built in code (e.g. after editing fields)."""
        return validate_json(self.to_json())

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any], *, steps: Steps | None = None,
                  source: str = "") -> Any:
        """Parse and validate; raises ManifestError listing every problem."""
        return _parse_checked(data, cls, source or _SOURCE[cls.ac_kind], steps)


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

    ac_kind: ClassVar[str] = "ImageManifest"
    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, nonempty=True, check=t.check_ac_identifier,
           keep=_always),
        _F("labels", "labels", "labels"),
        _F("app", "app", "obj", of=App, keep=_is_set),
        _F("dependencies", "dependencies", "objs", of=Dependency),
        _F("pathWhitelist", "path_whitelist", "strs", check=t.check_absolute),
        _F("annotations", "annotations", "annotations"),
    )

    def __post_init__(self) -> None:
        if isinstance(self.app, dict):
            self.app = _coerce(self.app, App, "app")
        self.dependencies = [_coerce(d, Dependency, "dependency") if isinstance(d, dict)
                             else d for d in self.dependencies]
        if not self.raw:   # built in code: the document is its canonical form
            self.raw = self.to_json()

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
class RuntimeImage(_Object):
    """pods.md §apps[].image: the image by ID (a template may leave the ID out), name, labels."""
    id: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("id", "id", "str", check=t.check_image_id, keep=_is_set),
        _F("name", "name", "str", check=t.check_ac_identifier, keep=_is_set),
        _F("labels", "labels", "labels"),
    )


@dataclass
class Volume(_Object):
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

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, check=t.check_ac_name, keep=_always),
        _F("kind", "kind", "str", required=True, veto=True, keep=_always,
           check=lambda k: None if k in ("empty", "host")
           else f"{k!r} is not a volume kind (empty or host)"),
        _F("source", "source", "str", keep=_is_set),
        _F("readOnly", "read_only", "bool", keep=_is_set),
        _F("recursive", "recursive", "bool", keep=_is_set),
        _F("mode", "mode", "str", keep=_is_set),
        _F("uid", "uid", "int", keep=_is_set),
        _F("gid", "gid", "int", keep=_is_set),
    )

    @classmethod
    def _post(cls, p: _Parser, at: str, values: dict[str, Any]) -> bool:
        """pods.md §volumes: a host volume needs an absolute source; mode, uid and gid only
        mean something for an empty one (and are dropped from a host one)."""
        kind = values.get("kind")
        if kind == "host":
            if values.get("source") is None:
                p.bad(f"{at}.source", "is required for a host volume")
            else:
                _check(p, f"{at}.source", values["source"], t.check_absolute)
            values["mode"] = values["uid"] = values["gid"] = None
        elif kind == "empty":
            _check(p, f"{at}.mode", values.get("mode"), t.check_mode)
            for k in ("uid", "gid"):
                x = values.get(k)
                if x is not None and not 0 <= x <= 0xFFFFFFFF:
                    p.bad(f"{at}.{k}", f"{x} is not a valid {k.upper()}")
            values["source"] = values["recursive"] = None
        return True


@dataclass
class Mount(_Object):
    """pods.md §apps[].mounts: volume name -> path in the app (appVolume overrides the lookup)."""
    volume: str
    path: str
    app_volume: Volume | None = None

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("volume", "volume", "str", required=True, check=t.check_ac_name, keep=_always),
        _F("path", "path", "str", required=True, nonempty=True, keep=_always),
        _F("appVolume", "app_volume", "obj", of=Volume, keep=_is_set),
    )


@dataclass
class RuntimeApp(_Object):
    """pods.md §apps[]."""
    name: str
    image: RuntimeImage
    app: App | None = None
    read_only_rootfs: bool = False
    mounts: list[Mount] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, check=t.check_ac_name, keep=_always),
        _F("image", "image", "obj", of=RuntimeImage, required=True, keep=_always),
        _F("app", "app", "obj", of=App, keep=_is_set),
        _F("readOnlyRootFS", "read_only_rootfs", "bool"),
        _F("mounts", "mounts", "objs", of=Mount),
        _F("annotations", "annotations", "pod-annotations"),
    )

    @classmethod
    def _post(cls, p: _Parser, at: str, values: dict[str, Any]) -> bool:
        """pods.md §ports: port names MUST be unique among the apps of a pod."""
        app, name = values.get("app"), values.get("name")
        if app is not None and name is not None:
            owners = p.state.setdefault("port owners", {})
            for j, port in enumerate(app.ports):
                owner = owners.setdefault(port.name, name)
                if owner != name:
                    p.bad(f"{at}.app.ports[{j}].name",
                          f"port name {port.name!r} is also used by app {owner!r}")
        return True


@dataclass
class ExposedPort(_Object):
    """pods.md §ports: expose an app port (by name) on the host."""
    name: str
    host_port: int
    host_ip: str | None = None
    pod_port: Port | None = None

    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("name", "name", "str", required=True, check=t.check_ac_name, keep=_always),
        _F("hostPort", "host_port", "int", required=True, keep=_always,
           check=lambda n: None if 1 <= n <= 65535 else f"{n} is outside 1..65535"),
        _F("hostIP", "host_ip", "str", check=t.check_ipv4, keep=_is_set),
        _F("podPort", "pod_port", "obj", of=Port, keep=_is_set),
    )


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

    ac_kind: ClassVar[str] = "PodManifest"
    FIELDS: ClassVar[tuple[_F, ...]] = (
        _F("apps", "apps", "objs", of=RuntimeApp, required=True, unique="name",
           what="app name", keep=_always),
        _F("volumes", "volumes", "objs", of=Volume, unique="name", what="volume name"),
        _F("isolators", "isolators", "isolators", scope="pod"),
        _F("annotations", "annotations", "pod-annotations"),
        _F("ports", "ports", "objs", of=ExposedPort),
        _F("userAnnotations", "user_annotations", "strmap"),
        _F("userLabels", "user_labels", "strmap"),
    )

    def __post_init__(self) -> None:
        if not self.raw:   # built in code: the document is its canonical form
            self.raw = self.to_json()

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
        self.state: dict[str, Any] = {}          # rules across objects (a pod's port names)

    def bad(self, path: str, rule: str) -> None:
        self.problems.append(f"{path}: {rule}")


_jtype = bounded.jtype     # "a string", "an array", ... (one wording for every parser)


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


_SOURCE = {"ImageManifest": "image manifest", "PodManifest": "pod manifest"}


def _parse_checked(data: bytes | str | dict[str, Any], cls: Any, source: str,
                   steps: Steps | None) -> Any:
    """Load JSON, read it as ``cls`` collecting every problem, record the check; raise
    ManifestError when anything is wrong."""
    d, problems = _load(data)
    obj = None
    if not problems:
        p = _Parser()
        obj = _read(cls, p, d, ROOT)
        problems = p.problems
    record(steps, "check", source, kind=cls.ac_kind, problems=len(problems))
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


def _typed(p: _Parser, d: dict, key: str, path: str, is_type: Callable[[Any], bool], what: str,
           *, required: bool = False) -> Any:
    """``d[key]`` if it has the JSON type ``is_type`` accepts; None (and a problem) otherwise."""
    at = _at(path, key)
    v = d.get(key)
    if v is None:
        if required:
            _missing(p, d, key, at)
        return None
    if not is_type(v):
        p.bad(at, f"must be {what}, not {_jtype(v)}")
        return None
    return v


def _str(p: _Parser, d: dict, key: str, path: str, *, required: bool = False,
         nonempty: bool = False) -> str | None:
    v = _typed(p, d, key, path, lambda v: isinstance(v, str), "a string", required=required)
    if nonempty and v == "":
        p.bad(_at(path, key), "must not be empty")
        return None
    return v


def _bool(p: _Parser, d: dict, key: str, path: str) -> bool | None:
    return _typed(p, d, key, path, lambda v: isinstance(v, bool), "true or false")


def _int(p: _Parser, d: dict, key: str, path: str, *, required: bool = False) -> int | None:
    # JSON's true is not a number, although Python's bool is an int
    return _typed(p, d, key, path, lambda v: isinstance(v, int) and not isinstance(v, bool),
                  "an integer", required=required)


def _list(p: _Parser, d: dict, key: str, path: str, *, required: bool = False) -> list | None:
    return _typed(p, d, key, path, lambda v: isinstance(v, list), "an array", required=required)


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


def _gids(p: _Parser, d: dict, key: str, path: str) -> list[int]:
    """aci.md §app.supplementaryGIDs: unsigned 32-bit group IDs."""
    out = []
    for i, g in enumerate(_list(p, d, key, path) or []):
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= 0xFFFFFFFF:
            p.bad(_at(_at(path, key), i), f"{json.dumps(g)} is not an unsigned 32-bit group ID")
        else:
            out.append(g)
    return out


def _read_field(p: _Parser, d: dict, at: str, f: _F) -> Any:
    """One declared field of the JSON object ``d`` at path ``at``; problems go to ``p``."""
    key, where, k = f.key, _at(at, f.key), f.kind
    if k in ("str", "int"):
        v = (_str(p, d, key, at, required=f.required, nonempty=f.nonempty) if k == "str"
             else _int(p, d, key, at, required=f.required))
        if v is not None and f.check is not None:
            rule = f.check(v)
            if rule:
                p.bad(where, rule)
                if f.veto:
                    return None
        return v
    if k == "bool":
        return _bool(p, d, key, at)
    if k == "strs":
        v = _strings(p, d, key, at)
        if f.required and d.get(key) is None:
            _missing(p, d, key, where)
        elif f.nonempty and v is not None and not v:
            p.bad(where, "must not be empty")
        for i, s in enumerate(v or []):
            _check(p, _at(where, i), s, f.check) if f.check else None
        return v
    if k == "gids":
        return _gids(p, d, key, at)
    if k == "labels":
        return _parse_labels(p, d, key, at)
    if k in ("annotations", "pod-annotations"):
        return _parse_annotations(p, d, key, at, pod=k == "pod-annotations")
    if k == "env":
        return _name_value_list(p, d, key, at, "environment variable", t.check_env_name)[0]
    if k == "isolators":
        return _parse_isolators(p, d, key, at, f.scope)
    if k == "strmap":
        return _strmap(p, d, key, at)
    if k == "obj":
        if d.get(key) is None:
            if f.required:
                _missing(p, d, key, where)
            return None
        return _read(f.of, p, d[key], where)
    assert k == "objs", k
    out: list[Any] = []
    first: dict[Any, int] = {}
    for i, item in enumerate(_list(p, d, key, at, required=f.required) or []):
        x = _read(f.of, p, item, _at(where, i))
        if x is None:
            continue
        if f.unique:
            u = getattr(x, f.unique)
            if u in first:
                p.bad(f"{_at(where, i)}.{f.unique}",
                      f.dup.format(what=f.what, value=u, first=_at(where, first[u])))
                continue
            first[u] = i
        out.append(x)
    return out


def _parse_head(p: _Parser, d: dict, kind: str) -> str:
    """acKind (types.md §AC Kind Type) and acVersion (§AC Version Type)."""
    k = _str(p, d, "acKind", ROOT, required=True)
    if k is not None and k != kind:
        p.bad("acKind", f"must be {kind!r}, not {k!r}")
    ver = _str(p, d, "acVersion", ROOT, required=True, nonempty=True)
    _check(p, "acVersion", ver, t.check_ac_version)
    return ver or ""


def _read(cls: Any, p: _Parser, v: Any, at: str) -> Any:
    """The JSON value ``v`` at path ``at`` as a ``cls`` (one of the objects above), every field
    read and checked in declared order; None when it is not an object or a required field is
    missing or unusable (the problems say why)."""
    if _obj(p, v, at) is None:
        return None
    values: dict[str, Any] = {}
    if issubclass(cls, _Document):
        values["ac_version"] = _parse_head(p, v, cls.ac_kind)
        values["raw"] = v
    for f in cls.FIELDS:
        values[f.attr] = _read_field(p, v, at, f)
    if not cls._post(p, at, values):
        return None
    if any(values[f.attr] is None for f in cls.FIELDS if f.required):
        return None
    return cls(**{k: x for k, x in values.items() if x is not None})


def _schema(cls: Any) -> dict[str, Any]:
    """The fields the spec defines for ``cls``, nested (None: a leaf or a free-form value;
    [x]: a list of x) — for :func:`ignored_fields`."""
    out: dict[str, Any] = dict.fromkeys(("acKind", "acVersion")) if issubclass(cls, _Document) else {}
    for f in cls.FIELDS:
        if f.kind == "obj":
            out[f.key] = _schema(f.of)
        elif f.kind == "objs":
            out[f.key] = [_schema(f.of)]
        elif f.kind in _NAME_VALUE_KINDS or f.kind == "isolators":
            out[f.key] = [{"name": None, "value": None}]
        else:
            out[f.key] = None
    return out


_SCHEMA = {"ImageManifest": _schema(ImageManifest), "PodManifest": _schema(PodManifest)}


def ignored_fields(data: bytes | str | dict[str, Any]) -> list[str]:
    """The fields of a manifest that are not appc fields, so parsing ignores them (the spec asks
    executors to ignore unknown fields): ``path: note`` each, naming a near miss in case."""
    d, problems = _load(data)
    kind = d.get("acKind") if not problems else None
    schema = _SCHEMA.get(kind) if isinstance(kind, str) else None
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
    except FileNotFoundError as e:
        raise ManifestError([f"{path}: no such file"], source=what) from e
    except IsADirectoryError as e:
        raise ManifestError([f"{path}: is a directory, not a manifest file"], source=what) from e
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
    if kind in ("ImageManifest", "PodManifest"):
        _read(ImageManifest if kind == "ImageManifest" else PodManifest, p, d, ROOT)
    elif d.get("acKind") is None:
        p.bad("acKind", "is required ('ImageManifest' or 'PodManifest')")
    else:
        p.bad("acKind", f"{d['acKind']!r} is not a kind of manifest ('ImageManifest' or 'PodManifest')")
    return p.problems
