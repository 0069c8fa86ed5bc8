"""appc ↔ OCI (slides 21–39: the road from appc to OCI): an ACI exported as an OCI image
(one sha512 image ID becomes a sha256 Merkle DAG of layers, config and manifest), an OCI image
imported as an ACI, and an OCI runtime bundle (runtime-spec config.md) made from an appc app.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sandbox import bounded
from sandbox._sys import platform
from sandbox.image import aci
from sandbox.image.extract import ArchiveTooLarge, Extractor, Rules
from sandbox.image.manifest import ImageManifest
from sandbox.oci.layer import apply_layer, layer_paths, write_layer
from sandbox.oci.layout import (
    APPC_NAME,
    CONFIG,
    MANIFEST,
    MT_CONFIG,
    MT_LAYER_GZIP,
    MT_MANIFEST,
    REF_NAME,
    Descriptor,
    Layout,
    OciError,
    parse_ref,
)
from sandbox.pod import ace
from sandbox.steps import Steps, record


def _split_user(user: str) -> tuple[str, str]:
    u, _, g = user.partition(":")
    return (u or "0"), (g or u or "0")


def appc_arch_to_oci(arch: str) -> tuple[str, str | None]:
    """appc's arch label as OCI's ``architecture`` and ``variant`` (config.md; Go's GOARCH)."""
    try:
        a = platform.by_appc(arch)
    except platform.UnknownArch:
        return arch, None
    return a.oci, a.oci_variant


def oci_arch_to_appc(arch: str, variant: str | None = None) -> str:
    """OCI's ``architecture`` (+ ``variant``) as appc's arch label."""
    try:
        return platform.by_oci(arch, variant).appc
    except platform.UnknownArch:
        return arch


def image_config(m: ImageManifest, diff_ids: list[str], history: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    """The OCI image config for an appc image manifest.

    app.exec → Entrypoint (Cmd empty), environment → Env, user:group → User, workingDirectory →
    WorkingDir, ports → ExposedPorts, labels + annotations → Labels (prefixed ``appc.label.`` /
    ``appc.annotation.`` so nothing collides and the way back is exact), os/arch → os/architecture.
    """
    app = m.raw.get("app") or {}
    arch, variant = appc_arch_to_oci(m.labels.get("arch") or platform.appc_os_arch()[1])
    cfg: dict[str, Any] = {}
    if app.get("exec"):
        cfg["Entrypoint"] = list(app["exec"])
    env = [f"{e['name']}={e['value']}" for e in app.get("environment") or []]
    if env:
        cfg["Env"] = env
    if app.get("user") is not None:
        cfg["User"] = f"{app.get('user')}:{app.get('group', app.get('user'))}"
    if app.get("workingDirectory"):
        cfg["WorkingDir"] = app["workingDirectory"]
    ports = {f"{p['port']}/{p.get('protocol', 'tcp')}": {} for p in app.get("ports") or []}
    if ports:
        cfg["ExposedPorts"] = ports
    mounts = {mp["path"]: {} for mp in app.get("mountPoints") or []}
    if mounts:
        cfg["Volumes"] = mounts
    labels = {f"appc.label.{k}": v for k, v in m.labels.items()}
    labels.update({f"appc.annotation.{k}": v for k, v in m.annotations.items()})
    # OCI has no names (nor readOnly, count…) for ports and volumes: keep appc's entries as
    # JSON labels so the way back restores them exactly.
    for key in ("ports", "mountPoints"):
        if app.get(key):
            labels[f"appc.app.{key}"] = json.dumps(app[key], separators=(",", ":"))
    labels[APPC_NAME] = m.name
    cfg["Labels"] = labels
    out: dict[str, Any] = {
        "architecture": arch, "os": m.labels.get("os", "linux"),
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    if variant:
        out["variant"] = variant
    if m.annotations.get("created"):
        out["created"] = m.annotations["created"]
    return out


def manifest_from_config(config: dict[str, Any], name: str, tag: str | None) -> dict[str, Any]:
    """An appc ImageManifest (as JSON) for an OCI image config — docker2aci's mapping.

    Entrypoint + Cmd → exec, Env → environment, User → user/group (numbers default to 0),
    WorkingDir → workingDirectory, ExposedPorts → ports, Labels ``appc.label.*`` → labels (other
    labels → annotations when they are valid AC identifiers), os/architecture → labels.
    """
    c = config.get("config") or {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    from sandbox.image.types import AC_IDENTIFIER_RE  # spec types.md
    kept: dict[str, Any] = {}
    for k, v in (c.get("Labels") or {}).items():
        if not isinstance(v, str):           # config.md: Labels is a map of strings
            raise OciError(f"the image config's label {k[:60]!r} is not a string.")
        if k.startswith("appc.label."):
            labels[k[len("appc.label."):]] = v
        elif k.startswith("appc.annotation."):
            annotations[k[len("appc.annotation."):]] = v
        elif k in ("appc.app.ports", "appc.app.mountPoints"):
            try:
                kept[k[len("appc.app."):]] = bounded.loads(v, f"the label {k}")
            except bounded.BadJSON as e:
                raise OciError(e.message) from e
        elif k != APPC_NAME and AC_IDENTIFIER_RE.match(k.lower()):
            annotations.setdefault(k.lower(), v)
    labels = {**{k: labels[k] for k in ("version",) if k in labels}, **labels}
    if tag and "version" not in labels:
        labels["version"] = tag
    labels["os"] = config.get("os", "linux")
    labels["arch"] = oci_arch_to_appc(config.get("architecture", "amd64"), config.get("variant"))
    if config.get("created") and "created" not in annotations:
        annotations["created"] = config["created"]
    exec_ = list(c.get("Entrypoint") or []) + list(c.get("Cmd") or [])
    user, group = _split_user(c.get("User") or "0")
    app: dict[str, Any] = {"exec": exec_, "user": user, "group": group}
    env = []
    for e in c.get("Env") or []:
        k, _, v = e.partition("=")
        env.append({"name": k, "value": v})
    if env:
        app["environment"] = env
    if c.get("WorkingDir"):
        app["workingDirectory"] = c["WorkingDir"]
    ports = []
    for spec in sorted(c.get("ExposedPorts") or {}):
        port, _, proto = spec.partition("/")     # config.md: "port/tcp", "port/udp" or "port"
        proto = proto or "tcp"
        if not (port.isdigit() and port.isascii() and 0 < int(port[:6]) <= 65535):
            raise OciError(f"the image config exposes {spec[:40]!r}, which is not PORT/PROTOCOL.")
        ports.append({"name": f"{proto}-{port}", "protocol": proto, "port": int(port)})
    mps = [{"name": f"volume-{i}", "path": path}
           for i, path in enumerate(sorted(c.get("Volumes") or {}), 1)]
    ports, mps = kept.get("ports", ports), kept.get("mountPoints", mps)
    if ports:
        app["ports"] = ports
    if mps:
        app["mountPoints"] = mps
    m: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                         "labels": [{"name": k, "value": v} for k, v in labels.items()]}
    if exec_:
        m["app"] = app
    if annotations:
        m["annotations"] = [{"name": k, "value": v} for k, v in annotations.items()]
    return m


def runtime_config(app: dict[str, Any], *, app_name: str, rootfs: str = "rootfs",
                   hostname: str | None = None, uid: int = 0, gid: int = 0,
                   additional_gids: list[int] | None = None) -> dict[str, Any]:
    """An OCI runtime ``config.json`` that runs an appc app the way an ACE would.

    The app's exec, environment (plus the ACE's required PATH, AC_APP_NAME and ``container``),
    workingDirectory and resolved uid/gid; /proc, /dev (tmpfs + pts, shm, mqueue) and a read-only
    /sys; new pid, ipc, uts, mount and network namespaces (an empty netns: only ``lo``).
    """
    env = {"PATH": ace.DEFAULT_PATH}
    for e in app.get("environment") or []:
        env[e["name"]] = e["value"]
    env.update({"AC_APP_NAME": app_name, "container": ace.CONTAINER_NAME})
    if not app.get("exec"):
        raise OciError(f"app '{app_name}' has no exec; an OCI bundle needs a process to run.")
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid,
                     **({"additionalGids": additional_gids} if additional_gids else {})},
            "args": list(app["exec"]),
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": app.get("workingDirectory") or "/",
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname or app_name,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(ace.MASKED_PATHS),      # what a pod's apps get too
            "readonlyPaths": list(ace.READONLY_PATHS),
        },
        "annotations": {"org.appc.app.name": app_name},
    }


