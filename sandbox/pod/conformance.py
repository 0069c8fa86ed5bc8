"""ACE conformance: appc's own validator, run as a pod by this kit's runtime (ace.md, appc.md §6).

appc ships ``ace-validator`` (Go, package ``github.com/appc/spec/ace``; Debian builds it offline,
see provision/build-tools.sh). It is meant to run *inside* an App Container Executor and checks
the app's perspective of the execution environment:

* ``prestart`` (the main app's pre-start handler) creates ``/prestart`` and checks that ``/main``
  and ``/poststop`` do not exist yet — handlers run in the app's rootfs, in order;
* ``main`` checks ``/prestart`` exists, PATH, the working directory (``/opt/acvalidator``), the
  image's environment (``IN_ACE_VALIDATOR=correct``), that ``/db`` is a read-write mount point,
  ``AC_APP_NAME``, the whole metadata service (pod manifest, annotations, UUID, each app's image
  manifest/ID/annotations, HMAC sign + verify), and meets the sidekick through the shared
  volume (``/db/main`` ↔ ``/db/sidekick``, 5 s each way);
* ``poststop`` (post-stop handler) checks ``/prestart`` and ``/main`` exist and creates
  ``/poststop``;
* ``sidekick`` (a second app) creates ``/db/sidekick`` and waits for ``/db/main``.

Each prints ``<mode> OK`` or ``<mode> FAIL`` followed by ``==> reason`` lines on stderr, and exits
0 or 1. The validator writes to ``/``: it must only ever run inside a pod's rootfs, never on the
host — this module only ever starts it through :mod:`sandbox.pod.stage0`.

Upstream wraps the binary in two images (main + sidekick) built by a shell script Debian does not
ship; :func:`build_images` writes our own equivalents from what the Go source expects.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import config
from sandbox.errors import SandboxError
from sandbox.image import aci
from sandbox.steps import Steps, record

SPEC_VERSION = "0.8.11"                  # golang-github-appc-spec-dev's appc version
MAIN = "ace-validator-main"              # validator.go: AC_APP_NAME must be exactly this
SIDEKICK = "ace-validator-sidekick"
IMAGE_PREFIX = "example.com/"            # the lab's domain for images it builds itself
WORKING_DIRECTORY = "/opt/acvalidator"   # validator.go: workingDirectory
VOLUME, VOLUME_PATH = "database", "/db"  # validator.go: mountPoint "database" at /db, rw
MODES = ("prestart", "main", "poststop", "sidekick")


class ConformanceError(SandboxError):
    """The conformance pod cannot be built or run."""


def validator_binary() -> Path:
    """The ace-validator provision/build-tools.sh built (offline, from Debian's Go sources)."""
    p = config.tool_path("ace-validator")
    if p is None:
        raise ConformanceError("appc's ace-validator is not built.",
                               hint="Run `bash provision/build-tools.sh` (needs Debian's "
                                    "golang-go and golang-github-appc-spec-dev).")
    return p


def image_manifest(kind: str, arch: str) -> dict[str, Any]:
    """Our ImageManifest for the ``main`` or ``sidekick`` image, written from what
    validator.go checks (ace.md's app section: exec, eventHandlers, workingDirectory,
    environment, mountPoints, ports)."""
    mount = [{"name": VOLUME, "path": VOLUME_PATH, "readOnly": False}]
    labels = [{"name": "version", "value": SPEC_VERSION}, {"name": "os", "value": "linux"},
              {"name": "arch", "value": arch}]
    if kind == "sidekick":
        return {"acKind": "ImageManifest", "acVersion": SPEC_VERSION,
                "name": IMAGE_PREFIX + SIDEKICK, "labels": labels,
                "app": {"exec": ["/ace-validator", "sidekick"], "user": "0", "group": "0",
                        "mountPoints": mount}}
    return {
        "acKind": "ImageManifest", "acVersion": SPEC_VERSION, "name": IMAGE_PREFIX + MAIN,
        "labels": labels,
        "app": {
            "exec": ["/ace-validator", "main"],
            "eventHandlers": [{"name": "pre-start", "exec": ["/ace-validator", "prestart"]},
                              {"name": "post-stop", "exec": ["/ace-validator", "poststop"]}],
            "user": "0", "group": "0",
            "workingDirectory": WORKING_DIRECTORY,
            "environment": [{"name": "IN_ACE_VALIDATOR", "value": "correct"}],
            "mountPoints": mount,
            "ports": [{"name": "www", "protocol": "tcp", "port": 80}],
            "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}],
        },
        # The validator compares /apps/NAME/annotations with these merged with the pod's.
        "annotations": [{"name": "created", "value": "2016-04-01T00:00:00Z"},
                        {"name": "homepage", "value": "https://github.com/appc/spec"},
                        {"name": "lorem", "value": "image"}],
    }


def build_images(store: Any, *, work_dir: str | os.PathLike[str] | None = None,
                 steps: Steps | None = None) -> dict[str, Any]:
    """Build the ``main`` and ``sidekick`` images (the validator, its loader and libraries, an
    empty working directory) and import them into ``store``; returns {kind: Image}."""
    from sandbox._sys import platform
    from sandbox.image.catalog import shared_libraries
    binary = validator_binary()
    libs = [Path(asked) for asked, _ in shared_libraries(binary, steps)]
    arch = platform.host().appc
    tmp = Path(tempfile.mkdtemp(prefix="sbx-ace-", dir=work_dir))
    out: dict[str, Any] = {}
    try:
        for kind in ("main", "sidekick"):
            layout = tmp / kind
            rootfs = layout / "rootfs"
            (rootfs / WORKING_DIRECTORY.lstrip("/")).mkdir(parents=True)
            shutil.copy2(binary, rootfs / "ace-validator")
            for lib in libs:   # the real file behind each path ldd printed, at that path
                dst = rootfs / str(lib).lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(lib), dst)
            (layout / "manifest").write_text(json.dumps(image_manifest(kind, arch), indent=2))
            for p in [layout, *layout.rglob("*")]:    # fixed times: the same binary, the same ID
                os.utime(p, (1459468800, 1459468800), follow_symlinks=False)
            aci_path = tmp / f"ace-validator-{kind}.aci"
            aci.build(layout, aci_path, owner_root=True, steps=steps)
            out[kind] = store.import_aci(aci_path, steps=steps)
            record(steps, "write", out[kind].name, id=aci.short_id(out[kind].id), libs=len(libs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def pod_manifest(images: dict[str, Any]) -> dict[str, Any]:
    """The runtime PodManifest (pods.md): both apps share the ``database`` empty volume on /db.
    Pod and app annotations are set so the validator's metadata checks compare real data
    (``lorem`` overrides the image's value: the pod wins)."""
    def app(name: str, img: Any, annotations: list[dict[str, str]]) -> dict[str, Any]:
        return {"name": name,
                "image": {"id": img.id, "name": img.name,
                          "labels": [{"name": k, "value": v} for k, v in img.labels.items()]},
                "mounts": [{"volume": VOLUME, "path": VOLUME_PATH}],
                "annotations": annotations}
    return {"acKind": "PodManifest", "acVersion": SPEC_VERSION,
            "apps": [app(MAIN, images["main"], [{"name": "lorem", "value": "pod"}]),
                     app(SIDEKICK, images["sidekick"], [])],
            "volumes": [{"name": VOLUME, "kind": "empty", "readOnly": False}],
            "annotations": [{"name": "ace-validator", "value": "sandbox"}]}


@dataclass
class Check:
    """One validator mode's verdict, as it printed it and as its exit code says."""
    mode: str
    exit_code: int | None
    verdict: str | None           # "OK" / "FAIL" / None (never ran)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.verdict == "OK"


@dataclass
class Result:
    uuid: str
    pod_exit_code: int | None
    checks: dict[str, Check]
    logs: dict[str, dict[str, str]]
    status: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.pod_exit_code == 0 and all(c.ok for c in self.checks.values())

    def __str__(self) -> str:
        lines = [f"ACE validator in pod {self.uuid}: {'PASS' if self.passed else 'FAIL'}"]
        for c in self.checks.values():
            lines.append(f"  {c.mode:9} {c.verdict or 'did not run':12} exit={c.exit_code}")
            lines += [f"      ==> {r}" for r in c.reasons]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{c.mode}</td><td style='color:{'green' if c.ok else 'red'}'>"
            f"{html.escape(c.verdict or 'did not run')}</td><td>{c.exit_code}</td>"
            f"<td>{'<br>'.join(html.escape(r) for r in c.reasons)}</td></tr>"
            for c in self.checks.values())
        return (f"<div><b>ACE validator: {'PASS' if self.passed else 'FAIL'}</b> (pod "
                f"{self.uuid})<table><tr><th>mode</th><th>verdict</th><th>exit</th>"
                f"<th>reasons</th></tr>{rows}</table></div>")


def _verdicts(text: str) -> dict[str, str]:
    """``main OK`` / ``prestart FAIL`` lines (validator.go prints mode as given on its argv)."""
    found = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+) (OK|FAIL)", line.strip())
        if m and m.group(1).lower() in MODES:
            found[m.group(1).lower()] = m.group(2)
    return found


