"""Docker's image formats, as real artefacts next to the ACI and the OCI layout (slides 25, 32).

skopeo (Debian's, 1.9) writes them from an OCI layout the kit exported:

* ``docker-archive:`` — what ``docker save`` writes. It carries both generations: the
  **v1** directories of 2014 (``repositories``, and per layer ``<id>/VERSION``, ``<id>/json``
  with ``id`` and ``parent``, ``<id>/layer.tar``) and, since Docker 1.10, a ``manifest.json``
  with a config blob named by its sha256;
* ``dir:`` with ``--format v2s2`` — the **Docker v2.2** image: ``manifest.json``
  (``application/vnd.docker.distribution.manifest.v2+json``) naming a config and gzip layers by
  sha256, each in a file named by its digest — the format OCI's image-spec grew from.

:func:`v1_archive` writes what ``docker save`` wrote *in 2014* from that: only the v1 parts, and
layer IDs drawn at random, as ``docker build`` drew them — a name for a layer, not a hash of it.
Nothing ties ``layer.tar``'s bytes to its ID, so nothing can notice when they change.

Signing was never part of either format. :func:`simple_sign` makes the optional, non-prescribed
kind that came later for v2.2 images: containers/image's "simple signing" (``skopeo
standalone-sign``), an inline OpenPGP message that claims *this manifest digest is this name*,
stored beside the image as ``signature-1``; :func:`read_simple_signature` reads and verifies it
with the kit's own OpenPGP code.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import bounded
from sandbox.image.aci import BoundedTarInfo
from sandbox.oci.layout import MANIFEST, Layout, OciError, digest_of
from sandbox.steps import Steps, record

MT_DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
MAX_JSON = 1 << 20            # a v1 json, manifest.json, repositories or config: bounded


class DockerFormatError(OciError):
    """A Docker image artefact cannot be written or read."""


def skopeo(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
           steps: Steps | None = None) -> subprocess.CompletedProcess:
    """Run Debian's skopeo; a failure raises with skopeo's own last line."""
    exe = shutil.which("skopeo")
    if exe is None:
        raise DockerFormatError("skopeo is not installed; install Debian's skopeo "
                                "(provision/packages/oci.txt).")
    record(steps, "exec", "skopeo " + " ".join(args))
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        m = re.search(r'msg="(.*)"\s*$', last)          # logrus: time=… level=fatal msg="…"
        raise DockerFormatError(f"skopeo {args[0]} failed: "
                                + (m.group(1).replace('\\"', '"') if m else last))
    return p


def entries(archive: str | os.PathLike[str]) -> list[str]:
    """The names in a tar archive, each 64-hex layer directory shown once as ``<id>/…``."""
    with tarfile.open(archive, "r:", tarinfo=BoundedTarInfo) as tar:
        names = tar.getnames()
    out = {("<id>/" + n.split("/", 1)[1]) if len(n.split("/")[0]) == 64 and "/" in n
           else "<id>/" if len(n) == 64 else n for n in names}
    return sorted(out)


def _oci(layout: str | os.PathLike[str], tag: str) -> str:
    return f"oci:{os.fspath(layout)}:{tag}"


def docker_archive(layout: str | os.PathLike[str], tag: str, out: str | os.PathLike[str],
                   reference: str, *, steps: Steps | None = None) -> Path:
    """``skopeo copy oci:LAYOUT:TAG docker-archive:OUT:REFERENCE`` (the ``docker save`` format)."""
    out = Path(out)
    out.unlink(missing_ok=True)
    skopeo("copy", "--quiet", _oci(layout, tag), f"docker-archive:{out}:{reference}", steps=steps)
    return out


def docker_dir(layout: str | os.PathLike[str], tag: str, out: str | os.PathLike[str], *,
               steps: Steps | None = None) -> Path:
    """``skopeo copy --format v2s2 oci:LAYOUT:TAG dir:OUT`` (a Docker v2.2 image in a directory)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    skopeo("copy", "--quiet", "--format", "v2s2", _oci(layout, tag), f"dir:{out}", steps=steps)
    return out


# ---------------------------------------------------------------------------------- Docker v1


