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

from sandbox import bounded
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


# The shapes image-spec gives the documents (descriptor.md, image-index.md, manifest.md,
# config.md), as sandbox.bounded.shape_problem reads them; what the kit does not read is free.
DESCRIPTOR = {"mediaType": str, "digest": str, "size": int, "annotations": dict,
              "platform": {"architecture": str, "os": str, "variant": str}}
INDEX = {"schemaVersion": int, "mediaType": str, "manifests": [DESCRIPTOR], "annotations": dict}
MANIFEST = {"schemaVersion": int, "mediaType": str, "config": DESCRIPTOR, "layers": [DESCRIPTOR],
            "annotations": dict}
CONFIG = {"created": str, "architecture": str, "os": str, "variant": str,
          "config": {"User": str, "Env": [str], "Entrypoint": [str], "Cmd": [str],
                     "WorkingDir": str, "Labels": dict, "ExposedPorts": dict, "Volumes": dict},
          "rootfs": {"type": str, "diff_ids": [str]}, "history": [dict]}


def check_shape(doc: Any, spec: dict[str, Any], what: str) -> dict[str, Any]:
    """``doc`` if it is an object of ``spec``'s shape, else an OciError naming the field."""
    if not isinstance(doc, dict):
        raise OciError(f"{what} is not a JSON object.")
    problem = bounded.shape_problem(doc, spec, "")
    if problem:
        raise OciError(f"{what} is malformed: {problem}.")
    for d in _descriptors(doc, spec):
        if not isinstance(d.get("digest"), str) or not isinstance(d.get("size"), int) \
                or d["size"] < 0:
            raise OciError(f"{what} has a descriptor without a digest or a size: {str(d)[:120]}.")
    return doc


def _descriptors(doc: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = [doc["config"]] if spec is MANIFEST and isinstance(doc.get("config"), dict) else []
    if spec is MANIFEST and not isinstance(doc.get("config"), dict):
        raise OciError("the image manifest has no config descriptor.")
    for key in ("manifests", "layers"):
        if key in spec:
            out += doc.get(key) or []
    return out


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

    def verify_blob(self, desc: dict[str, Any], steps: Steps | None = None) -> Path:
        """The blob's file, after checking it against its descriptor's digest and size, read in
        chunks (a layer may be gigabytes)."""
        digest = desc.get("digest") if isinstance(desc, dict) else None
        if not isinstance(digest, str):
            raise OciError(f"a descriptor in {self.root} has no digest.")
        p = self.blob_path(digest)
        try:
            f = bounded.open_regular(p, f"blob {digest} of {self.root}")
        except FileNotFoundError as e:
            raise OciError(f"the layout {self.root} lacks blob {digest}.") from e
        except OSError as e:
            raise OciError(f"blob {digest} of {self.root} cannot be read ({e.strerror}).") from e
        except SandboxError as e:       # a FIFO, a device (a link to /dev/zero never ends)
            raise OciError(str(e)) from e
        algo = digest.split(":", 1)[0]
        h = hashlib.new(algo)
        size = 0
        # the descriptor's size bounds the read: one byte more already says "corrupt"
        want = desc.get("size")
        most = want + 1 if isinstance(want, int) and want >= 0 else None
        with f:
            while most is None or size < most:
                chunk = f.read(1 << 20 if most is None else min(1 << 20, most - size))
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
        got = f"{algo}:{h.hexdigest()}"
        if got != digest or size != desc.get("size", size):
            raise OciError(f"blob {digest} in {self.root} is corrupt: its content hashes "
                           f"to {got} ({size} bytes, the descriptor says {desc.get('size')}).")
        record(steps, "hash", f"blobs/{algo}/{digest.split(':', 1)[1][:12]}…", **{algo: "ok"})
        return p

    def read_blob(self, desc: dict[str, Any], steps: Steps | None = None) -> bytes:
        """A small blob (a JSON document: at most OCI_JSON_BYTES), checked against its
        descriptor's digest and size. Layers are read with :meth:`verify_blob`."""
        size = desc.get("size") if isinstance(desc, dict) else None
        if isinstance(size, int) and size > bounded.OCI_JSON_BYTES.value:
            raise bounded.too_large(bounded.OCI_JSON_BYTES, f"blob {desc.get('digest')} of "
                                    f"{self.root}", size)
        return bounded.read_file(self.verify_blob(desc, steps), bounded.OCI_JSON_BYTES,
                                 f"blob {desc.get('digest')} of {self.root}")

    def read_json(self, desc: dict[str, Any], spec: dict[str, Any], what: str,
                  steps: Steps | None = None) -> dict[str, Any]:
        """A JSON blob (image index, manifest, config) read within OCI_JSON_BYTES and JSON_DEPTH
        and checked against ``spec``'s shape; OciError otherwise."""
        try:
            doc = bounded.loads(self.read_blob(desc, steps), what)
        except bounded.BadJSON as e:
            raise OciError(e.message) from e
        return check_shape(doc, spec, what)

    def index(self) -> dict[str, Any]:
        p = self.root / "index.json"
        try:
            doc = bounded.loads(bounded.read_file(p, bounded.OCI_JSON_BYTES), f"{p}",
                                limit=bounded.OCI_JSON_BYTES)
        except FileNotFoundError as e:
            raise OciError(f"{self.root} is not an OCI image layout (no index.json).") from e
        except (IsADirectoryError, NotADirectoryError) as e:
            raise OciError(f"{self.root} is not an OCI image layout ({p} is not a file).") from e
        except bounded.BadJSON as e:
            raise OciError(e.message) from e
        return check_shape(doc, INDEX, str(p))

    def add_manifest(self, desc: Descriptor, tag: str) -> None:
        index = self.index()
        keep = [m for m in (index.get("manifests") or [])
                if (m.get("annotations") or {}).get(REF_NAME) != tag]
        d = desc.to_json()
        d.setdefault("annotations", {})[REF_NAME] = tag
        index["manifests"] = keep + [d]
        self._write_index(index)

    def tags(self) -> list[str]:
        manifests = self.index().get("manifests") or []
        return [(m.get("annotations") or {}).get(REF_NAME, "") for m in manifests]

    def resolve(self, tag: str | None, steps: Steps | None = None) -> dict[str, Any]:
        """The manifest descriptor for ``tag`` (or the only one, when ``tag`` is None)."""
        manifests = self.index().get("manifests") or []
        if tag is None:
            if len(manifests) != 1:
                raise OciError(f"{self.root} holds {len(manifests)} images "
                               f"({', '.join(self.tags()) or 'none'}); name one as DIR:TAG.")
            desc = manifests[0]
        else:
            found = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == tag]
            if not found:
                raise OciError(f"{self.root} has no image tagged '{tag}' (it has: "
                               f"{', '.join(self.tags()) or 'none'}).")
            desc = found[0]
        if desc.get("mediaType") == MT_INDEX:   # a nested index: take the host's platform
            nested = self.read_json(desc, INDEX, f"the image index {desc.get('digest')}", steps)
            if not nested.get("manifests"):
                raise OciError(f"the image index {desc.get('digest')} in {self.root} lists no "
                               "manifest.")
            desc = nested["manifests"][0]
        return desc


def parse_ref(ref: str) -> tuple[Path, str | None]:
    """``DIR[:TAG]`` as skopeo and umoci write it."""
    path, sep, tag = ref.rpartition(":")
    if sep and path and "/" not in tag:
        return Path(path), tag
    return Path(ref), None