@dataclass
class Imported:
    aci: Path
    image_id: str
    manifest: dict[str, Any]
    layers: list[dict[str, Any]]


def import_layout(ref: str, out_aci: str | os.PathLike[str], *, name: str | None = None,
                  compression: str = "gzip", steps: Steps | None = None) -> Imported:
    """Turn the OCI image ``DIR[:TAG]`` into an ACI at ``out_aci``.

    Layers are applied in order with whiteouts into one rootfs (appc has no layers: the result
    is a single image, like docker2aci's squashed mode); the config becomes the manifest.
    """
    root, tag = parse_ref(ref)
    layout = Layout(root)
    desc = layout.resolve(tag, steps)
    tag = tag or (desc.get("annotations") or {}).get(REF_NAME)
    if tag is not None and not isinstance(tag, str):
        raise OciError(f"{ref}: the tag annotation {REF_NAME} is not a string.")
    manifest = layout.read_json(desc, MANIFEST, f"the image manifest of {ref}", steps)
    config = layout.read_json(manifest["config"], CONFIG, f"the image config of {ref}", steps)
    if name is None:
        name = ((config.get("config") or {}).get("Labels") or {}).get(APPC_NAME)
    if name is None:
        raise OciError(f"{ref} does not say its appc name; give one with --name "
                       "(e.g. --name example.com/imported).")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    with tempfile.TemporaryDirectory(prefix="sbx-oci-import-") as tmp:
        rootfs = Path(tmp) / "layout" / "rootfs"
        rootfs.mkdir(parents=True)
        os.chmod(rootfs, 0o755)
        infos = []
        # one extractor for the whole stack: it knows which layer wrote what (whiteouts remove
        # lower layers' content only); setid bits kept in this private (0700) temp dir
        ex = Extractor(rootfs, Rules(keep_setid=True), steps=steps, show="")
        try:
            for i, ldesc in enumerate(manifest.get("layers") or []):
                algo = diff_ids[i].split(":", 1)[0] if i < len(diff_ids) else "sha256"
                if algo not in ("sha256", "sha512"):
                    raise OciError(f"the diff_id of layer {i + 1} of {ref} is not a sha256 or "
                                   "sha512 digest.")
                with _uncompressed_layer(layout, ldesc, algo, Path(tmp), steps) as (tar_path, got):
                    if i < len(diff_ids) and got != diff_ids[i]:
                        raise OciError(f"layer {i + 1} of {ref} does not match its diff_id in "
                                       f"the config ({got} != {diff_ids[i]}).")
                    with aci.archive_errors(f"layer {i + 1} of {ref}"), open(tar_path, "rb") as f, \
                            aci.bounded_tar(f, stream=False) as tar:   # header limits applied
                        counts = apply_layer(tar, rootfs, steps, extractor=ex)
                infos.append({"digest": ldesc["digest"], "diff_id": got, **counts})
        finally:
            ex.close()
        m = manifest_from_config(config, name, tag)
        (Path(tmp) / "layout" / "manifest").write_text(json.dumps(m, indent=2))
        image_id = aci.build(Path(tmp) / "layout", Path(out_aci), compression=compression,
                             overwrite=True, steps=steps)
    return Imported(Path(out_aci), image_id, m, infos)