@dataclass(frozen=True)
class V1Layer:
    id: str                   # 64 hex: the layer's name
    parent: str | None
    size: int                 # bytes of layer.tar
    sha256: str               # what layer.tar hashes to (nothing in the format records it)


@dataclass
class DockerV1:
    """A ``docker save`` archive read as Docker 1.x read it: repositories and v1 layer dirs."""

    path: Path
    repositories: dict[str, dict[str, str]]
    layers: list[V1Layer]                     # base first, the image's top layer last
    has_manifest: bool = False                # a Docker ≥ 1.10 manifest.json is there too

    @property
    def top(self) -> str:
        return self.layers[-1].id if self.layers else ""


def _read_json(tar: tarfile.TarFile, name: str) -> Any:
    m = tar.getmember(name)
    if not m.isfile() or m.size > MAX_JSON:
        raise DockerFormatError(f"{name} in the archive is not a small JSON file.")
    f = tar.extractfile(m)
    assert f is not None
    try:
        return bounded.loads(f.read(MAX_JSON + 1), f"{name} in the archive", max_bytes=MAX_JSON,
                             limit=bounded.OCI_JSON_BYTES)
    except (bounded.BadJSON, bounded.InputTooLarge) as e:
        raise DockerFormatError(e.message) from e


def _member(tar: tarfile.TarFile, name: str, hops: int = 0) -> tarfile.TarInfo:
    """A member, following a symlink inside the archive (skopeo links ``<id>/layer.tar`` to
    the layer file beside it); never outside it."""
    m = tar.getmember(name)
    if m.issym():
        if hops > 4:
            raise DockerFormatError(f"{name}: too many links in the archive.")
        target = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
        if target.startswith(("..", "/")):
            raise DockerFormatError(f"{name} links outside the archive.")
        return _member(tar, target, hops + 1)
    if not m.isfile():
        raise DockerFormatError(f"{name} in the archive is not a file.")
    return m


def read_v1(archive: str | os.PathLike[str]) -> DockerV1:
    """The v1 side of a ``docker save`` archive: every ``<id>/json`` (id, parent) and the
    sha256 of every ``layer.tar``, ordered from the base to the tag's top layer."""
    path = Path(archive)
    try:
        with tarfile.open(path, "r:", tarinfo=BoundedTarInfo) as tar:
            names = set(tar.getnames())
            repos = _read_json(tar, "repositories") if "repositories" in names else {}
            metas = {}
            for n in names:
                parts = n.split("/")
                if len(parts) == 2 and parts[1] == "json" and len(parts[0]) == 64:
                    metas[parts[0]] = _read_json(tar, n)
            layers = {}
            for lid, meta in metas.items():
                m = _member(tar, f"{lid}/layer.tar")
                f = tar.extractfile(m)
                assert f is not None
                h = hashlib.sha256()
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                layers[lid] = V1Layer(lid, meta.get("parent"), m.size, "sha256:" + h.hexdigest())
    except (tarfile.TarError, KeyError, OSError) as e:
        raise DockerFormatError(f"{path} is not a docker save archive ({e}).") from e
    tops = [t for tags in repos.values() for t in tags.values()]
    chain: list[V1Layer] = []
    cur = tops[0] if tops else None
    while cur and cur in layers and len(chain) <= len(layers):
        chain.append(layers[cur])
        cur = layers[cur].parent
    return DockerV1(path, repos, chain[::-1], "manifest.json" in names)


