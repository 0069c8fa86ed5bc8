"""The OCI image layout (image-spec v1.1: image-layout.md, descriptor.md, manifest.md,
image-index.md): content-addressed blobs under ``blobs/<alg>/<hex>``, descriptors that name them
by digest, size and media type, an ``index.json`` that points at the manifests.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError
from sandbox.steps import Steps, record

MT_INDEX = "application/vnd.oci.image.index.v1+json"


MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


MT_CONFIG = "application/vnd.oci.image.config.v1+json"


MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


REF_NAME = "org.opencontainers.image.ref.name"


# Our own annotation, so an exported image comes back under its appc name.
APPC_NAME = "org.appc.image.name"


# descriptor.md §Registered algorithms: sha256 (implementations MUST verify it) and sha512
# (they MAY). sha256 is the convention everybody writes; sha512 is allowed.
DIGEST_HEX = {"sha256": 64, "sha512": 128}


class OciError(SandboxError):
    """An OCI layout or bundle problem."""


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``data`` (a registered algorithm: sha256 or sha512)."""
    if algorithm not in DIGEST_HEX:
        raise OciError(f"'{algorithm}' is not a registered OCI digest algorithm; use sha256 or sha512.")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform)
        return d


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory (image-layout.md)."""

    def __init__(self, root: str | os.PathLike[str], algorithm: str = "sha256") -> None:
        self.root = Path(root)
        if algorithm not in DIGEST_HEX:
            raise OciError(f"'{algorithm}' is not a registered OCI digest algorithm; use sha256 or sha512.")
        self.algorithm = algorithm          # what this writer names new blobs by

    def blob_path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        if DIGEST_HEX.get(algo) != len(hexd) or not all(c in "0123456789abcdef" for c in hexd):
            raise OciError(f"'{digest}' is not a sha256 or sha512 digest (lowercase hex), the two "
                           "algorithms the image-spec registers.")
        return self.root / "blobs" / algo / hexd

    def init(self) -> None:
        (self.root / "blobs" / self.algorithm).mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (self.root / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []})

    def _write_index(self, index: dict[str, Any]) -> None:
        tmp = self.root / ".index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2))
        os.replace(tmp, self.root / "index.json")

    def put_bytes(self, data: bytes, media_type: str, steps: Steps | None = None,
                  **annotations: str) -> Descriptor:
        digest = digest_of(data, self.algorithm)
        p = self.blob_path(digest)
        if not p.exists():
            p.write_bytes(data)
        record(steps, "write", f"blobs/{digest.replace(':', '/')[:19 + len(self.algorithm) - 6]}…",
               mediaType=media_type, size=len(data))
        return Descriptor(media_type, digest, len(data), dict(annotations))

    def put_json(self, obj: Any, media_type: str, steps: Steps | None = None) -> Descriptor:
        return self.put_bytes(_canonical(obj), media_type, steps)

    def put_file(self, src: Path, media_type: str, digest: str, steps: Steps | None = None
                 ) -> Descriptor:
        p = self.blob_path(digest)
        size = src.stat().st_size
        if not p.exists():
            shutil.move(str(src), p)
        else:                       # the same content is already there: keep one copy
            src.unlink()
        record(steps, "write", f"blobs/{digest.replace(':', '/')[:19 + len(self.algorithm) - 6]}…",
               mediaType=media_type, size=size)
        return Descriptor(media_type, digest, size)

    def read_blob(self, desc: dict[str, Any], steps: Steps | None = None) -> bytes:
        """Read a blob and check it against its descriptor's digest and size."""
        p = self.blob_path(desc["digest"])
        if not p.exists():
            raise OciError(f"the layout {self.root} lacks blob {desc['digest']}.")
        data = p.read_bytes()
        algo = desc["digest"].split(":", 1)[0]
        got = digest_of(data, algo)
        if got != desc["digest"] or len(data) != desc.get("size", len(data)):
            raise OciError(f"blob {desc['digest']} in {self.root} is corrupt: its content hashes "
                           f"to {got}.")
        record(steps, "hash", f"blobs/{algo}/{desc['digest'].split(':', 1)[1][:12]}…", **{algo: "ok"})
        return data

    def index(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "index.json").read_text())
        except FileNotFoundError:
            raise OciError(f"{self.root} is not an OCI image layout (no index.json).") from None

    def add_manifest(self, desc: Descriptor, tag: str) -> None:
        index = self.index()
        keep = [m for m in index.get("manifests", [])
                if m.get("annotations", {}).get(REF_NAME) != tag]
        d = desc.to_json()
        d.setdefault("annotations", {})[REF_NAME] = tag
        index["manifests"] = keep + [d]
        self._write_index(index)

    def tags(self) -> list[str]:
        return [m.get("annotations", {}).get(REF_NAME, "") for m in self.index().get("manifests", [])]

    def resolve(self, tag: str | None, steps: Steps | None = None) -> dict[str, Any]:
        """The manifest descriptor for ``tag`` (or the only one, when ``tag`` is None)."""
        manifests = self.index().get("manifests", [])
        if tag is None:
            if len(manifests) != 1:
                raise OciError(f"{self.root} holds {len(manifests)} images "
                               f"({', '.join(self.tags()) or 'none'}); name one as DIR:TAG.")
            desc = manifests[0]
        else:
            found = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) == tag]
            if not found:
                raise OciError(f"{self.root} has no image tagged '{tag}' (it has: "
                               f"{', '.join(self.tags()) or 'none'}).")
            desc = found[0]
        if desc.get("mediaType") == MT_INDEX:   # a nested index: take the host's platform
            nested = json.loads(self.read_blob(desc, steps))
            desc = nested["manifests"][0]
        return desc


def parse_ref(ref: str) -> tuple[Path, str | None]:
    """``DIR[:TAG]`` as skopeo and umoci write it."""
    path, sep, tag = ref.rpartition(":")
    if sep and path and "/" not in tag:
        return Path(path), tag
    return Path(ref), None