@contextlib.contextmanager
def _uncompressed_layer(layout: Layout, desc: dict[str, Any], algo: str, tmp: Path,
                        steps: Steps | None) -> Iterator[tuple[Path, str]]:
    """The layer's tar as a file, and its diff_id: the blob is verified in chunks, then a gzip
    layer is gunzipped as a stream into a temporary file (never whole in memory), at most the
    free space of that file system (a few KiB of gzip can claim gigabytes)."""
    blob = layout.verify_blob(desc, steps)
    with open(blob, "rb") as f:
        head = f.read(4)
    if head[:2] != b"\x1f\x8b":
        if head == b"\x28\xb5\x2f\xfd":
            raise OciError(f"layer {desc['digest']} is zstd-compressed, which this kit does not "
                           "read; convert it (skopeo copy) to gzip.")
        h = hashlib.new(algo)
        with open(blob, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        yield blob, f"{algo}:{h.hexdigest()}"
        return
    out = tmp / f"layer-{desc['digest'].split(':', 1)[1][:16]}.tar"
    sv = os.statvfs(tmp)
    room = sv.f_bavail * sv.f_frsize
    most = bounded.IMAGE_BYTES.value    # a layer's tar is bounded as an image's tar is
    h = hashlib.new(algo)
    written = 0
    try:
        with gzip.open(blob, "rb") as src, open(out, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > most:
                    raise bounded.too_large(bounded.IMAGE_BYTES, f"the uncompressed tar of layer "
                                            f"{desc['digest']}", cls=ArchiveTooLarge)
                if written > room:
                    raise ArchiveTooLarge(f"layer {desc['digest']} expands to more than the "
                                          f"{room} bytes free under {tmp}; it may be a "
                                          "decompression bomb.")
                h.update(chunk)
                dst.write(chunk)
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise OciError(f"uncompressing layer {desc['digest']} failed: {e.strerror}.") from e
        raise OciError(f"layer {desc['digest']} is not valid gzip ({e}).") from e
    record(steps, "hash", f"layer {desc['digest'][:19]}… uncompressed", bytes=written,
           diff_id=f"{algo}:{h.hexdigest()[:12]}…")
    try:
        yield out, f"{algo}:{h.hexdigest()}"
    finally:
        out.unlink(missing_ok=True)


@dataclass
class Exported:
    layout: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layers: list[dict[str, Any]]      # per layer: image name, digest, diff_id, size, paths

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{i}</td><td>{l['image']}</td><td><code>{l['digest'][:19]}…</code>"
                       f"</td><td>{l['paths']}</td><td>{l['size']}</td></tr>"
                       for i, l in enumerate(self.layers, 1))
        return (f"<p>OCI layout <code>{self.layout}</code> tag <b>{self.tag}</b>, manifest "
                f"<code>{self.manifest_digest[:19]}…</code></p><table><tr><th>#</th><th>from image"
                f"</th><th>digest</th><th>paths</th><th>bytes</th></tr>{rows}</table>")


def export_image(store: Any, ref: str, out_dir: str | os.PathLike[str], *, tag: str | None = None,
                 steps: Steps | None = None, progress: bool = False,
                 digest: str = "sha256") -> Exported:
    """Write ``ref`` with its dependencies as an OCI image layout in ``out_dir``.

    The image is rendered (sandbox.render.treestore), then split into one gzip layer per image of the
    override order, each holding the files that image contributed to the final tree. ``digest``
    names every blob: sha256 (what everyone writes) or sha512 (registered too; support is a MAY).
    """
    from sandbox.render import treestore
    image = store.get(ref, steps=steps)
    tree = treestore.render_image(store, image, steps=steps, progress=progress)
    trace = tree.trace()
    owner = {p.lstrip("/"): h.final for p, h in trace.final_paths().items() if h.final}
    per = layer_paths(tree.rootfs, owner, len(trace.layers))
    layout = Layout(out_dir, digest)
    layout.init()
    tag = tag or image.labels.get("version") or "latest"
    layers, diff_ids, history, descs = [], [], [], []
    for info, paths in zip(trace.layers, per):
        if not paths:
            continue
        with tempfile.NamedTemporaryFile(dir=layout.root / "blobs", delete=False) as t:
            tmp = Path(t.name)
        blob_digest, diff_id = write_layer(tree.rootfs, paths, tmp, algorithm=digest)
        desc = layout.put_file(tmp, MT_LAYER_GZIP, blob_digest, steps)
        descs.append(desc)
        diff_ids.append(diff_id)
        history.append({"created_by": f"appc dependency {info['name']} "
                                      f"({info['id'][:19]}…), layer {info['index']}"})
        layers.append({"image": info["name"], "image_id": info["id"], "digest": blob_digest,
                       "diff_id": diff_id, "size": desc.size, "paths": len(paths)})
    config = image_config(image.manifest, diff_ids, history)
    cdesc = layout.put_json(config, MT_CONFIG, steps)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc.to_json(),
                "layers": [d.to_json() for d in descs],
                "annotations": {APPC_NAME: image.name, "org.appc.image.id": image.id}}
    mdesc = layout.put_json(manifest, MT_MANIFEST, steps)
    arch, variant = appc_arch_to_oci(image.labels.get("arch") or platform.appc_os_arch()[1])
    plat = {"architecture": arch, "os": image.labels.get("os", "linux")}
    if variant:
        plat["variant"] = variant
    layout.add_manifest(Descriptor(mdesc.media_type, mdesc.digest, mdesc.size, platform=plat), tag)
    record(steps, "write", f"{layout.root}/index.json", tag=tag, manifest=mdesc.digest)
    return Exported(layout.root, tag, mdesc.digest, cdesc.digest, layers)