def v1_archive(docker_save: str | os.PathLike[str], out: str | os.PathLike[str], *,
               steps: Steps | None = None) -> DockerV1:
    """What ``docker save`` wrote in 2014, from a modern ``docker save`` archive: the same
    layers, but only ``repositories`` and ``<id>/{VERSION,json,layer.tar}`` — no manifest.json,
    no config blob — and every layer ID drawn at random, as Docker 1.x's ``docker build`` drew
    it. The image's settings go in the top layer's ``json``, as they did."""
    src = Path(docker_save)
    out = Path(out)
    try:
        with tarfile.open(src, "r:", tarinfo=BoundedTarInfo) as tar:
            manifest = _read_json(tar, "manifest.json")[0]
            config = _read_json(tar, manifest["Config"])
            layer_names = manifest["Layers"]
            ref = (manifest.get("RepoTags") or ["example.com/image:latest"])[0]
            ids = [secrets.token_hex(32) for _ in layer_names]    # docker build's random IDs
            with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as w:
                def add(name: str, data: bytes) -> None:
                    ti = tarfile.TarInfo(name)
                    ti.size, ti.mode = len(data), 0o644
                    w.addfile(ti, io.BytesIO(data))
                for i, (lid, lname) in enumerate(zip(ids, layer_names)):
                    d = tarfile.TarInfo(lid)
                    d.type, d.mode = tarfile.DIRTYPE, 0o755
                    w.addfile(d)
                    meta: dict[str, Any] = {"id": lid}
                    if i:
                        meta["parent"] = ids[i - 1]
                    if i == len(ids) - 1:       # the image's settings ride on its top layer
                        meta.update({k: config[k] for k in ("architecture", "os", "config",
                                                            "created") if k in config})
                    add(f"{lid}/VERSION", b"1.0")
                    add(f"{lid}/json", json.dumps(meta).encode())
                    m = _member(tar, lname)
                    f = tar.extractfile(m)
                    assert f is not None
                    ti = tarfile.TarInfo(f"{lid}/layer.tar")
                    ti.size, ti.mode = m.size, 0o644
                    w.addfile(ti, f)
                name, _, tag = ref.rpartition(":")
                add("repositories", json.dumps({name: {tag: ids[-1]}}).encode())
    except (tarfile.TarError, KeyError, IndexError, OSError) as e:
        raise DockerFormatError(f"{src} is not a docker save archive skopeo wrote ({e}).") from e
    record(steps, "write", str(out), layers=len(ids), top=ids[-1][:12])
    return read_v1(out)


def tamper_layer(archive: str | os.PathLike[str], out: str | os.PathLike[str],
                 layer: int = -1) -> int:
    """Copy a ``docker save`` archive with one byte changed inside one layer's ``layer.tar``
    (``layer``: index from the base; -1 is the top layer). Returns the offset in the archive."""
    from sandbox.image import aci
    v1 = read_v1(archive)
    with tarfile.open(archive, "r:", tarinfo=BoundedTarInfo) as tar:
        m = _member(tar, f"{v1.layers[layer].id}/layer.tar")
        offset = m.offset_data + m.size // 2
    return aci.flip_byte(archive, out, offset=offset)


# ---------------------------------------------------------------------------------- Docker v2.2


@dataclass
class DockerV2:
    """A Docker v2.2 image in a ``dir:`` directory (what skopeo writes)."""

    path: Path
    manifest: dict[str, Any]
    manifest_digest: str                       # sha256 of manifest.json: what a registry names
    config: dict[str, Any]
    layers: list[dict[str, Any]]              # the manifest's layer descriptors
    signatures: list[Path] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Blobs whose bytes no longer hash to the digest that names them (the check skopeo
        makes while copying)."""
        out = []
        for d in [self.manifest["config"], *self.layers]:
            p = self.path / d["digest"].split(":", 1)[1]
            if not p.is_file():
                out.append(f"{d['digest'][:19]}…: missing")
                continue
            got = digest_of(p.read_bytes(), d["digest"].split(":", 1)[0])
            if got != d["digest"] or p.stat().st_size != d.get("size"):
                out.append(f"{d['digest'][:19]}…: the file hashes to {got[:19]}…")
        return out


def read_v2(directory: str | os.PathLike[str]) -> DockerV2:
    d = Path(directory)
    try:
        raw = bounded.read_file(d / "manifest.json", bounded.OCI_JSON_BYTES)
        manifest = bounded.loads(raw, f"{d}/manifest.json")
        problem = (bounded.shape_problem(manifest, MANIFEST, "manifest.json")
                   if isinstance(manifest, dict) else "manifest.json is not a JSON object")
        if problem:
            raise ValueError(problem)
        cdesc = manifest["config"]
        # the config file is named by its digest's hex: check it is one (no "../" in a name)
        blob = Layout(d).blob_path(cdesc["digest"]).name
        config = bounded.loads(bounded.read_file(d / blob, bounded.OCI_JSON_BYTES),
                               f"{d}/{blob}")
    except (OSError, ValueError, KeyError, TypeError, bounded.InputTooLarge) as e:
        raise DockerFormatError(f"{d} is not a Docker v2.2 image directory ({e}).") from e
    if manifest.get("mediaType") != MT_DOCKER_V2S2:
        raise DockerFormatError(f"{d}/manifest.json is a {manifest.get('mediaType')}, not a Docker "
                                "v2.2 manifest (write it with --format v2s2).")
    sigs = sorted(d.glob("signature-*"), key=lambda p: bounded.plain_int(p.name.split("-")[1]) or 0)
    return DockerV2(d, manifest, digest_of(raw), config, list(manifest.get("layers") or []), sigs)


def copy_check(source: str, steps: Steps | None = None) -> str | None:
    """Let skopeo copy ``source`` (``dir:…``, ``docker-archive:…``, ``oci:…``) into a throwaway
    OCI layout, re-hashing every blob: None when it accepts, else skopeo's own complaint."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="sbx-skopeo-") as tmp:
        try:
            skopeo("copy", "--quiet", "--remove-signatures", source, f"oci:{tmp}/out:check",
                   steps=steps)
        except DockerFormatError as e:
            return str(e)
    return None