def _reasons(text: str) -> list[str]:
    return [line[4:] for line in text.splitlines() if line.startswith("==> ")]


def read_result(uuid: str) -> Result:
    """The verdicts of a finished conformance pod, from its app statuses and logs."""
    from sandbox.pod import stage0 as pod
    st = pod.status(uuid)
    logs = pod.logs(uuid)
    _, d = pod.find(uuid)
    raw = {a: json.loads((d / "apps" / a / "status.json").read_text())
           if (d / "apps" / a / "status.json").exists() else {} for a in (MAIN, SIDEKICK)}
    checks = {}
    for mode, app, key in (("prestart", MAIN, "preStart"), ("main", MAIN, "exitCode"),
                           ("poststop", MAIN, "postStop"), ("sidekick", SIDEKICK, "exitCode")):
        out = logs.get(app, {}).get("stdout", "")
        code = raw[app].get(key)
        verdict = _verdicts(out).get(mode)
        checks[mode] = Check(mode, code, verdict)
    for app in (MAIN, SIDEKICK):
        err = logs.get(app, {}).get("stderr", "")
        # prestart, main and poststop share the main app's stderr; their "==>" lines go to the
        # first mode of that app that failed.
        failed = [m for m in (("sidekick",) if app == SIDEKICK else ("prestart", "main", "poststop"))
                  if not checks[m].ok]
        if failed:
            checks[failed[0]].reasons = _reasons(err) + [      # and the runtime's own complaints
                line for line in err.splitlines() if line.startswith("stage1:")]
    return Result(uuid, st.get("exitCode"), checks, logs, st)


def run(store: Any | None = None, *, manifest: dict[str, Any] | None = None,
        net: list[str] | None = None, keep: bool = False, timeout: float = 30.0,
        steps: Steps | None = None) -> Result:
    """Build the two images, run them as one pod with :mod:`sandbox.pod.stage0` (``manifest``: another
    PodManifest for them, e.g. to see the validator fail), and return the validator's verdicts.
    The pod is removed afterwards unless ``keep``."""
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    store = store or Store()
    if manifest is None:
        manifest = pod_manifest(build_images(store, steps=steps))
    p = pod.prepare(store, pod_manifest=manifest, net=net or ["default"], steps=steps)
    try:
        pod.run_prepared(p.uuid, steps=steps)          # attached: returns when the pod exited
        pod.wait(p.uuid, timeout=timeout)
        return read_result(p.uuid)
    finally:
        try:
            if pod.find(p.uuid)[0] == "run":
                pod.stop(p.uuid, timeout=5)
        finally:
            if not keep:
                pod.remove(p.uuid)
                record(steps, "remove", p.uuid)