def make_bundle(store: Any, ref: str, out_dir: str | os.PathLike[str], *, app: str | None = None,
                steps: Steps | None = None, progress: bool = False) -> Path:
    """Write ``out_dir/config.json`` and ``out_dir/rootfs`` (a plain copy of the rendered tree)
    for the image's app (``app`` names it in config.json; default: the image name's last part).
    """
    from sandbox.render import treestore
    image = store.get(ref, steps=steps)
    manifest_app = image.manifest.raw.get("app")
    if not manifest_app:
        raise OciError(f"{image.name} has no app section, so there is nothing to run; pick an "
                       "image with an app (e.g. example.com/reduce-worker).")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OciError(f"{out} is not empty; give a new directory for the bundle.")
    tree = treestore.render_image(store, image, steps=steps, progress=progress)
    if not out.exists():    # the copy keeps the image's setuid files: only its owner enters
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir(mode=0o700)
    rootfs = out / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    treestore.copy_tree(tree.rootfs, rootfs, steps)
    for d in ("proc", "sys", "dev"):
        (rootfs / d).mkdir(exist_ok=True)
    uid, gid = ace.resolve_user(rootfs, str(manifest_app.get("user", "0")),
                            str(manifest_app.get("group", "0")))
    name = app or image.name.rsplit("/", 1)[-1]
    cfg = runtime_config(manifest_app, app_name=name, uid=uid, gid=gid,
                         additional_gids=list(manifest_app.get("supplementaryGIDs") or []))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    record(steps, "write", str(out / "config.json"), args=" ".join(cfg["process"]["args"]))
    return out