# ---------------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SimpleSignature:
    """A containers/image "simple signing" signature, read and checked by the kit."""

    path: Path
    claims: dict[str, Any]            # {"critical": {"identity", "image", "type"}, "optional"}
    reference: str                    # critical.identity.docker-reference
    manifest_digest: str              # critical.image.docker-manifest-digest
    verdict: str                      # the kit's verification: "Good signature …" or why not
    good: bool


def simple_sign(directory: str | os.PathLike[str], reference: str, secret: Any, *,
                steps: Steps | None = None) -> Path:
    """Sign a Docker v2.2 image in ``directory`` the containers/image way: ``skopeo
    standalone-sign`` with ``secret`` (a :class:`sandbox.trust.pgp.SecretKey`) in a throwaway
    GnuPG home; the signature goes beside the image as the next ``signature-N``."""
    from sandbox.trust import gnupg
    d = Path(directory)
    n = 1 + len(list(d.glob("signature-*")))
    out = d / f"signature-{n}"
    with gnupg.home([secret.armored()]) as home:
        skopeo("standalone-sign", str(d / "manifest.json"), reference, secret.fingerprint.upper(),
               "--output", str(out), env={"GNUPGHOME": str(home)}, steps=steps)
    return out


def read_simple_signature(path: str | os.PathLike[str], keyring: list[Any],
                          manifest: str | os.PathLike[str] | None = None) -> SimpleSignature:
    """Read ``signature-N`` (an inline-signed OpenPGP message holding JSON claims) and verify it
    with the kit's OpenPGP code against ``keyring``; with ``manifest``, also check that the
    signed digest is that file's."""
    from sandbox.trust import pgp
    path = Path(path)
    literal, sig = pgp.read_signed_message(bounded.read_file(path, bounded.KEY_FILE_BYTES))
    try:
        claims = bounded.loads(literal, f"the claims in {path}")
        crit = claims["critical"]
        ref = crit["identity"]["docker-reference"]
        digest = crit["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError) as e:
        raise DockerFormatError(f"{path} does not hold simple-signing claims ({e}).") from e
    try:
        verdict, good = str(pgp.verify(literal, sig.packet(), keyring)), True
    except pgp.SignatureError as e:
        verdict, good = f"{type(e).__name__}: {e}", False
    if good and manifest is not None:
        have = digest_of(Path(manifest).read_bytes(), digest.split(":", 1)[0])
        if have != digest:
            verdict, good = (f"the signature is good, but it names manifest {digest[:19]}… and "
                             f"{Path(manifest).name} is {have[:19]}…"), False
    return SimpleSignature(path, claims, ref, digest, verdict, good)
