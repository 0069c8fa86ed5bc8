"""Pods: stage0 of a small rkt-like runtime (appc pods.md, ace.md; rkt's pod lifecycle and stages).

stage0 (this module) decides; the supervisor and stage1 carry it out:

* :func:`prepare` — a reified PodManifest (every app has an image ID, every mountPoint a volume),
  each app's image rendered once into the tree store, a private writable root per app (overlay
  upper/work dirs, or a plain copy with ``overlay=False``), and ``stage1.json``: the complete,
  resolved plan (exec, environment, user and group as numbers, volumes, capabilities, cgroups).
* :func:`run_prepared` / :func:`start` — starts the pod's *supervisor*
  (:mod:`sandbox.pod.supervisor`): the pod's cgroups, netns and CNI attachments, the metadata
  service, stage1 (:mod:`sandbox.pod.stage1`, the pod's PID 1) in fresh PID/IPC/UTS/mount
  namespaces — one stack of undo steps, unwound when the pod ends or is stopped, before the
  pod moves to ``exited-garbage``. The supervisor is this process forked, and PID 1 the
  supervisor forked (:mod:`sandbox._sys.proc`); where forking is unsafe (a process with threads,
  e.g. a Jupyter kernel) they are fresh interpreters instead: ``python -m sandbox.pod.supervisor
  UUID``, ``python -m sandbox.pod.stage1 run POD_DIR``. Both paths give the same pod; the fork
  path starts it ~50 ms sooner. A foreground run *owns* its pod: the pod stops when it ends.
* :func:`status`, :func:`stop`, :func:`gc` — every process of a pod is in the pod's cgroup
  (:mod:`sandbox.pod.cgroups`): status lists them, stop and gc kill them all by cgroup, and a
  pod whose supervisor died is collected (processes, network, netns, cgroups) by ``stop``,
  ``gc`` or the foreground ``run`` that owned it.

The pod's state is a directory under ``$SANDBOX_DIR/pods/<state>/<uuid>`` with rkt's states
(embryo, prepare, prepared, run, exited-garbage, garbage) and an flock on it held while the pod
is being prepared or running — so "locked in run/" means running, "unlocked in run/" means the
supervisor died, and ``sandbox gc`` can tell them apart.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import posixpath
import re
import signal
import sys
import time
from collections import namedtuple
from pathlib import Path

from sandbox import config
from sandbox._sys import mountinfo
from sandbox.errors import NotRootError, SandboxError
from sandbox.pod import ace, cgroups
from sandbox.steps import Steps, record, snapshotting

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any, Iterator

    # treestore and manifest are imported where used: the supervisor needs neither
    from sandbox.image.manifest import PodManifest

STATES = ("embryo", "prepare", "prepared", "run", "exited-garbage", "garbage")
DEFAULT_NODE = f"{config.NAME_PREFIX}-node"          # the node netns of /var/lib/sandbox's pods
DEFAULT_NET = f"{config.NAME_PREFIX}-default"
DEFAULT_SUBNET = "172.31.0.0/16"                     # only ever inside the node netns
GC_GRACE_SECONDS = 30 * 60                           # rkt gc's default grace period


class PodError(SandboxError):
    """A pod cannot be prepared, run or found."""


def pods_dir() -> Path:
    return config.sandbox_dir() / "pods"


def new_uuid() -> str:
    """A random pod UUID, RFC 4122 §4.4 (version 4): what uuid.uuid4() gives, without importing
    uuid (it imports platform: ~1.5 ms of every `sandbox run`)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40         # version 4
    b[8] = (b[8] & 0x3F) | 0x80         # variant 10x (RFC 4122)
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def netns_name(uuid: str) -> str:
    return f"{config.NAME_PREFIX}-p-{uuid[:8]}"


def node_name(state: Path | None = None) -> str:
    """The node netns (it plays the host: the default network's bridge, forwarding and NAT live
    there) of the pods of one state directory.

    Pods keep their IPAM state under their state directory, so each state directory needs a
    node of its own: two of them sharing one node would hand out the same addresses on one
    bridge, and one's ``gc`` would delete the other's node. The default /var/lib/sandbox keeps
    the plain name learners see in the notebooks (``sbx-node``); any other directory (a test
    session, a second learner) gets ``sbx-node-`` + a CRC-32 of its real path. The bridge
    inside keeps its name (``sbx-br0``): each node is a network namespace of its own."""
    import zlib
    real = os.path.realpath(state if state is not None else config.sandbox_dir())
    if real == os.path.realpath(config.DEFAULT_DIR):
        return DEFAULT_NODE
    return f"{DEFAULT_NODE}-{zlib.crc32(os.fsencode(real)):08x}"


# ---------------------------------------------------------------------------- pod directories


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)


def _is_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def find(uuid_prefix: str) -> tuple[str, Path]:
    """(state, directory) of the pod whose UUID starts with ``uuid_prefix``."""
    if len(uuid_prefix) == 36 and "/" not in uuid_prefix and uuid_prefix[0] != ".":
        # a whole UUID (what the kit itself passes, several times per pod start): one look per
        # state instead of listing every state's directory. States are looked at in the order
        # a pod moves through them (renames), as below: a pod moving meanwhile is still found.
        for state in STATES:
            d = pods_dir() / state / uuid_prefix
            if os.path.lexists(d):
                return state, d
    matches = []
    every: list[str] = []
    for state in STATES:
        d = pods_dir() / state
        if d.is_dir():
            names = [p.name for p in d.iterdir()]
            every += names
            matches += [(state, d / n) for n in names if n.startswith(uuid_prefix)]
    if not uuid_prefix or "/" in uuid_prefix:
        matches = []
    if not matches:
        from sandbox.errors import did_you_mean
        # a mistyped prefix is compared with the same number of characters of each UUID
        hint = did_you_mean(uuid_prefix, [u[:len(uuid_prefix)] for u in every])
        raise PodError(f"no pod has a UUID starting with '{uuid_prefix}'.{hint}",
                       hint="`sandbox list` shows the pods.")
    if len({p.name for _, p in matches}) > 1:
        raise PodError(f"'{uuid_prefix}' matches several pods: "
                       + ", ".join(sorted(p.name for _, p in matches)) + "; give more of the UUID.")
    return matches[0]


def next_step(name: str, state: str) -> str:
    """What a user can do with a pod in ``state`` (the end of a message that refuses to act)."""
    short = name[:8]
    if state == "prepared":
        return f"`sandbox run-prepared {short}` starts it, `sandbox rm {short}` removes it."
    if state in ("exited-garbage", "garbage"):
        return (f"it has ended: `sandbox status {short}` shows how, `sandbox logs {short}` what "
                f"it printed, and `sandbox rm {short}` removes it.")
    if state in ("embryo", "prepare"):
        return "it is being prepared: try again in a moment (`sandbox gc` removes a failed one)."
    return f"`sandbox status {short}` shows it."