def compare_formats(image: Any, exported: Exported, *, v1: Any = None, v1_again: Any = None,
                    v2: Any = None, signature: Any = None) -> list[dict[str, str]]:
    """Rows of the slides' comparison (25, 32, and OCI's), each cell read off a real artefact:
    the ACI and the OCI layout, and — when given (:mod:`sandbox.oci.docker`) — a 2014-style
    ``docker save`` archive (``v1``; ``v1_again``: a second export of the same image), a Docker
    v2.2 image directory (``v2``) and a simple signature of it (``signature``). Columns:
    ``docker 2014``, ``appc``, ``docker v2.2``, ``oci`` (the Docker ones only when given)."""
    layout = Layout(exported.layout)
    index = layout.index()
    mdesc = layout.resolve(exported.tag)
    manifest = layout.read_json(mdesc, MANIFEST, f"the manifest of {exported.layout}")
    algo = mdesc["digest"].split(":", 1)[0]
    blobs = sorted(p.name for d in (layout.root / "blobs").iterdir() if d.is_dir() for p in d.iterdir())
    sig = Path(str(image.path) + ".asc")
    rebuilt = aci.image_id(image.path)
    rows = [
        {"property": "what names the image",
         "appc": f"{image.id[:19]}…: {image.id.split('-')[0]} of the whole uncompressed tar",
         "oci": f"{mdesc['digest'][:19]}…: {algo} of the manifest, which names a config and "
                f"{len(manifest['layers'])} layers by {algo}"},
        {"property": "content-addressable (the name checks the bytes)",
         "appc": "yes: hashing the stored archive again gives "
                 + ("the same ID" if rebuilt == image.id else f"another ID ({rebuilt[:19]}…)"),
         "oci": f"yes: every blob ({len(blobs)}) is re-hashed when read (our reader, skopeo, umoci)"},
        {"property": "layers / dependencies",
         "appc": f"by name + labels in the manifest ({len(image.manifest.dependencies)} listed), "
                 "resolved and rendered at run time",
         "oci": f"frozen in as {len(exported.layers)} layers, applied in order"},
        {"property": "serialized format",
         "appc": f"one .aci file ({image.compression}; the ID ignores compression)",
         "oci": f"a directory: oci-layout, index.json, blobs/ (schemaVersion {index['schemaVersion']})"},
        {"property": "naming and discovery",
         "appc": f"{image.name}: a DNS name whose owner says, by meta discovery, where its "
                 "images are (delegation, as an MX record delegates a domain's mail)",
         "oci": f"a tag in index.json ('{exported.tag}'); no discovery in the format"},
        {"property": "signatures",
         "appc": "detached OpenPGP .aci.asc over the file, trusted per name prefix"
                 + (" (present)" if sig.exists() else ""),
         "oci": "not part of the format (image-spec 1.0); signing was left to other projects"},
    ]
    if v1 is not None:
        same = v1_again is not None and [l.sha256 for l in v1.layers] == [l.sha256 for l in v1_again.layers]
        differ = v1_again is not None and v1.top != v1_again.top
        unrelated = all(l.sha256.split(":", 1)[1] != l.id for l in v1.layers)
        names = ", ".join(f"{n}:{t}" for n, tags in v1.repositories.items() for t in tags)
        rows[0]["docker 2014"] = (f"{v1.top[:12]}…: the ID of its top layer, 64 random hex "
                                  "digits drawn at build time")
        rows[1]["docker 2014"] = ("no: " + ("two exports of the same layers got different IDs "
                                            f"({v1.top[:12]}… / {v1_again.top[:12]}…)" if same and differ
                                            else "IDs are drawn at random")
                                  + ("; no ID is the hash of its layer.tar" if unrelated else ""))
        rows[2]["docker 2014"] = f"{len(v1.layers)} layers, each json names its parent"
        rows[3]["docker 2014"] = ("a tar of <id>/{VERSION, json, layer.tar} dirs and a "
                                  "repositories file" + (" (+ manifest.json)" if v1.has_manifest else ""))
        rows[4]["docker 2014"] = (f"repositories maps {names} to the top ID; the registry host is "
                                  "part of the name, and nothing like an MX record lets its owner "
                                  "point it elsewhere")
        rows[5]["docker 2014"] = "none"
    if v2 is not None:
        rows[0]["docker v2.2"] = (f"{v2.manifest_digest[:19]}…: sha256 of manifest.json, which "
                                  f"names a config and {len(v2.layers)} layers by sha256")
        bad = v2.problems()
        rows[1]["docker v2.2"] = ("yes: every blob's file hashes to its digest (skopeo checks "
                                  "while copying)" if not bad else f"yes — and {len(bad)} blob(s) "
                                  "no longer match, so tools refuse them")
        rows[2]["docker v2.2"] = f"{len(v2.layers)} layers, listed in order in the manifest"
        rows[3]["docker v2.2"] = "manifest.json + one file per blob, named by its digest"
        rows[4]["docker v2.2"] = ("registry/repository:tag; the registry maps the tag to the "
                                  "manifest digest; no delegation or discovery")
        rows[5]["docker v2.2"] = ("optional and not prescribed: nothing in the format"
                                  + (f"; here a simple signature beside it claims "
                                     f"{signature.reference} = {signature.manifest_digest[:19]}… "
                                     f"({'good' if signature.good else 'bad'})" if signature else ""))
    order = ["property"] + [k for k in ("docker 2014", "appc", "docker v2.2", "oci")
                            if k in rows[0]]
    return [{k: r[k] for k in order} for r in rows]


