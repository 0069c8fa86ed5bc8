"""appc ImageManifest and PodManifest (spec 0.8.11: aci.md §Image Manifest Schema, pods.md,
types.md): parsed into typed objects and validated.

STUB - the public API below is the contract other modules code against; the full
validation is being written. Do not rely on anything not listed here.

    ImageManifest.from_json(data)   -> ImageManifest   (raises ManifestError)
    PodManifest.from_json(data)     -> PodManifest     (raises ManifestError)
    validate_json(data)             -> list[str]       problems, "json.path: rule" each
    m.to_json()                     -> dict            canonical JSON-able form
    ImageManifest: name, labels (dict, insertion order), app (App|None), dependencies
      (list[Dependency]), path_whitelist (list[str]), annotations (dict)
    Dependency: image_name, image_id (str|None), labels (dict), size (int|None)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import SandboxError


class ManifestError(SandboxError):
    """A manifest broke one or more rules; ``problems`` lists them as ``path: rule``."""

    def __init__(self, problems: list[str], source: str = "manifest") -> None:
        self.problems = problems
        super().__init__(f"{source} is invalid: " + "; ".join(problems))


@dataclass
class Dependency:
    image_name: str
    image_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None


@dataclass
class ImageManifest:
    name: str
    ac_version: str = "0.8.11"
    labels: dict[str, str] = field(default_factory=dict)
    app: Any = None
    dependencies: list[Dependency] = field(default_factory=list)
    path_whitelist: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> "ImageManifest":
        d = data if isinstance(data, dict) else json.loads(data)
        return cls(
            name=d["name"], ac_version=d.get("acVersion", ""),
            labels={l["name"]: l["value"] for l in d.get("labels") or []},
            app=d.get("app"),
            dependencies=[Dependency(x["imageName"], x.get("imageID"),
                                     {l["name"]: l["value"] for l in x.get("labels") or []},
                                     x.get("size")) for x in d.get("dependencies") or []],
            path_whitelist=list(d.get("pathWhitelist") or []),
            annotations={a["name"]: a["value"] for a in d.get("annotations") or []},
            raw=d)

    def to_json(self) -> dict[str, Any]:
        return self.raw