def _move(src: Path, state: str) -> Path:
    dst = pods_dir() / state / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)
    return dst


# ---------------------------------------------------------------------------- prepare


class VolumeSpec(namedtuple("VolumeSpec", "name kind source read_only",
                            defaults=("empty", None, None))):
    """``--volume NAME,kind=empty|host[,source=PATH][,readOnly=true]`` (rkt's syntax):
    name (str), kind (``empty`` or ``host``), source (str or None), read_only (bool or None)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> "VolumeSpec":
        name, *rest = text.split(",")
        kv = dict(p.split("=", 1) for p in rest if "=" in p)
        bad = [p for p in rest if "=" not in p]
        if bad or not name:
            raise PodError(f"'{text}' is not a volume; write NAME,kind=host,source=/path or "
                           "NAME,kind=empty.")
        ro = kv.get("readOnly")
        return cls(name, kv.get("kind", "empty"), kv.get("source"),
                   None if ro is None else ro.lower() == "true")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.source:
            d["source"] = self.source
        if self.read_only is not None:
            d["readOnly"] = self.read_only
        return d


def _app_name_for(image_name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", image_name.rsplit("/", 1)[-1].lower()).strip("-") or "app"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def pod_manifest_for(store: Any, images: list[str], volumes: list[VolumeSpec] | None = None,
                     annotations: dict[str, str] | None = None,
                     exec_: dict[int, list[str]] | None = None,
                     steps: Steps | None = None) -> dict[str, Any]:
    """A reified PodManifest for ``sandbox run IMAGE…`` (pods.md): one app per image with its
    image ID filled in, and a volume for every mountPoint — the ones given, else an implicit
    ``empty`` volume named like the mountPoint (so apps naming the same mountPoint share it)."""
    apps, taken, vols = [], set(), {v.name: v.to_json() for v in volumes or []}
    for i, ref in enumerate(images):
        img = store.get(ref, steps=steps)
        name = _app_name_for(img.name, taken)
        app_mounts = []
        for mp in (img.manifest.app.mount_points if img.manifest.app else []):
            vols.setdefault(mp.name, {"name": mp.name, "kind": "empty"})
            app_mounts.append({"volume": mp.name, "path": mp.path})
        entry: dict[str, Any] = {"name": name,
                                 "image": {"id": img.id, "name": img.name,
                                           "labels": [{"name": k, "value": v}
                                                      for k, v in img.labels.items()]}}
        if app_mounts:
            entry["mounts"] = app_mounts
        if exec_ and i in exec_:   # pods.md: an app section in the pod replaces the image's
            if img.manifest.app is None:
                raise PodError(f"{img.name} has no app section to override, so its exec cannot "
                               "be replaced; leave out --exec, or give it to an image with an "
                               "app (`sandbox image cat-manifest NAME` shows it).")
            override = img.manifest.app.to_json()
            override["exec"] = list(exec_[i])
            entry["app"] = override
        apps.append(entry)
    m: dict[str, Any] = {"acKind": "PodManifest", "acVersion": "0.8.11", "apps": apps,
                         "volumes": list(vols.values())}
    if annotations:
        m["annotations"] = [{"name": k, "value": v} for k, v in annotations.items()]
    return m


class Pod:
    """A pod as stage0 sees it: UUID, state, directory, manifest and run info.

    (A plain class, like the others on the run path: importing dataclasses costs ~6 ms.)"""

    def __init__(self, uuid: str, state: str, path: Path, manifest: dict[str, Any] | None = None,
                 info: dict[str, Any] | None = None, process: Any = None) -> None:
        self.uuid, self.state, self.path = uuid, state, path
        self.manifest = manifest if manifest is not None else {}
        self.info = info if info is not None else {}
        # the supervisor, when this process started it (wait on it instead of polling)
        self.process = process

    def __repr__(self) -> str:
        return f"Pod(uuid={self.uuid!r}, state={self.state!r}, path={str(self.path)!r})"

    @property
    def apps(self) -> list[str]:
        return [a["name"] for a in self.manifest.get("apps", [])]

    def _repr_html_(self) -> str:
        import html
        st = status(self.uuid)
        rows = "".join(f"<tr><td>{html.escape(a['name'])}</td><td>{html.escape(a['image'])}</td>"
                       f"<td>{html.escape(str(a.get('state')))}</td><td>{a.get('exitCode', '')}</td></tr>"
                       for a in st["apps"])
        return (f"<div><b>pod {self.uuid}</b> — {html.escape(st['state'])}"
                f"<table><tr><th>app</th><th>image</th><th>state</th><th>exit</th></tr>{rows}"
                "</table></div>")


def mount_target(path: str, app: str) -> str:
    """A mountPoint's path as the app will see it. aci.md: the path "stipulates where it is to be
    mounted inside the rootfs" — so it is a path inside the app's root, where ".." stops at the
    root as it does for any path the app opens: "/../../etc" is the app's /etc. stage1 then
    resolves it inside the rootfs (its links too), never on the host. The root itself is
    refused: a volume over it would hide the whole image."""
    if "\0" in path:
        raise PodError(f"the mount path {path!r} of app '{app}' holds a NUL byte; no path can.")
    target = posixpath.normpath("/" + path.lstrip("/"))
    if target == "/":
        raise PodError(f"the mount path {path!r} of app '{app}' is the app's root directory; "
                       "a volume is mounted on a directory inside the rootfs (e.g. /data).")
    return target


HOSTNAME_MAX = 64     # HOST_NAME_MAX: sethostname(2) refuses more (EINVAL)
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")


def check_hostname(name: Any) -> None:
    """A pod's ``--hostname``: a DNS name (RFC 1123 labels of letters, digits and '-', at most 63
    characters each), at most HOST_NAME_MAX characters. A longer one failed the pod's PID 1 at
    sethostname with no word to the user; a newline wrote lines of its own into /etc/hosts."""
    if not isinstance(name, str) or not name or len(name) > HOSTNAME_MAX \
            or not _HOSTNAME.match(name) or any(len(x) > 63 for x in name.split(".")):
        shown = repr(name[:70] + ("…" if len(name) > 70 else "")) if isinstance(name, str) else repr(type(name).__name__)
        raise PodError(f"the hostname {shown} is not a host name; give at most {HOSTNAME_MAX} "
                       "characters of letters, digits, '-' and '.' (e.g. web-1), or leave "
                       "--hostname out for pod-UUID.")


def _refuse_nul(name: str, app: Any) -> None:
    """An app's exec and handlers' exec (execve's argv), environment (envp), user, group and
    workingDirectory all become C strings, where a NUL byte ends the string: a value that holds
    one cannot be run as written. Its JSON can hold one ("\\u0000"; aci.md types them as strings,
    and actool accepts it), so the executor refuses it here, before the pod exists."""
    fields = [("exec", a) for a in app.exec]
    for h in ("pre-start", "post-stop"):
        handler = app.event_handler(h)
        fields += [(f"{h} handler's exec", a) for a in (handler.exec if handler else [])]
    fields += [(f"environment variable {k!r}", f"{k}={v}") for k, v in app.environment.items()]
    fields += [("user", app.user or ""), ("group", app.group or ""),
               ("workingDirectory", app.working_directory or "")]
    for what, value in fields:
        if "\0" in value:
            raise PodError(f"the {what} of app '{name}' holds a NUL byte, which no program "
                           "argument, variable, name or path can hold; remove it from the "
                           "manifest.")


def _app_plan(store: Any, ra: Any, pod: PodManifest, pod_dir: Path, overlay: bool,
              steps: Steps | None, progress: bool) -> dict[str, Any]:
    """Everything stage1 needs to start one app, decided here (stage0)."""
    from sandbox.render import treestore
    img = store.get(ra.image.id, steps=steps)
    app = ra.app or img.manifest.app
    if app is None or not app.exec:
        raise PodError(f"the image {img.name} has no app to run (no app.exec), and the pod "
                       f"manifest gives none for '{ra.name}'; it is a base for other images: run "
                       "one that has an app (`sandbox image cat-manifest NAME` shows it).")
    _refuse_nul(ra.name, app)
    tree = treestore.render_image(store, img, steps=steps, progress=progress)
    app_dir = pod_dir / "apps" / ra.name
    (app_dir / "rootfs").mkdir(parents=True)
    if overlay:
        (app_dir / "upper").mkdir()
        (app_dir / "work").mkdir()
    else:  # "a clean copy for every execution" without overlayfs: a real copy (ace.md L53)
        treestore.copy_tree(tree.rootfs, app_dir / "rootfs", steps, reason="--no-overlay")
    uid, gid = ace.resolve_user(tree.rootfs, app.user, app.group)
    mounts = []
    mount_points = {mp.path: mp for mp in app.mount_points}   # pods.md: mounts[].path is the target
    for m in ra.mounts:
        vol = pod.volume(m.volume)
        if vol is None:
            raise PodError(f"app '{ra.name}' mounts the volume '{m.volume}', which the pod does "
                           "not define; add --volume NAME,kind=… for it.")
        mp = mount_points.get(m.path)
        target = mount_target(m.path, ra.name)
        ro = vol.read_only if vol.read_only is not None else bool(mp and mp.read_only)
        if vol.kind == "host":
            source = vol.source or ""
            if not os.path.exists(source):
                raise PodError(f"the host volume '{vol.name}' points to {source}, which does not "
                               "exist (ace.md: a missing host source is an error).")
            if os.path.islink(source):
                raise PodError(f"the host volume '{vol.name}' source {source} is a symlink; give "
                               "the real path.")
        else:
            source = f"volumes/{vol.name}"      # relative: the pod directory moves between states
            full = pod_dir / source
            if not full.is_dir():
                # (uid_t)-1 is chown's "no change": 4294967295 would leave the volume root's
                owner = (ace.valid_id(vol.uid or 0, f"uid of the volume '{vol.name}'"),
                         ace.valid_id(vol.gid or 0, f"gid of the volume '{vol.name}'"))
                full.mkdir(parents=True)
                os.chmod(full, int(vol.mode or "0755", 8))
                os.chown(full, *owner)
        mounts.append({"volume": vol.name, "source": source, "target": target, "readOnly": ro,
                       "recursive": vol.recursive is not False})
    targets = sorted(m["target"] for m in mounts)
    for a, b in zip(targets, targets[1:]):
        if a == b:
            raise PodError(f"two volumes are mounted on {a} in app '{ra.name}' (ace.md: "
                           "overlapping mount targets are an error); mount one of them "
                           "elsewhere.")
    isolators = list(app.isolators) + list(pod.isolators)
    handler = lambda n: (app.event_handler(n).exec if app.event_handler(n) else None)  # noqa: E731
    return {
        "name": ra.name, "image": img.name, "imageID": img.id,
        "imageManifest": img.manifest.to_json(),     # for the metadata service
        "tree": str(tree.rootfs), "treeKey": tree.key, "overlay": overlay,
        "exec": list(app.exec), "uid": uid, "gid": gid,
        "supplementaryGIDs": [ace.valid_id(g, "supplementary group") for g in app.supplementary_gids],
        "workingDirectory": app.working_directory or "/",
        "environment": dict(app.environment), "mounts": mounts,
        "preStart": handler("pre-start"), "postStop": handler("post-stop"),
        "capabilities": ace.capability_set(isolators),
        "noNewPrivileges": ace.no_new_privileges(isolators),
        "limits": cgroups.limits_from_isolators(isolators).__dict__,
        "readOnlyRootFS": bool(ra.read_only_rootfs),
    }


def prepare(store: Any, images: list[str] | None = None, *,
            pod_manifest: dict[str, Any] | str | Path | None = None,
            volumes: list[VolumeSpec] | None = None, net: list[str] | None = None,
            exec_: dict[int, list[str]] | None = None,
            overlay: bool | None = None, hostname: str | None = None,
            conf_dir: str | None = None, cni_path: str | None = None,
            steps: Steps | None = None, progress: bool = False, _run_by: int | None = None) -> Pod:
    """Prepare a pod (``sandbox prepare``): returns it in state ``prepared``. ``_run_by``: the pid
    of the ``sandbox run`` that prepares it to run it at once (gc removes the pod if that
    process ends first)."""
    from sandbox.image.manifest import ManifestError, PodManifest, read_document
    from sandbox.render import treestore
    if os.geteuid() != 0:   # namespaces, mounts, cgroups, chown of volumes
        raise NotRootError("Preparing and running a pod")
    if bool(images) == bool(pod_manifest):
        raise PodError("give either images or a pod manifest (--pod-manifest FILE).")
    if hostname is not None and hostname != "":
        check_hostname(hostname)
    uid = new_uuid()
    # pods hold overlay upper dirs and --no-overlay copies (the image's setuid files): 0700
    embryo = config.private_dir("pods") / "embryo" / uid
    embryo.mkdir(parents=True)
    record(steps, "write", str(embryo), state="embryo")
    with _locked(embryo):
        pod_dir = _move(embryo, "prepare")
        try:
            if pod_manifest is not None:
                try:   # bounded: MANIFEST_BYTES, JSON_DEPTH (sandbox.bounded)
                    raw = (read_document(pod_manifest) if isinstance(pod_manifest, (str, Path))
                           else pod_manifest)
                except ManifestError as e:
                    raise PodError(f"the pod manifest is invalid: {'; '.join(e.problems)}; fix "
                                   "these fields (pods.md) and try again.") from e
                raw = _reify(store, raw, steps)
            else:
                raw = pod_manifest_for(store, images or [], volumes, exec_=exec_, steps=steps)
            try:
                pm = PodManifest.from_json(raw)
            except ManifestError as e:
                raise PodError(f"the pod manifest is invalid: {'; '.join(e.problems)}; fix "
                               "these fields (pods.md) and try again.") from e
            images_by_id = {a.image.id: store.get(a.image.id).manifest for a in pm.apps}
            problems = pm.reification_problems(images_by_id)
            if problems:
                raise PodError("the pod manifest is not reified: " + "; ".join(problems)
                               + "; give each app the ID of a stored image (`sandbox image list "
                               "--full`), or leave the ID out and name the image.")
            if overlay is None:
                overlay = treestore.overlay_supported()[0]
            plan_apps = [_app_plan(store, ra, pm, pod_dir, overlay, steps, progress)
                         for ra in pm.apps]
            (pod_dir / "pod-manifest.json").write_text(json.dumps(raw, indent=2))
            plan = {"uuid": uid, "hostname": hostname or f"pod-{uid[:8]}", "apps": plan_apps,
                    "net": net or ["default"], "confDir": conf_dir, "cniPath": cni_path,
                    "overlay": overlay, "created": time.time()}
            if _run_by is not None:
                from sandbox._sys import proc as _proc
                plan["runBy"] = {"pid": _run_by, "start": _proc.start_time(_run_by)}
            (pod_dir / "plan.json").write_text(json.dumps(plan, indent=2))
            record(steps, "write", str(pod_dir / "pod-manifest.json"), apps=len(plan_apps))
        except BaseException:
            # No pod came to exist: leave none (not even one in garbage/ for gc). Only if its
            # directory cannot be removed does it go to garbage/, where gc tries again.
            _discard(pod_dir)
            raise
        pod_dir = _move(pod_dir, "prepared")
    record(steps, "write", str(pod_dir), state="prepared")
    return Pod(uid, "prepared", pod_dir, raw, plan)


def _discard(pod_dir: Path) -> None:
    """Remove the directory of a pod whose prepare failed (with anything mounted below it); move
    it to garbage/ when that fails, so that gc removes it later."""
    import shutil
    try:
        mountinfo.umount_below(pod_dir, include_root=False)
        shutil.rmtree(pod_dir)
    except OSError:
        with contextlib.suppress(OSError):
            _move(pod_dir, "garbage")


def _reify(store: Any, raw: dict[str, Any], steps: Steps | None) -> dict[str, Any]:
    """Fill in missing image IDs from the store by name + labels (a template → a runtime
    manifest, pods.md)."""
    raw = json.loads(json.dumps(raw))
    for a in raw.get("apps") if isinstance(raw.get("apps"), list) else []:
        img = a.get("image") if isinstance(a, dict) else None
        if not isinstance(img, dict) or not isinstance(img.get("name"), str):
            continue   # wrong shapes are reported by the validation that follows
        if not img.get("id"):
            given = img.get("labels") if isinstance(img.get("labels"), list) else []
            labels = ",".join(f"{l['name']}={l['value']}" for l in given if isinstance(l, dict)
                              and isinstance(l.get("name"), str) and isinstance(l.get("value"), str))
            found = store.get(img["name"] + ("," + labels if labels else ""), steps=steps)
            img["id"] = found.id
    return raw


# ---------------------------------------------------------------------------- run


def write_json(path: Path, obj: Any) -> None:
    """Write a pod's state file atomically (a temporary file renamed over it): a reader never
    sees half of it, and a crash leaves the old version or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.rename(tmp, path)


def start(uuid: str, *, attached: bool = False, claim: cgroups.Claim | None = None,
          steps: Steps | None = None) -> tuple[str, Any]:
    """Start a prepared pod's supervisor (:mod:`sandbox.pod.supervisor`) and return at once:
    (the pod's UUID, the supervisor process — ``poll()``/``wait(timeout)`` like
    ``subprocess.Popen``). ``attached``: this process owns the pod (a foreground ``run``); the
    supervisor stops the pod when this process ends, however it ends. ``claim``: the pod's
    cgroups begun early by the caller (:func:`sandbox.pod.cgroups.claim`)."""
    state, d = find(uuid)
    if state != "prepared":
        if claim is not None:
            claim.wait()
            claim.release()
        raise PodError(f"pod {d.name} is {state}, not prepared, and only a prepared pod can be "
                       f"run; {next_step(d.name, state)}")
    from sandbox._sys import proc as _proc
    owner = os.getpid() if attached else None
    proc: Any
    if claim is None and _proc.can_fork():
        claim = cgroups.claim(d)        # begun now, it overlaps the imports below
    if claim is not None or _proc.can_fork():
        # What the supervisor and stage1 import is imported here, before the fork: in the
        # child every page an import writes would be copied first (~2.5 ms slower there).
        # (netns too: the supervisor imports it where it makes the pod's netns.)
        from sandbox.net import netns  # noqa: F401
        from sandbox.pod import metadata, stage1, supervisor  # noqa: F401
    if claim is not None:
        claim.wait()                    # the supervisor starts in the pod's cgroup (cgroups.Claim)
    if _proc.can_fork():    # the supervisor is this process forked: no second interpreter start
        from sandbox.pod import supervisor
        try:
            proc = _proc.fork_call(lambda: supervisor.supervise(d.name, owner),
                                   args=f"pod {d.name} supervisor",
                                   output=str(d / "supervisor.log"), new_session=True)
        finally:
            if claim is not None:
                claim.release()
        record(steps, "fork", f"supervisor of pod {d.name}", pid=proc.pid)
    else:
        if claim is not None:           # the exec'd supervisor joins its group itself
            claim.release()
        import subprocess
        argv = [sys.executable, "-m", "sandbox.pod.supervisor", d.name]
        argv += ["--owner", str(owner)] if owner is not None else []
        with open(d / "supervisor.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, env=os.environ.copy())
        record(steps, "exec", " ".join(argv), pid=proc.pid)
    return d.name, proc


def failure(uuid: str) -> str:
    """Why a pod whose supervisor has ended did not run: its error, or the supervisor's log."""
    state, d = find(uuid)
    err = _read_json(d / "run.json").get("error")
    return err or _tail(d, "supervisor.log")


def _exit_code(code: int) -> int:
    """A process's exit code the shell's way (128+N for death by signal N)."""
    return 128 - code if code < 0 else code


def finish_attached(uuid: str, supervisor_code: int) -> int:
    """After the supervisor of a foreground run ended (and was reaped): the pod's exit code.
    The pod's last cgroups — the supervisor's own group and the pod's, which it left to its
    owner rather than move out of them (:mod:`sandbox.pod.cgroups`) — are removed here. When
    the supervisor died before it tore the pod down (killed), the run that owns the pod
    collects it now — its processes are killed by cgroup, its network and cgroups removed — so
    no pod is left running with nobody to stop it."""
    state, d = find(uuid)
    if state in ("run", "prepared") and not _is_locked(d):
        why = (f"its supervisor ended with status {_exit_code(supervisor_code)} before it "
               "tore the pod down; `sandbox run` stopped the pod and cleaned up")
        if state == "run":
            _collect(d, why)
        else:
            _remove_cgroups_left(uuid)
        return _exit_code(supervisor_code) or 1
    _remove_cgroups_left(uuid)
    code = _read_json(d / "run.json").get("exitCode")
    return int(code) if code is not None else _exit_code(supervisor_code)


def _remove_cgroups_left(uuid: str) -> list[str]:
    """Remove the cgroups a pod whose supervisor has ended still has (what is in them is
    killed first: the caller owns the pod); returns the groups that are still there."""
    groups = pod_cgroups(uuid)
    return groups.remove() if groups is not None else []


def run_prepared(uuid: str, *, detach: bool = False, timeout: float = 60.0,
                 claim: cgroups.Claim | None = None, steps: Steps | None = None) -> Pod | int:
    """Start a prepared pod's supervisor. Detached: return the Pod once its apps started.
    Attached: this process owns the pod; wait for it to exit and return its exit code (an
    interrupt stops the pod first)."""
    from sandbox._sys import proc as _proc
    me = None
    if snapshotting(steps):            # a stepper asked: every stage tells its steps (journal)
        from sandbox.pod import journal
        _, pd = find(uuid)
        (pd / journal.FLAG).touch()
        me = journal.line("stage0", "start", "stage0 (this process)", note="it forks the supervisor")
    name, proc = start(uuid, attached=not detach, claim=claim, steps=steps)
    d = pods_dir() / "prepared" / name
    if not detach:
        try:
            code = proc.wait()
        except KeyboardInterrupt:        # e.g. a notebook's interrupt: the pod stops too
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            finish_attached(name, proc.returncode)
            raise
        code = finish_attached(name, code)
        if me is not None:
            _journal_steps(name, me, steps, timeout=0)
        return code
    deadline = time.monotonic() + timeout
    delay = 0.005                           # fast at first, then every 50 ms
    while time.monotonic() < deadline:
        run_dir = pods_dir() / "run" / d.name
        plan = _read_json(run_dir / "stage1.json")
        started = plan and all((run_dir / "apps" / a["name"] / "pid.json").exists()
                               or (run_dir / "apps" / a["name"] / "status.json").exists()
                               for a in plan["apps"])
        if (run_dir / "run.json").exists() and started:
            try:
                pod = Pod(d.name, "run", run_dir,
                          json.loads((run_dir / "pod-manifest.json").read_text()),
                          json.loads((run_dir / "run.json").read_text()), proc)
            except FileNotFoundError:   # it exited and moved on meanwhile: look again
                pass
            else:
                if me is not None:
                    _journal_steps(name, me, steps)
                return pod
        if proc.poll() is not None:
            # A short pod may have run and exited between two looks: it started if its apps
            # left a status (then it is an exited pod, not a failure to start).
            done = pods_dir() / "exited-garbage" / d.name
            plan = _read_json(done / "stage1.json")
            if plan and not _read_json(done / "run.json").get("error") and all(
                    (done / "apps" / a["name"] / "status.json").exists() for a in plan["apps"]):
                return Pod(d.name, "exited-garbage", done,
                           json.loads((done / "pod-manifest.json").read_text()),
                           _read_json(done / "run.json"), proc)
            raise PodError(f"the pod {d.name} failed to start: {failure(d.name)} "
                           "(see `sandbox status`).")
        _proc.wait_for(proc, delay)         # returns at once if the supervisor ends
        delay = min(delay * 1.5, 0.05)
    raise PodError(f"the pod {d.name} did not start within {timeout:.0f} s; `sandbox status "
                   f"{d.name[:8]}` shows how far it got, `sandbox stop {d.name[:8]}` ends it.")


def _journal_steps(uuid: str, me: dict[str, Any], steps: Any, timeout: float = 5.0) -> None:
    """Add the pod's journal (:mod:`sandbox.pod.journal`) to ``steps``, once every app's runner
    has told how it ended its start (exec) or the app has a status (``timeout`` at most):
    one step per line, each with the whole journal as its state (kind ``pod``)."""
    from sandbox.pod import journal
    deadline = time.monotonic() + timeout
    while True:
        state, d = find(uuid)
        lines = journal.read(d)
        plan = _read_json(d / "stage1.json")
        apps = [a["name"] for a in plan.get("apps", [])]
        told = {l["role"][4:] for l in lines if l["action"] == "exec" and l["role"].startswith("app ")}
        done = all(a in told or "exitCode" in _read_json(d / "apps" / a / "status.json")
                   for a in apps)
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    film = [me, *lines]
    for i, l in enumerate(film):
        detail = {k: v for k, v in l.get("detail", {}).items() if v is not None}
        steps.add(l["action"], l["what"], after={"kind": "pod", "journal": film, "i": i},
                  t=l["t"], role=l["role"], pid=l["pid"], namespaces=l["ns"], **detail)


def _tail(d: Path, name: str, n: int = 400) -> str:
    for state in STATES:
        p = pods_dir() / state / d.name / name
        if p.exists():
            return p.read_text(errors="replace")[-n:].strip() or "(no output)"
    return "(no log)"


def run(store: Any, images: list[str] | None = None, *, detach: bool = False,
        **kw: Any) -> Pod | int:
    """``sandbox run``: prepare, then run. The prepared pod records which process prepared it:
    if that process ends before the pod starts, ``gc`` removes it (nobody will run it)."""
    pod = prepare(store, images, _run_by=os.getpid(), **kw)
    return run_prepared(pod.uuid, detach=detach, steps=kw.get("steps"))


def default_network() -> dict[str, Any]:
    """``--net=default``: a bridge + host-local network the kit provides, living in the state
    directory's node netns (:func:`node_name`; its subnet never touches the real host)."""
    return {"cniVersion": "1.0.0", "name": DEFAULT_NET, "plugins": [
        {"type": "bridge", "bridge": f"{config.NAME_PREFIX}-br0", "isGateway": True,
         "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "subnet": DEFAULT_SUBNET,
                  "routes": [{"dst": "0.0.0.0/0"}]}}]}



# ---------------------------------------------------------------------------- inspect / control


def _read_json(p: Path) -> dict[str, Any]:
    """A pod's JSON state file as a dict; {} when it is missing, damaged or not an object (a
    broken pod is shown as far as it can be, never with a traceback)."""
    try:
        obj = json.loads(p.read_bytes())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _entries(obj: dict[str, Any], key: str, *needed: str) -> list[dict[str, Any]]:
    """The objects in the list ``obj[key]`` that have every ``needed`` key as a string, and
    whose "name", if needed, is one path component (it names a directory under apps/)."""
    items = obj.get(key)
    out = []
    for x in items if isinstance(items, list) else []:
        if isinstance(x, dict) and all(isinstance(x.get(k), str) for k in needed):
            if "name" in needed and (x["name"] in ("", ".", "..") or "/" in x["name"]):
                continue
            out.append(x)
    return out


def pod_cgroups(uuid: str) -> Any:
    """The pod's cgroups (None on a machine with no hierarchy that can track them)."""
    try:
        return cgroups.PodCgroups(uuid)
    except cgroups.CgroupError:
        return None


def _left_behind(pids: list[int], run: dict[str, Any]) -> list[int]:
    """The processes an exited pod's teardown left in its cgroups: not its supervisor, which
    ends in its own group once it has torn the pod down (its owner removes that group)."""
    from sandbox._sys import proc as _proc
    sup = run.get("supervisor")
    if sup in pids and _proc.alive(sup, run.get("supervisorStart")):
        return [p for p in pids if p != sup]
    return pids


def _error(state: str, plan: dict[str, Any], run: dict[str, Any]) -> str | None:
    """Why the pod failed (``status()["error"]``), from its plan and run.json."""
    if not plan and state in ("exited-garbage", "garbage") and "error" not in run:
        return "it has no plan: its prepare did not finish"
    return run.get("error")


def error(uuid: str) -> str | None:
    """``status(uuid)["error"]`` alone — what a foreground run prints on its way out, without
    the rest of a status (the pod's cgroups and processes: a look at the mount table and
    cgroupfs, ~1-2 ms of every `sandbox run`)."""
    state, d = find(uuid)
    return _error(state, _read_json(d / "plan.json"), _read_json(d / "run.json"))


def status(uuid: str) -> dict[str, Any]:
    """The pod's state, apps (state, exit code, times), networks, metadata URL and live
    processes (from its cgroup). While any process of the pod lives, its state never says
    exited."""
    state, d = find(uuid)
    plan = _read_json(d / "plan.json")
    run = _read_json(d / "run.json")
    error = _error(state, plan, run)
    groups = pod_cgroups(d.name)
    procs = groups.processes() if groups is not None else []
    shown = state
    if state == "run" and not _is_locked(d):
        shown = ("run (supervisor gone; `sandbox stop` or `sandbox gc` ends it)" if procs
                 else "exited (supervisor gone; run `sandbox gc`)")
    elif state in ("exited-garbage", "garbage") and _left_behind([p["pid"] for p in procs], run):
        left = _left_behind([p["pid"] for p in procs], run)
        shown = (f"stopping ({len(left)} process(es) left after the teardown; `sandbox gc` "
                 "kills them)")
    apps = []
    for a in _entries(plan, "apps", "name"):
        st = _read_json(d / "apps" / a["name"] / "status.json")
        pid = _read_json(d / "apps" / a["name"] / "pid.json")
        # an app with limits has a group of its own; else it is in stage1's: its runner's pid
        alive = any(p["group"] == f"apps/{a['name']}" or p["pid"] == pid.get("host_pid")
                    for p in procs)
        app_state = ("exited" if "exitCode" in st else "running" if alive or (state == "run" and pid)
                     else "prepared" if state == "prepared" else "not started")
        apps.append({"name": a["name"], "image": str(a.get("image", "?")),
                     "imageID": str(a.get("imageID", "?")),
                     "state": app_state, **({"exitCode": st["exitCode"]} if "exitCode" in st else {}),
                     **({"error": st["error"]} if "error" in st else {}),
                     **({"pid": pid.get("pod_pid")} if pid else {})})
    nets = []
    for n in _entries(run, "networks", "net"):
        res = n.get("result") if isinstance(n.get("result"), dict) else {}
        ips = [str(ip.get("address")) for ip in _entries(res, "ips", "address")]
        nets.append({"net": n["net"], "ifname": str(n.get("ifname", "?")), "ips": ips})
    return {"uuid": d.name, "state": shown, "apps": apps, "networks": nets,
            "netns": run.get("netns"), "metadataURL": run.get("metadataURL"),
            "exitCode": run.get("exitCode"), "error": error,
            "processes": procs, "cgroup": run.get("cgroup"),
            "created": plan.get("created"), "started": run.get("started"),
            "finished": run.get("finished")}


def stage1_plan(uuid: str) -> dict[str, Any]:
    """What stage0 hands to stage1 — ``stage1.json`` in the pod directory: every decision,
    resolved (the contract between them; a different stage1 would read the same file)."""
    _, d = find(uuid)
    plan = _read_json(d / "stage1.json")
    if not plan:
        raise PodError(f"pod {d.name} has no stage1 plan yet (it has not been started); "
                       f"{next_step(d.name, 'prepared')}")
    return plan


def list_pods() -> list[dict[str, Any]]:
    out = []
    for state in STATES:
        sd = pods_dir() / state
        if sd.is_dir():
            for d in sorted(sd.iterdir()):
                with contextlib.suppress(PodError):
                    out.append(status(d.name))
    return out


def _gone_from_run(uuid: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while (pods_dir() / "run" / uuid).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _supervisor(d: Path) -> int | None:
    """The pid of the pod's live supervisor, or None (checked against its recorded start time,
    so a recycled pid is never signalled)."""
    from sandbox._sys import proc as _proc
    run = _read_json(d / "run.json")
    pid, started = run.get("supervisor"), run.get("supervisorStart")
    if pid and _is_locked(d) and _proc.alive(pid, started):
        return int(pid)
    return None


def stop(uuid: str, *, timeout: float = 10.0, force: bool = False) -> dict[str, Any]:
    """Stop a running pod: SIGTERM to its supervisor, which forwards it to the pod (or, during
    set-up, abandons the set-up) and tears everything down; after ``timeout`` (at once with
    ``force``) every process of the pod is SIGKILLed by cgroup. A pod whose supervisor is gone
    is collected here: its processes killed by cgroup, its network and cgroups removed."""
    state, d = find(uuid)
    groups = pod_cgroups(d.name)
    if state != "run":
        if state in ("exited-garbage", "garbage") and groups is not None and \
                _left_behind(groups.pids(), _read_json(d / "run.json")):
            _collect(d, None)           # a teardown that left processes behind
            return status(d.name)
        raise PodError(f"pod {d.name} is not running ({state}); {next_step(d.name, state)}")
    sup = _supervisor(d)
    if sup is not None:
        if force and groups is not None:
            groups.kill_payload()
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
        if _gone_from_run(d.name, timeout):
            return status(d.name)
        if groups is not None:          # not within the timeout: kill the pod by cgroup
            groups.kill_payload()
        if _gone_from_run(d.name, 10):
            return status(d.name)
        sup = _supervisor(d)            # the supervisor itself hangs: it goes too
        if sup is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sup, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _is_locked(d) and time.monotonic() < deadline:
                time.sleep(0.02)
    state, d = find(d.name)
    if state == "run":
        _collect(d, "stopped after its supervisor was gone")
    return status(d.name)


def wait(uuid: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the pod has exited (its supervisor finished the teardown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, _ = find(uuid)
        if state in ("exited-garbage", "garbage"):
            return status(uuid)
        time.sleep(0.05)
    raise PodError(f"pod {uuid} is still running after {timeout:.0f} s; stop it with "
                   f"`sandbox stop {uuid}`.")


def logs(uuid: str, app: str | None = None) -> dict[str, dict[str, str]]:
    """Each app's kept stdout and stderr."""
    state, d = find(uuid)
    try:
        have = sorted(p.name for p in (d / "apps").iterdir() if p.is_dir())
    except OSError:     # NotADirectoryError, FileNotFoundError: a pod with no apps at all
        have = []
    if not have:
        why = _read_json(d / "run.json").get("error") or (
            "it never got as far as its apps" if state not in ("prepared", "run")
            else "its apps have not started yet")
        raise PodError(f"pod {d.name} has no app output to show: {str(why).rstrip('.')}; "
                       f"{next_step(d.name, state)}")
    names = [app] if app else have
    out = {}
    for n in names:
        ad = d / "apps" / n
        if n not in have:
            from sandbox.errors import did_you_mean
            raise PodError(f"pod {d.name} has no app '{n}'.{did_you_mean(n, have)} Its apps: "
                           f"{', '.join(have)}.")
        out[n] = {s: _read_text(ad / s) for s in ("stdout", "stderr")}
    return out


def _read_text(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""


def enter(uuid: str, app: str, argv: list[str], *, capture: bool = False,
          timeout: float | None = 60) -> subprocess.CompletedProcess:
    """Run ``argv`` inside a running app (its namespaces, root, user and working directory)."""
    state, d = find(uuid)
    if state != "run":
        raise PodError(f"pod {d.name} is not running ({state}), and only a running pod can be "
                       f"entered; {next_step(d.name, state)}")
    names = [a["name"] for a in _entries(_read_json(d / "stage1.json"), "apps", "name")]
    if not names:
        raise PodError(f"pod {d.name} has no apps running to enter (it has no stage1 plan: its "
                       f"start did not get that far); `sandbox stop {d.name[:8]}` ends it.")
    if app not in names:
        from sandbox.errors import did_you_mean
        raise PodError(f"pod {d.name} has no app '{app}'.{did_you_mean(app, names)} Give --app "
                       f"one of: {', '.join(names)}.")
    if not argv:
        raise PodError("give a command to run, e.g. `sandbox enter UUID --app NAME -- /bin/sh -c id`.")
    import subprocess
    return subprocess.run([sys.executable, "-m", "sandbox.pod.stage1", "enter", str(d), app, "--", *argv],
                          capture_output=capture, text=True, timeout=timeout,
                          stdin=None if not capture else subprocess.DEVNULL)


def remove(uuid: str) -> str:
    """Remove an exited (or prepared) pod and everything under its directory."""
    state, d = find(uuid)
    if state == "run" and _is_locked(d):
        raise PodError(f"pod {d.name} is running; stop it first (`sandbox stop {d.name}`).")
    if state in ("embryo", "prepare") and _is_locked(d):
        raise PodError(f"pod {d.name} is being prepared; try again in a moment.")
    _cleanup_leftovers(d)
    mountinfo.umount_below(d, include_root=False)
    import shutil
    shutil.rmtree(d)
    return d.name


def _collect(d: Path, why: str | None) -> list[str]:
    """Tear down a pod whose supervisor is gone (``d`` in run/, unlocked, or an exited pod whose
    teardown was incomplete): kill its processes by cgroup, undo its network and cgroups, and
    move it to exited-garbage. Holds the pod's lock meanwhile (two collectors never race)."""
    try:
        with _locked(d, blocking=False):
            done = _cleanup_leftovers(d)
            run = _read_json(d / "run.json")
            if why and "error" not in run:
                run["error"] = why
            run.setdefault("finished", time.time())
            run["collected"] = True
            write_json(d / "run.json", run)
            if d.parent.name == "run":
                _move(d, "exited-garbage")
            return done
    except (BlockingIOError, FileNotFoundError):    # another process collects it right now
        return []


def _cleanup_leftovers(d: Path) -> list[str]:
    """What a dead supervisor (or an interrupted teardown) may have left for this pod, undone
    in the supervisor's order: first every process of the pod, killed by cgroup (CNI plugins
    it was running included), then every network attachment it recorded or libcni cached (CNI
    DEL; also an ADD that a crash cut short), its netns, its cgroups."""
    from sandbox.net import netns
    from sandbox.net.cni import Cache, NetworkConfig, Runtime
    from sandbox.net.plugins import plugin_dir
    uuid = d.name
    done = []
    groups = pod_cgroups(uuid)
    if groups is not None:
        pids = groups.pids()
        if pids:
            groups.kill_all()
            done.append(f"killed {len(pids)} process(es) by cgroup")
    state = config.sandbox_dir()
    cache = Cache(state / "cni")
    run = _read_json(d / "run.json")
    plan = _read_json(d / "plan.json")
    todo: dict[tuple[str, str], bytes] = {}
    for n in [] if run.get("tornDown") or run.get("collected") else \
            _entries(run, "networks", "net", "ifname", "config"):
        todo[(n["net"], n["ifname"])] = n["config"].encode()
    for a in cache.attachments(container_id=uuid):
        todo.setdefault((a.network, a.ifname), a.config)
    if todo:
        node = node_name(state)
        made_node = not netns.exists(node)
        netns.node_ensure(node)         # DEL in the node (never in the host's netns)
        cni = plan.get("cniPath") if isinstance(plan.get("cniPath"), str) else None
        rt = Runtime(conf_dir=state / "net.d", cni_path=cni or str(plugin_dir()),
                     cache_dir=state / "cni", node=node, plugin_state_dir=state / "cni")
        for (net, ifname), conf in sorted(todo.items()):
            try:
                rt.delete(NetworkConfig.from_bytes(conf), None, container_id=uuid, ifname=ifname)
                done.append(f"CNI DEL {net} {ifname}")
            except Exception as e:  # noqa: BLE001
                cache.delete(net, uuid, ifname)
                done.append(f"CNI cache entry {net} {ifname} dropped ({e})")
        if made_node:                   # made only for these DELs: gone again unless in use
            done += drop_idle_netns()
    # a supervisor killed between writing a cache entry and renaming it into place
    done += [f"CNI cache partial entry {n}" for n in cache.drop_partial(uuid)]
    if netns.exists(netns_name(uuid)) or netns.path_of(netns_name(uuid)).exists():
        netns.delete(netns_name(uuid), missing_ok=True)
        done.append(f"netns {netns_name(uuid)}")
    if groups is not None and groups.dirs():
        left = groups.remove()
        done.append("cgroups" + (f" (still busy: {', '.join(left)})" if left else ""))
    return done


def _minutes(seconds: float) -> str:
    m = max(0, round(seconds / 60))
    return "under a minute" if m == 0 else f"{m} min"


def gc(*, grace: float = GC_GRACE_SECONDS, steps: Steps | None = None,
       kept: list[str] | None = None) -> list[str]:
    """``sandbox gc``: collect pods whose supervisor died (their processes killed by cgroup,
    their network, netns and cgroups undone), prepared pods whose ``sandbox run`` ended before
    starting them, failed prepares, exited pods older than ``grace`` seconds and every leftover;
    remove the state directory's node netns when none of its pods runs. Returns what it did;
    ``kept``, when given, gets one line per pod it left alone and why (rkt's gc keeps exited
    pods for a grace period, 30 min by default, so that status and logs still show them)."""
    from sandbox._sys import proc as _proc
    done = []
    kept = kept if kept is not None else []
    now = time.time()
    for state in STATES:
        sd = pods_dir() / state
        if not sd.is_dir():
            continue
        for d in sorted(sd.iterdir()):
            if _is_locked(d):           # being prepared or running: not ours to touch
                kept.append(f"pod {d.name[:8]}: " + (
                    f"running, kept; `sandbox stop {d.name[:8]}` stops it." if state == "run"
                    else f"in use ({state}), kept."))
                continue
            try:
                age = now - d.stat().st_mtime
            except FileNotFoundError:
                continue
            state_now = state
            if state == "run":
                for what in _collect(d, "its supervisor ended before it tore the pod down; "
                                        "collected by `sandbox gc`"):
                    done.append(f"pod {d.name}: {what}")
                d = pods_dir() / "exited-garbage" / d.name
                if not d.exists():
                    continue
                done.append(f"pod {d.name}: supervisor gone, moved to exited-garbage")
                state_now = "exited-garbage"
            elif state == "prepared":
                by = _read_json(d / "plan.json").get("runBy")
                if not (by and not _proc.alive(by.get("pid"), by.get("start"))):
                    groups = pod_cgroups(d.name)
                    if groups is not None and groups.dirs() and not groups.pids():
                        groups.remove()         # a supervisor died starting it
                        done.append(f"pod {d.name}: cgroups of a failed start removed")
                    kept.append(f"pod {d.name[:8]}: prepared, kept; {next_step(d.name, state)}")
                    continue
                state_now = "garbage"   # its `sandbox run` ended before it started the pod
            elif state == "exited-garbage":
                run = _read_json(d / "run.json")
                if not (run.get("tornDown") or run.get("collected")):
                    for what in _collect(d, None):   # an interrupted teardown: finish it
                        done.append(f"pod {d.name}: {what}")
                else:   # its owner (`sandbox run`) ended before it removed the last groups
                    groups = pod_cgroups(d.name)
                    if groups is not None and groups.dirs() and not groups.pids():
                        groups.remove()
                        done.append(f"pod {d.name}: its last (empty) cgroups removed")
            if state_now == "garbage" or (state_now == "exited-garbage" and age >= grace) \
                    or state_now in ("embryo", "prepare"):
                for what in _cleanup_leftovers(d):
                    done.append(f"pod {d.name}: {what}")
                mountinfo.umount_below(d, include_root=False)
                import shutil
                shutil.rmtree(d, ignore_errors=True)
                done.append(f"pod {d.name}: removed ({state_now})")
                record(steps, "remove", str(d), state=state_now)
            elif state_now == "exited-garbage":
                kept.append(f"pod {d.name[:8]}: exited {_minutes(age)} ago, kept for the grace "
                            f"period ({_minutes(grace - age)} more, so that `sandbox status` and "
                            f"`sandbox logs` still show it); `sandbox rm {d.name[:8]}` or "
                            "`sandbox gc --grace 0` removes it now.")
    return done + drop_idle_netns()


def drop_idle_netns() -> list[str]:
    """Remove the netns of this state dir's pods that no longer run, and the node netns when no
    pod netns at all is left on the machine (the end of ``gc``; also what a notebook calls after
    removing the one pod it ran)."""
    from sandbox.net import netns
    done = []
    # Netns names are machine-wide but pods belong to a state dir: judge only this state dir's
    # pods (another $SANDBOX_DIR may be running its own), and drop this state dir's node netns
    # once none of its pods runs.
    prefix = f"{config.NAME_PREFIX}-p-"
    ours = {}
    for state in STATES:
        sd = pods_dir() / state
        for d in (sd.iterdir() if sd.is_dir() else []):
            ours[d.name[:8]] = state in ("run", "prepared") and _is_locked(d)
    for name in netns.list():
        if name.startswith(prefix) and ours.get(name[len(prefix):]) is False:
            netns.delete(name, missing_ok=True)
            done.append(f"netns {name}: its pod is not running, removed")
    node = node_name()
    if netns.path_of(node).exists() and not any(ours.values()):   # a stale handle goes too
        netns.delete(node, missing_ok=True)
        done.append(f"node netns {node}: no pod uses it, removed")
    return done