def round_trip_report(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """For each field of an app manifest: did it survive ACI → OCI → ACI?"""
    rows = []
    b_app, a_app = before.get("app") or {}, after.get("app") or {}
    for key in ("exec", "user", "group", "workingDirectory", "environment", "ports",
                "mountPoints", "supplementaryGIDs", "eventHandlers", "isolators"):
        if key in b_app or key in a_app:
            rows.append({"field": f"app.{key}", "kept": b_app.get(key) == a_app.get(key),
                         "note": ""})
    bl = {l["name"]: l["value"] for l in before.get("labels") or []}
    al = {l["name"]: l["value"] for l in after.get("labels") or []}
    rows.append({"field": "labels", "kept": bl == al, "note": ""})
    ba = {a["name"]: a["value"] for a in before.get("annotations") or []}
    aa = {a["name"]: a["value"] for a in after.get("annotations") or []}
    rows.append({"field": "annotations", "kept": ba == aa, "note": ""})
    rows.append({"field": "dependencies", "kept": not before.get("dependencies"),
                 "note": "flattened into the rootfs" if before.get("dependencies") else ""})
    rows.append({"field": "pathWhitelist", "kept": not before.get("pathWhitelist"),
                 "note": "already applied to the rootfs" if before.get("pathWhitelist") else ""})
    return rows
