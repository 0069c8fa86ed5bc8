"""Workshop labs: discovery, a workspace per lab, checks with hints, and reset.

A lab is a folder ``labs/NN-slug/`` holding ``lab.ipynb`` (the student notebook: cells tagged
``todo`` hold the exercise) and ``solution/lab.ipynb`` (the same notebook with those cells
filled in and tagged ``solution``). Cells tagged ``check`` call :func:`check`; the last cells,
tagged ``cleanup``, call :func:`reset`.

Checks follow the iximiuz labs split (../shared/reference/teaching.md §3.3):

* a *check* decides pass/fail; when it fails, its hint is computed from the live state (files
  in the workspace, kernel objects, the pod) — "the veth exists but is DOWN inside the netns";
* an *advice* never fails, it only adds a hint;
* a *failcheck* detects a state the lab cannot recover from and says what to run
  (``sandbox lab reset N``).

Everything a lab makes is recorded in its workspace ``$SANDBOX_DIR/labs/NN/`` (files, the
answers the learner gives with :meth:`Workspace.answer`, the kernel names it was handed with
:meth:`Workspace.name`), so ``sandbox lab check N`` in a shell reads the same state the notebook
left, and ``sandbox lab reset N`` removes it all. Every kernel name carries the kit's ``sbx``
prefix.
"""
from __future__ import annotations

import builtins
import gzip
import hashlib
import html
import ipaddress
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sandbox import config
from sandbox.errors import SandboxError


class LabError(SandboxError):
    """A lab cannot be found or used."""


class CheckFailed(SandboxError):
    """A lab's checks did not pass; the message lists the hints."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the report above already said what failed
        return [f"\x1b[31mCheckFailed\x1b[0m: {self}"]


# ---------------------------------------------------------------------------------------------
# Discovery

def labs_dir() -> Path:
    return config.project_root() / "labs"


@dataclass(frozen=True)
class Lab:
    number: int
    slug: str
    title: str
    path: Path

    @property
    def student(self) -> Path:
        return self.path / "lab.ipynb"

    @property
    def solution(self) -> Path:
        return self.path / "solution" / "lab.ipynb"


def _title(nb_path: Path) -> str:
    try:
        nb = json.loads(nb_path.read_text())
    except (OSError, ValueError):
        return nb_path.parent.name
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            src = "".join(cell.get("source", ""))
            for line in src.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return nb_path.parent.name


def discover(root: Path | None = None) -> list[Lab]:
    """Every ``labs/NN-slug/`` with a ``lab.ipynb``, in number order."""
    root = root or labs_dir()
    out = []
    for d in sorted(root.glob("[0-9][0-9]-*")):
        if (d / "lab.ipynb").is_file():
            n, slug = d.name.split("-", 1)
            out.append(Lab(int(n), slug, _title(d / "lab.ipynb"), d))
    return out


def get(number: int | str) -> Lab:
    """The lab numbered ``number`` (``4``, ``"04"`` or its folder name)."""
    for lab in discover():
        if str(number) in (str(lab.number), f"{lab.number:02d}", lab.path.name):
            return lab
    known = ", ".join(str(l.number) for l in discover()) or "none"
    raise LabError(f"There is no lab {number}; the labs are: {known} (see `sandbox lab list`).")


# ---------------------------------------------------------------------------------------------
# Workspace

class Workspace:
    """``$SANDBOX_DIR/labs/NN``: the lab's files, answers and kernel names."""

    def __init__(self, number: int, create: bool = True) -> None:
        self.number = number
        self.path = config.sandbox_dir() / "labs" / f"{number:02d}"
        if create:
            self.path.mkdir(parents=True, exist_ok=True)

    def exists(self) -> bool:
        return self.path.is_dir()

    # answers: what the learner computed or predicted, with the time it was given
    def _read(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=str))
        tmp.replace(self.path / name)

    def answer(self, key: str, value: Any) -> Any:
        """Record the learner's answer ``key`` (the checks read it; so does ``sandbox lab check``)."""
        if isinstance(value, (set, frozenset)):
            value = sorted(value)
        data = self._read("answers.json")
        old = data.get(key, {})
        history = old.get("history", []) + ([old["value"]] if old.get("value") is not None else [])
        data[key] = {"value": value, "time": time.time(), "history": history}
        self._write("answers.json", data)
        return value

    def answers(self) -> dict[str, Any]:
        return {k: v["value"] for k, v in self._read("answers.json").items()}

    def history(self, key: str) -> list[Any]:
        """Every value ``key`` was given, oldest first (the current one last)."""
        e = self._read("answers.json").get(key, {})
        return e.get("history", []) + ([e["value"]] if "value" in e else [])

    def answered_at(self, key: str) -> float | None:
        return self._read("answers.json").get(key, {}).get("time")

    def name(self, tag: str) -> str:
        """A kernel object name for this lab (``sbx-l4-1a2b3c-a``), the same on every call."""
        names = self._read("names.json")
        if tag not in names:
            names[tag] = f"{config.NAME_PREFIX}-l{self.number}-{secrets.token_hex(3)}-{tag}"
            self._write("names.json", names)
        return names[tag]

    def names(self) -> dict[str, str]:
        return self._read("names.json")

    def __repr__(self) -> str:
        return f"Workspace(lab {self.number}: {self.path})"


def workspace(number: int) -> Workspace:
    """The workspace of lab ``number`` (created if needed)."""
    return Workspace(number)


# ---------------------------------------------------------------------------------------------
# Results

@dataclass
class Result:
    name: str
    ok: bool
    hint: str = ""
    kind: str = "check"        # check | advice | failcheck

    def line(self) -> str:
        mark = {"check": "✓" if self.ok else "✗", "advice": "i",
                "failcheck": "!" if not self.ok else "✓"}[self.kind]
        text = f"{mark} {self.name}"
        if self.hint and (not self.ok or self.kind == "advice"):
            text += f"\n    hint: {self.hint}"
        return text


@dataclass(repr=False)
class Report:
    lab: int
    results: list[Result] = field(default_factory=list)

    @property
    def unrecoverable(self) -> list[Result]:
        return [r for r in self.results if r.kind == "failcheck" and not r.ok]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.kind != "advice" and not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def hints(self) -> list[str]:
        return [r.hint for r in self.failed if r.hint]

    def __str__(self) -> str:
        head = f"lab {self.lab}: " + ("all checks pass" if self.ok else
                                      f"{len(self.failed)} of "
                                      f"{sum(r.kind != 'advice' for r in self.results)} checks fail")
        if self.unrecoverable:
            head += f" — the state cannot be recovered: run `sandbox lab reset {self.lab}` and start again"
        return "\n".join([head, *(r.line() for r in self.results)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for r in self.results:
            colour = "#009E73" if r.ok and r.kind != "advice" else (
                "#0072B2" if r.kind == "advice" else "#D55E00")
            mark = html.escape(r.line().split("\n")[0][0])
            hint = f"<br><small>hint: {html.escape(r.hint)}</small>" if r.hint and (
                not r.ok or r.kind == "advice") else ""
            rows.append(f"<tr><td style='color:{colour};font-weight:bold'>{mark}</td>"
                        f"<td>{html.escape(r.name)}{hint}</td></tr>")
        title = html.escape(str(self).split("\n")[0])
        return f"<div class='sandbox-lab-report'><b>{title}</b><table>{''.join(rows)}</table></div>"


Check = Callable[[Workspace], Iterable[Result]]
_CHECKS: dict[int, Check] = {}
_RESETS: dict[int, Callable[[Workspace], list[str]]] = {}


def _lab_checks(n: int) -> Callable[[Check], Check]:
    def deco(fn: Check) -> Check:
        _CHECKS[n] = fn
        return fn
    return deco


def _lab_reset(n: int):
    def deco(fn):
        _RESETS[n] = fn
        return fn
    return deco


def run_checks(number: int) -> Report:
    """Run lab ``number``'s checks against the live state; never raises for a failing check."""
    lab = get(number)
    ws = Workspace(lab.number, create=False)
    report = Report(lab.number)
    if not ws.exists():
        report.results.append(Result(
            "the lab's workspace exists", False,
            f"there is no {ws.path}: run the lab's first cells (or was SANDBOX_DIR different "
            f"when the lab ran? it is {config.sandbox_dir()} here)"))
        return report
    fn = _CHECKS.get(lab.number)
    if fn is None:
        raise LabError(f"Lab {lab.number} has no checks.")
    try:
        for r in fn(ws):
            report.results.append(r)
            if r.kind == "check" and not r.ok and getattr(r, "stop", False):
                break
    except PermissionError as e:
        raise LabError(f"Checking lab {lab.number} needs root (it reads namespaces, pods and "
                       f"kernel state): run it as root ({e.strerror}: {e.filename}).") from e
    return report


def check(number: int) -> Report:
    """The check cell: show the report; raise :class:`CheckFailed` (with the hints) if it fails."""
    report = run_checks(number)
    if report.ok:
        return report          # shown as the cell's result
    try:  # show the table in a notebook; plain text elsewhere
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display(report)
        else:
            print(report)
    except ImportError:
        print(report)
    if not report.ok:
        raise CheckFailed(f"Lab {number}: not done yet. " + " ".join(
            f"hint: {h}" for h in report.hints()))
    return report


def reset(number: int) -> list[str]:
    """Remove everything lab ``number`` made (kernel objects, pods, files). Idempotent."""
    lab = get(number)
    ws = Workspace(lab.number, create=False)
    done: list[str] = []
    if ws.exists():
        fn = _RESETS.get(lab.number)
        if fn is not None:
            done += fn(ws)
        _umount_below(ws.path)
        shutil.rmtree(ws.path, ignore_errors=True)
        done.append(f"removed {ws.path}")
    return done


def _umount_below(path: Path) -> None:
    from sandbox import _linux
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    p = str(path)
    for m in sorted((m for m in points if m == p or m.startswith(p + "/")), key=len, reverse=True):
        try:
            _linux.umount(m, _linux.MNT_DETACH)
        except Exception:  # noqa: BLE001 - best effort, rmtree reports the rest
            pass


def _stop(msg: str, ok: bool, hint: str = "") -> Result:
    """A check whose failure makes the later checks meaningless (they are not run)."""
    r = Result(msg, ok, hint)
    r.stop = True  # type: ignore[attr-defined]
    return r


# ---------------------------------------------------------------------------------------------
# Lab 1: build your first ACI and compute its image ID by hand

@_lab_checks(1)
def _checks_1(ws: Workspace) -> Iterable[Result]:
    from sandbox import aci
    layout, out = ws.path / "hello", ws.path / "hello.aci"
    if not (layout / "manifest").is_file():
        yield _stop("the layout has a manifest", False,
                    f"{layout}/manifest does not exist yet: write the manifest JSON there")
        return
    problems = aci.validate_layout(layout)
    yield _stop("the layout's manifest is valid", not problems,
                "the manifest is not valid yet: " + "; ".join(problems[:3])
                + " (an ImageManifest needs acKind, acVersion and a name like example.com/hello)")
    if problems:
        return
    if not out.is_file():
        yield _stop("hello.aci is built", False,
                    f"{out} does not exist yet: build it with aci.build(layout, ws.path / 'hello.aci')")
        return
    problems = aci.validate(out)
    yield _stop("hello.aci is a valid ACI", not problems, "; ".join(problems[:3]))
    if problems:
        return
    real = aci.image_id(out)
    mine = ws.answers().get("image_id")
    if not mine:
        yield Result("your hand-computed image ID is recorded", False,
                     "no ID recorded yet: hash the uncompressed tar with hashlib.sha512 and give "
                     "it with ws.answer('image_id', 'sha512-' + hexdigest)")
        return
    raw = "sha512-" + hashlib.sha512(out.read_bytes()).hexdigest()
    hint = ""
    if mine != real:
        if mine in (raw, raw[len("sha512-"):]) and raw != real:
            hint = ("you hashed the file as it is on disk (gzip-compressed); the image ID is the "
                    "SHA-512 of the *uncompressed* tar — open it with gzip.open")
        elif not str(mine).startswith("sha512-"):
            hint = "an image ID is written 'sha512-' followed by 128 lowercase hex digits"
        else:
            hint = f"your ID {str(mine)[:23]}… differs from the archive's {real[:23]}…"
    yield Result("your hand-computed image ID equals sandbox.aci.image_id", mine == real, hint)


# ---------------------------------------------------------------------------------------------
# Lab 2: sign, trust a prefix, watch a tampered copy be refused

LAB2_IMAGE = "example.com/hello"


def lab2_image(ws: Workspace) -> Path:
    """Build the image to sign: ``example.com/hello`` as an *uncompressed* ACI (so one byte of
    hello.txt can be changed without breaking the archive)."""
    from sandbox import aci
    layout = ws.path / "hello"
    (layout / "rootfs").mkdir(parents=True, exist_ok=True)
    (layout / "rootfs" / "hello.txt").write_text("Hello, world!\n")
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": LAB2_IMAGE,
        "labels": [{"name": "version", "value": "1.0.0"}]}, indent=2))
    out = ws.path / "hello.aci"
    aci.build(layout, out, compression="none", overwrite=True)
    return out


def trust_store(ws: Workspace):
    """The lab's own trust store (``trustedkeys`` in the workspace, no system keys)."""
    from sandbox.trust import TrustStore
    return TrustStore(root=ws.path / "trustedkeys", system_root=ws.path / "no-system-keys")


def verdict(store: Any, aci_path: str | os.PathLike[str]) -> str:
    """Verify an image against a trust store and say what happened, never raising."""
    try:
        v = store.verify_image(aci_path)
    except SandboxError as e:
        return f"REFUSED ({type(e).__name__}): {e}"
    except OSError as e:
        return f"REFUSED: {e}"
    return (f"ACCEPTED: {Path(aci_path).name} is signed by {', '.join(v.uids) or '?'} "
            f"(key {v.primary_fingerprint}), trusted for its name")


@_lab_checks(2)
def _checks_2(ws: Workspace) -> Iterable[Result]:
    from sandbox import pgp
    from sandbox.trust import signature_path_for
    img = ws.path / "hello.aci"
    sig = signature_path_for(img)
    if not img.is_file():
        yield _stop("hello.aci exists", False, "run the setup cell (labs.lab2_image(ws))")
        return
    yield _stop("hello.aci has a signature next to it", sig.is_file(),
                f"no {sig.name} yet: sign with pgp.sign(aci_path, alice) and write the bytes to "
                "trust.signature_path_for(aci_path)")
    if not sig.is_file():
        return
    store = trust_store(ws)
    keys = store.list()
    root_keys = [k for k in keys if k.scope == "root" and not k.masked]
    prefixed = [k for k in keys if k.scope == "prefix" and k.prefix and not k.masked]
    if not keys:
        yield _stop("Alice's key is trusted for a prefix", False,
                    "the lab's trust store is empty: trusted.add('example.com', "
                    "alice.public().armored())")
        return
    hint = ""
    if root_keys:
        hint = ("a key is trusted as a root key (for every name); trust Alice only for the "
                "prefix example.com: trusted.remove(fingerprint, root=True), then "
                "trusted.add('example.com', …)")
    elif not any(LAB2_IMAGE == k.prefix or LAB2_IMAGE.startswith(k.prefix + "/")
                 for k in prefixed):
        hint = (f"the trusted prefixes ({', '.join(k.prefix for k in prefixed)}) do not cover "
                f"{LAB2_IMAGE}: a prefix is whole path segments, e.g. 'example.com'")
    yield Result("Alice's key is trusted for a prefix of example.com/hello (not as root)",
                 not hint, hint)
    try:
        store.verify_image(img)
        yield Result("the signed image is accepted", True)
    except SandboxError as e:
        yield Result("the signed image is accepted", False, str(e))
    tampered = ws.path / "tampered.aci"
    if not tampered.is_file():
        yield Result("a tampered copy is refused", False,
                     "no tampered.aci yet: copy hello.aci, change one byte of hello.txt inside "
                     "it, and copy the signature next to it as tampered.aci.asc")
        return
    if tampered.read_bytes() == img.read_bytes():
        yield Result("a tampered copy is refused", False,
                     "tampered.aci is byte-for-byte hello.aci: change one byte")
        return
    if not signature_path_for(tampered).is_file():
        yield Result("a tampered copy is refused", False,
                     "tampered.aci has no tampered.aci.asc: copy hello.aci.asc there, so the "
                     "signature claims to be for it")
        return
    try:
        store.verify_image(tampered)
        yield Result("a tampered copy is refused", False,
                     "tampered.aci was ACCEPTED: is it really different from the signed bytes?")
    except pgp.BadSignature:
        yield Result("a tampered copy is refused as a bad signature", True)
    except SandboxError as e:
        yield Result("a tampered copy is refused as a bad signature", False,
                     f"it was refused, but for another reason ({type(e).__name__}: {e})")
    said = ws.answers().get("refused_because")
    yield Result("you recorded why it was refused", said == "BadSignature",
                 "catch the error of trusted.verify_image(tampered) and record its class name: "
                 "ws.answer('refused_because', type(e).__name__)" if said is None else
                 f"you recorded {said!r}; the refusal raised pgp.BadSignature")
    # failcheck: the signature's key is gone for good
    try:
        signer = pgp.read_signature(sig.read_bytes()).issuer_fingerprint
    except Exception:  # noqa: BLE001
        signer = None
    have = {k.fingerprint for k in keys}
    if signer and signer not in have and not (ws.path / "alice.pub.asc").is_file():
        yield Result("the key that signed hello.aci is still known", False,
                     "hello.aci.asc was made by a key that is neither trusted nor saved "
                     "(alice.pub.asc); run `sandbox lab reset 2` and do the lab again",
                     "failcheck")


# ---------------------------------------------------------------------------------------------
# Lab 3: render with dependencies and a pathWhitelist — predict first

LAB3_APP = "example.com/lab3-app"
LAB3_IMAGES = {
    "example.com/lab3-base": ({"/bin/tool": "base tool\n", "/etc/motd": "base motd\n",
                               "/etc/app.conf": "from base\n", "/lib/libc.so": "base libc\n"},
                              [], None),
    "example.com/lab3-config": ({"/etc/app.conf": "from config\n", "/etc/extra.conf": "extra\n"},
                                [], None),
    LAB3_APP: ({"/app/run": "#!/bin/sh\necho run\n", "/app/README": "docs\n",
                "/bin/tool": "app's own tool\n"},
               ["example.com/lab3-base", "example.com/lab3-config"],
               ["/app/run", "/bin/tool", "/etc/app.conf", "/lib/libc.so"]),
}


def lab3_images(ws: Workspace):
    """Build and import the lab's three images; return the store. The app depends on base and
    config (in that order) and has a pathWhitelist."""
    from sandbox import aci
    from sandbox.store import Store
    store = Store()
    for name, (files, deps, whitelist) in LAB3_IMAGES.items():
        layout = ws.path / "layouts" / name.split("/")[-1]
        shutil.rmtree(layout, ignore_errors=True)
        for path, text in files.items():
            p = layout / "rootfs" / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        m: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                             "labels": [{"name": "version", "value": "1.0.0"}]}
        if deps:
            m["dependencies"] = [{"imageName": d, "labels": [{"name": "version", "value": "1.0.0"}]}
                                 for d in deps]
        if whitelist:
            m["pathWhitelist"] = whitelist
        (layout / "manifest").write_text(json.dumps(m, indent=2))
        out = ws.path / f"{name.split('/')[-1]}.aci"
        aci.build(layout, out, overwrite=True)
        store.import_aci(out)
    return store


def lab3_manifests(ws: Workspace) -> str:
    """The three manifests and file lists, as text for the learner to reason about."""
    parts = []
    for name, (files, deps, whitelist) in LAB3_IMAGES.items():
        parts.append(f"{name}\n  files: {', '.join(sorted(files))}\n"
                     f"  dependencies: {', '.join(deps) or '-'}\n"
                     f"  pathWhitelist: {', '.join(whitelist) if whitelist else '-'}")
    return "\n".join(parts)


def rendered_files(tree: Any) -> set[str]:
    """The non-directory paths of a rendered tree, from its trace."""
    return {p for p, h in tree.trace().final_paths().items() if h.type != "dir"}


def _lab3_tree(store: Any):
    from sandbox import treestore
    try:
        img = store.get(LAB3_APP)
    except SandboxError:
        return None, None
    trees = treestore.trees_of(img.id)
    return img, (trees[0] if trees else None)


@_lab_checks(3)
def _checks_3(ws: Workspace) -> Iterable[Result]:
    from sandbox.store import Store
    answers = ws.answers()
    pred = answers.get("prediction")
    yield _stop("your prediction is recorded", bool(pred),
                "write the set of files you expect in the rendered app (e.g. {'/app/run', …}) "
                "and record it with ws.answer('prediction', prediction) — before rendering")
    if not pred:
        return
    img, tree = _lab3_tree(Store())
    if img is None:
        yield _stop("the lab's images are in the store", False,
                    "run the setup cell: store = labs.lab3_images(ws)")
        return
    yield _stop("example.com/lab3-app is rendered", tree is not None,
                "not rendered yet: tree = treestore.render_image(store, 'example.com/lab3-app')")
    if tree is None:
        return
    problems = tree.verify()
    if problems:
        yield Result("the rendered tree is intact", False,
                     "the rendered tree was changed after rendering (" + problems[0] + "); run "
                     "`sandbox lab reset 3` and render again", "failcheck")
        return
    try:
        when = (tree.path / "rendered").stat().st_mtime
    except OSError:
        when = None
    t = ws._read("answers.json").get("prediction", {}).get("time")
    if isinstance(when, (int, float)) and t and t > when:
        yield Result("predicted before rendering", True,
                     "you changed your prediction after rendering; next time, commit to it first",
                     "advice")
    real = rendered_files(tree)
    trace = tree.trace()
    mine = {("/" + p.lstrip("/")).rstrip("/") for p in pred}
    extra, missing = sorted(mine - real), sorted(real - mine)
    reasons = []
    for p in extra[:3]:
        why = trace.describe(p) if p in trace.paths else "no image has this path"
        reasons.append(f"{p} is not in the tree ({why})")
    for p in missing[:3]:
        reasons.append(f"{p} is in the tree ({trace.describe(p)})")
    yield Result("your prediction equals the rendered files", not extra and not missing,
                 "; ".join(reasons))
    who = answers.get("app_conf_from")
    real_who = trace.owner("/etc/app.conf")
    yield Result("you named the image whose /etc/app.conf wins", who == real_who,
                 "record it with ws.answer('app_conf_from', 'example.com/…')" if who is None else
                 f"you said {who}; {trace.describe('/etc/app.conf')}")


@_lab_reset(3)
def _reset_3(ws: Workspace) -> list[str]:
    from sandbox import treestore
    from sandbox.store import Store
    done = []
    store = Store()
    for name in LAB3_IMAGES:
        try:
            img = store.get(name)
        except SandboxError:
            continue
        for tree in treestore.trees_of(img.id):
            try:
                treestore.remove(tree)
                done.append(f"removed rendered tree of {name}")
            except SandboxError as e:
                done.append(f"kept a tree of {name}: {e}")
        store.remove(img.id)
        done.append(f"removed image {name}")
    return done


# ---------------------------------------------------------------------------------------------
# Lab 4: a network namespace the slide's way, two wired with a veth pair

def lab4_names(ws: Workspace) -> dict[str, str]:
    """Names and addresses for lab 4: two netns, the veth ends, two addresses in one /24."""
    a, b = ws.name("a"), ws.name("b")
    tag = a.split("-")[2]
    third = int(tag[:2], 16)
    return {"A": a, "B": b, "VA": f"sbx{tag}a", "VB": f"sbx{tag}b",
            "ADDR_A": f"10.244.{third}.1/24", "ADDR_B": f"10.244.{third}.2/24"}


def netns_dir() -> Path:
    """/run/netns, made like ``ip netns add`` makes it (so handles there show in ``ip netns``)."""
    from sandbox import netns
    d = Path(netns.DEFAULT_DIR)
    if not d.is_dir():
        probe = netns.unique_name()
        netns.create(probe)
        netns.delete(probe)
    return d


def show_netns(*names: str) -> str:
    """A short text view of the links inside each named netns (tolerant of missing ones)."""
    from sandbox import netns
    lines = []
    for n in names:
        if not netns.is_netns(netns.path_of(n)):
            lines.append(f"{n}: no network namespace")
            continue
        lines.append(f"{n}:")
        for l in netns.snapshot(n)["links"]:
            lines.append(f"  {l['name']:<16} {l['kind'] or '':<8} {'UP' if l['up'] else 'DOWN':<5}"
                         f" {' '.join(l['addrs'])}")
    return "\n".join(lines)


def netns_picture(*names: str, node: str | None = None) -> Any:
    """The namespaces that exist among ``names`` (and ``node``), drawn by sandbox.viz.net;
    a sentence when none exists yet."""
    from sandbox import netns
    from sandbox.viz.net import topology
    alive = [n for n in names if netns.is_netns(netns.path_of(n))]
    if node is not None and not netns.is_netns(netns.path_of(node)):
        node = None
    if not alive and node is None:
        return "no network namespace yet"
    return topology(node, alive)


@_lab_checks(4)
def _checks_4(ws: Workspace) -> Iterable[Result]:
    from sandbox import netns
    n = lab4_names(ws)
    host_links = set(os.listdir("/sys/class/net"))
    stray = sorted(host_links & {n["VA"], n["VB"]})
    if stray:
        yield Result("the host's network is untouched", False,
                     f"{', '.join(stray)} exists on the host (a command ran without `-n`), so the "
                     f"lab changed the real host: run `sandbox lab reset 4` and start again",
                     "failcheck")
    snaps = {}
    for key in ("A", "B"):
        p = netns.path_of(n[key])
        if not p.exists():
            yield _stop(f"netns {n[key]} exists", False,
                        f"no handle {p} yet: `touch` it, then bind a new netns on it: "
                        f"unshare -n mount --bind /proc/self/ns/net {p}")
            return
        if not netns.is_netns(p):
            yield _stop(f"netns {n[key]} exists", False,
                        f"{p} is an empty file, not a namespace: bind one on it with "
                        f"`unshare -n mount --bind /proc/self/ns/net {p}`")
            return
        snaps[key] = netns.snapshot(n[key])
        yield Result(f"netns {n[key]} exists", True)
    links = {k: {l["name"]: l for l in s["links"]} for k, s in snaps.items()}
    va, vb = links["A"].get(n["VA"]), links["B"].get(n["VB"])
    if va is None or vb is None:
        where = [f"{name} in {n[k]}" for k, name in (("A", n["VA"]), ("B", n["VB"]))
                 if links[k].get(name) is None]
        extra = ""
        if n["VB"] in links["A"]:
            extra = f" ({n['VB']} is in {n['A']}: move it with `ip -n {n['A']} link set {n['VB']} netns {n['B']}`)"
        yield _stop("a veth pair joins the two namespaces", False,
                    f"missing: {', '.join(where)}{extra}: `ip -n {n['A']} link add {n['VA']} type "
                    f"veth peer name {n['VB']} netns {n['B']}`")
        return
    if va["kind"] != "veth" or vb["kind"] != "veth" or va["peer_index"] != vb["index"] \
            or vb["peer_index"] != va["index"]:
        yield _stop("a veth pair joins the two namespaces", False,
                    f"{n['VA']} and {n['VB']} are not the two ends of one veth pair")
        return
    yield Result("a veth pair joins the two namespaces", True)
    down = [(k, name) for k, name, l in (("A", n["VA"], va), ("B", n["VB"], vb)) if not l["up"]]
    yield _stop("both veth ends are UP", not down, "; ".join(
        f"the veth {name} exists but is DOWN inside the netns {n[k]}: "
        f"`ip -n {n[k]} link set {name} up`" for k, name in down))
    if down:
        return
    want = {"A": n["ADDR_A"], "B": n["ADDR_B"]}
    bad = [(k, name, l) for k, name, l in (("A", n["VA"], va), ("B", n["VB"], vb))
           if want[k] not in l["addrs"]]
    yield _stop("each end has its address", not bad, "; ".join(
        f"{name} in {n[k]} has {', '.join(l['addrs']) or 'no address'}, the lab wants "
        f"{want[k]}: `ip -n {n[k]} addr add {want[k]} dev {name}`" for k, name, l in bad))
    if bad:
        return
    target = n["ADDR_B"].split("/")[0]
    cp = netns.ping(n["A"], target, count=1, timeout=2)   # inside the lab's own namespaces
    yield Result(f"{n['A']} reaches {target} over the veth", cp.returncode == 0,
                 f"ping failed: {(cp.stdout + cp.stderr).strip().splitlines()[-1:]}")
    rc = ws.answers().get("ping_rc")
    yield Result("you recorded your ping's exit status", rc == 0,
                 "run netns.ping(A, ADDR_B) and record ws.answer('ping_rc', r.returncode)"
                 if rc is None else f"you recorded {rc}; a ping that got its reply exits 0")


@_lab_reset(4)
def _reset_4(ws: Workspace) -> list[str]:
    from sandbox import netns
    done = []
    if not ws.names():
        return done
    n = lab4_names(ws)
    for key in ("A", "B"):
        p = netns.path_of(n[key])
        if p.exists() or netns.is_netns(p):
            netns.delete(n[key], missing_ok=True)
            done.append(f"deleted netns {n[key]}")
    for link in (n["VA"], n["VB"]):
        if os.path.exists(f"/sys/class/net/{link}"):
            _delete_host_link(link)
            done.append(f"deleted host link {link}")
    return done


def _delete_host_link(name: str) -> None:
    from sandbox import netns

    def work() -> None:
        with netns.iproute(None) as ipr:
            idx = ipr.link_lookup(ifname=name)
            if idx:
                ipr.link("del", index=idx[0])
    netns.in_thread(work)


# ---------------------------------------------------------------------------------------------
# Lab 5: an IPAM plugin backed by SQLite, under the kit's runtime and upstream's bridge

LAB5_PLUGIN = "sqlite-ipam"
UPSTREAM_CNI = "/usr/lib/cni"


def lab5_names(ws: Workspace) -> dict[str, Any]:
    tag = ws.name("node").split("-")[2]
    third = int(tag[:2], 16) % 200
    return {"node": ws.name("node"), "c1": ws.name("c1"), "c2": ws.name("c2"),
            "ours": "sbx-l5-ours", "upstream": "sbx-l5-upstream",
            "bridge_ours": f"sbx{tag}o", "bridge_up": f"sbx{tag}u",
            "subnet_ours": f"10.{23 + third % 3}.{third}.0/24",
            "subnet_up": f"10.{26 + third % 3}.{third}.0/24",
            "db": str(ws.path / "ipam.sqlite")}


def lab5_setup(ws: Workspace) -> dict[str, Any]:
    """A node netns (plays the host), two container netns, and two network configurations
    whose IPAM is the learner's ``sqlite-ipam``: one for the kit's bridge, one for upstream's."""
    from sandbox import netns
    n = lab5_names(ws)
    if not netns.is_netns(netns.path_of(n["node"])):
        netns.node_create(n["node"])
    for c in ("c1", "c2"):
        if not netns.is_netns(netns.path_of(n[c])):
            netns.create(n[c])
    for which in ("ours", "upstream"):
        d = ws.path / f"net.d-{which}"
        d.mkdir(exist_ok=True)
        conf = {"cniVersion": "1.0.0", "name": n[which], "type": "bridge",
                "bridge": n["bridge_ours" if which == "ours" else "bridge_up"], "isGateway": True,
                "ipam": {"type": LAB5_PLUGIN, "subnet": n[f"subnet_{'ours' if which == 'ours' else 'up'}"],
                         "dbPath": n["db"]}}
        (d / "10-lab5.conf").write_text(json.dumps(conf, indent=2))
    (ws.path / "bin").mkdir(exist_ok=True)
    return n


def install_plugin(ws: Workspace, source: str) -> Path:
    """Write the learner's plugin to ``<workspace>/bin/sqlite-ipam`` (executable)."""
    p = ws.path / "bin" / LAB5_PLUGIN
    p.parent.mkdir(exist_ok=True)
    if not source.startswith("#!"):
        source = f"#!{sys.executable}\n" + source
    p.write_text(source)
    p.chmod(0o755)
    return p


def lab5_runtime(ws: Workspace, which: str):
    """A CNI runtime running in the lab's node netns: ``ours`` finds bridge in the kit's plugin
    directory, ``upstream`` in /usr/lib/cni; both find sqlite-ipam in the workspace."""
    from sandbox.cni import Runtime
    from sandbox.cni_plugins import plugin_dir
    n = lab5_names(ws)
    main = str(plugin_dir()) if which == "ours" else UPSTREAM_CNI
    return Runtime(conf_dir=ws.path / f"net.d-{which}", cni_path=[str(ws.path / "bin"), main],
                   cache_dir=ws.path / f"cache-{which}", node=n["node"],
                   plugin_state_dir=ws.path / "plugin-state")


def attach(rt: Any, net: str, container_netns: str) -> str:
    """ADD a container to a network and say what happened (never raises for a plugin error)."""
    try:
        res = rt.add(net, container_netns)
    except SandboxError as e:
        return f"ADD failed: {e}"
    ips = [ip.get("address") for ip in (res.get("ips") if isinstance(res, dict) else []) or []]
    return f"ADD ok: {container_netns} got {', '.join(ips) or 'no address'}"


def leases(ws: Workspace) -> list[tuple]:
    """The rows of every table in the learner's SQLite database."""
    db = Path(lab5_names(ws)["db"])
    if not db.is_file():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            rows += [(table, *r) for r in con.execute(f'SELECT * FROM "{table}"')]
        return rows
    finally:
        con.close()


def call_plugin(plugin: Path, command: str, conf: dict[str, Any], container_id: str = "sbx-check",
                ifname: str = "eth0", timeout: float = 20) -> tuple[int, Any, str]:
    """Exec a CNI plugin once, as a runtime would; (exit code, parsed stdout or text, stderr)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": "/proc/self/ns/net",
           "CNI_IFNAME": ifname, "CNI_PATH": str(plugin.parent)}
    cp = subprocess.run([str(plugin)], input=json.dumps(conf).encode(), env=env,
                        capture_output=True, timeout=timeout)
    out = cp.stdout.decode(errors="replace")
    try:
        parsed: Any = json.loads(out) if out.strip() else None
    except ValueError:
        parsed = out
    return cp.returncode, parsed, cp.stderr.decode(errors="replace")


def _plugin_error(rc: int, out: Any, err: str) -> str:
    if isinstance(out, dict) and "msg" in out:
        return f"it answered error {out.get('code')}: {out['msg']}"
    if isinstance(out, str) and out.strip():
        return f"it printed something that is not JSON: {out.strip()[:80]!r}"
    return f"it exited {rc} with {err.strip().splitlines()[-1] if err.strip() else 'no output'}"


def _ips_of(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return []
    return [ip.get("address", "") for ip in result.get("ips") or [] if isinstance(ip, dict)]


@_lab_checks(5)
def _checks_5(ws: Workspace) -> Iterable[Result]:
    from sandbox import netns
    n = lab5_names(ws)
    node_ok = netns.is_netns(netns.path_of(n["node"]))
    cached = any(p.is_file() for w in ("ours", "upstream")
                 for p in (ws.path / f"cache-{w}").rglob("*"))
    if cached and not node_ok:
        yield Result("the node namespace is alive", False,
                     f"attachments are cached but the node netns {n['node']} is gone, so they can "
                     "never be deleted cleanly: run `sandbox lab reset 5` and start again",
                     "failcheck")
        return
    plugin = ws.path / "bin" / LAB5_PLUGIN
    if not plugin.is_file() or not os.access(plugin, os.X_OK):
        yield _stop("your plugin is installed", False,
                    "no executable bin/sqlite-ipam yet: labs.install_plugin(ws, PLUGIN)")
        return
    conf = {"cniVersion": "1.0.0", "name": "sbx-l5-check", "type": "bridge",
            "ipam": {"type": LAB5_PLUGIN, "subnet": "10.99.0.0/29"}}
    rc, out, err = call_plugin(plugin, "VERSION", conf)
    ok = rc == 0 and isinstance(out, dict) and "1.0.0" in (out.get("supportedVersions") or [])
    yield _stop("VERSION answers with the versions it supports (incl. 1.0.0)", ok,
                "" if ok else _plugin_error(rc, out, err))
    if not ok:
        return
    with tempfile.TemporaryDirectory(prefix="sbx-l5-") as tmp:
        conf["ipam"]["dbPath"] = str(Path(tmp) / "check.sqlite")
        subnet = ipaddress.ip_network("10.99.0.0/29")
        got = []
        problem = ""
        for cid in ("sbx-x1", "sbx-x2"):
            rc, out, err = call_plugin(plugin, "ADD", conf, cid)
            ips = _ips_of(out)
            if rc != 0 or not ips:
                problem = (f"ADD for {cid}: " + (_plugin_error(rc, out, err) if rc != 0 else
                           "the result has no ips (print {'cniVersion':…, 'ips': [{'address': "
                           "'10.x.y.z/24', 'gateway': …}]})"))
                break
            try:
                iface = ipaddress.ip_interface(ips[0])
            except ValueError:
                problem = f"ADD for {cid}: {ips[0]!r} is not address/prefix"
                break
            if iface.ip not in subnet or iface.ip in (subnet.network_address,
                                                      subnet.broadcast_address, subnet[1]):
                problem = (f"ADD for {cid} gave {iface}: not a usable host address of {subnet} "
                           "(network, broadcast and the gateway .1 are not)")
                break
            got.append(iface.ip)
        if not problem and len(set(got)) != 2:
            problem = f"two containers got the same address {got[0]}: a lease must be unique"
        if not problem:
            for _ in range(2):   # DEL twice: the spec wants the second to succeed too
                rc, out, err = call_plugin(plugin, "DEL", conf, "sbx-x1")
                if rc != 0:
                    problem = "DEL: " + _plugin_error(rc, out, err)
                    break
        if not problem:
            rc, out, err = call_plugin(plugin, "ADD", conf, "sbx-x3")
            rc2, out2, _ = call_plugin(plugin, "ADD", conf, "sbx-x4")
            again = [ipaddress.ip_interface(a).ip for a in _ips_of(out) + _ips_of(out2)]
            if rc != 0 or got[0] not in again:
                problem = (f"after DEL of sbx-x1 its address {got[0]} was not handed out again "
                           "(the lease row must be deleted)")
        yield Result("your plugin allocates unique addresses, releases them on DEL (twice)",
                     not problem, problem)
    rows = leases(ws)
    for which, c in (("ours", "c1"), ("upstream", "c2")):
        label = (f"{n[c]} is attached through the kit's bridge" if which == "ours" else
                 f"{n[c]} is attached through upstream's bridge (/usr/lib/cni/bridge)")
        if not node_ok:
            yield Result(label, False, "run the setup cell: labs.lab5_setup(ws)")
            continue
        rt = lab5_runtime(ws, which)
        atts = rt.attachments(network=n[which])
        if not atts:
            yield Result(label, False,
                         f"no cached attachment of {n[c]} to {n[which]}: run "
                         f"labs.attach(rt_{which}, '{n[which]}', '{n[c]}') once your ADD works")
            continue
        if not netns.is_netns(netns.path_of(n[c])):
            yield Result(label, False, f"the container netns {n[c]} is gone: run "
                         "`sandbox lab reset 5`", "failcheck")
            continue
        eth0 = {l["name"]: l for l in netns.snapshot(n[c])["links"]}.get("eth0")
        addrs = eth0["addrs"] if eth0 else []
        in_db = [r for r in rows if any(str(x).split("/")[0] in {a.split("/")[0] for a in addrs}
                                        for x in r[1:])]
        hint = ""
        if not eth0:
            hint = f"{n[c]} has no eth0"
        elif not addrs:
            hint = f"eth0 in {n[c]} has no address"
        elif not in_db:
            hint = (f"eth0 in {n[c]} has {', '.join(addrs)} but no row of {Path(n['db']).name} "
                    "holds it: did the ADD go through your plugin?")
        yield Result(label + " with an address from your database", not hint, hint)


@_lab_reset(5)
def _reset_5(ws: Workspace) -> list[str]:
    from sandbox import netns
    done = []
    if not ws.names():
        return done
    n = lab5_names(ws)
    node_ok = netns.is_netns(netns.path_of(n["node"]))
    for which, c in (("ours", "c1"), ("upstream", "c2")):
        if node_ok and (ws.path / f"net.d-{which}").is_dir():
            rt = lab5_runtime(ws, which)
            try:
                rt.delete(n[which], n[c] if netns.is_netns(netns.path_of(n[c])) else None,
                          container_id=rt.container_id_for(n[c]))
                done.append(f"CNI DEL {n[c]} from {n[which]}")
            except Exception as e:  # noqa: BLE001 - the netns go anyway
                done.append(f"CNI DEL {n[c]} from {n[which]} failed ({e}); deleting the netns")
    for key in ("c1", "c2", "node"):
        if netns.path_of(n[key]).exists():
            netns.delete(n[key], missing_ok=True)
            done.append(f"deleted netns {n[key]}")
    return done


# ---------------------------------------------------------------------------------------------
# Lab 6: the seed's three-app pod, from the app's perspective

LAB6_APPS = ["example.com/reduce-worker", "example.com/worker-backup",
             "example.com/reduce-worker-register"]


def catalogue_store(progress: bool = False):
    """The store with the lab catalogue imported (built offline from Debian's busybox once)."""
    from sandbox import catalog
    from sandbox.store import Store
    store = Store()
    have = {i.name for i in store.list()}
    if not set(LAB6_APPS) <= have:
        catalog.build(config.sandbox_dir() / "cache" / "catalog", import_to=store,
                      progress=progress)
    return store


def app_view(uuid: str, app: str, cmd: str) -> str:
    """What ``cmd`` prints inside ``app`` of a running pod (for the lab's cells and checks)."""
    from sandbox import pod
    cp = pod.enter(uuid, app, ["/bin/sh", "-c", cmd], capture=True, timeout=30)
    if cp.returncode != 0:
        raise LabError(f"`{cmd}` failed inside {app} ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout.strip()


def pod_summary(ws: Workspace) -> str:
    from sandbox import pod
    uuid = ws.answers().get("pod")
    if not uuid:
        return "no pod recorded yet"
    try:
        st = pod.status(uuid)
    except SandboxError as e:
        return str(e)
    apps = ", ".join(f"{a['name']}={a['state']}" for a in st["apps"])
    return f"pod {uuid[:8]}: {st['state']} ({apps}); networks: {st.get('networks')}"


@_lab_checks(6)
def _checks_6(ws: Workspace) -> Iterable[Result]:
    from sandbox import pod
    a = ws.answers()
    uuid = a.get("pod")
    yield _stop("your pod is recorded", bool(uuid),
                "run the pod: p = pod.run(store, labs.LAB6_APPS, detach=True), then "
                "ws.answer('pod', p.uuid)")
    if not uuid:
        return
    try:
        st = pod.status(uuid)
    except SandboxError:
        yield Result("the pod is running", False,
                     f"pod {uuid[:8]} no longer exists (collected by `sandbox gc`?): run "
                     "`sandbox lab reset 6` and run the lab again", "failcheck")
        return
    if st["state"] != "run":
        yield Result("the pod is running", False,
                     f"pod {uuid[:8]} is {st['state']}: its apps cannot be inspected any more; "
                     "run `sandbox lab reset 6` and run the lab again", "failcheck")
        return
    apps = {x["name"]: x for x in st["apps"]}
    want = {"reduce-worker", "worker-backup", "reduce-worker-register"}
    yield _stop("the pod runs the seed's three apps", set(apps) == want,
                f"the pod's apps are {sorted(apps)}; run it with labs.LAB6_APPS")
    if set(apps) != want:
        return
    live = {
        "hostname": lambda: app_view(uuid, "reduce-worker", "hostname"),
        "pid1": lambda: app_view(uuid, "reduce-worker", "tr '\\0' ' ' < /proc/1/cmdline").strip(),
        "interfaces": lambda: sorted(app_view(uuid, "reduce-worker", "ls /sys/class/net").split()),
        "backup_root": lambda: sorted(app_view(uuid, "worker-backup", "ls /").split()),
    }
    asks = {
        "hostname": "the hostname the apps see: ws.answer('hostname', …)",
        "pid1": "the command line of PID 1 as an app sees it (/proc/1/cmdline, NULs as spaces)",
        "interfaces": "the interface names an app sees (/sys/class/net), as a list",
        "backup_root": "the names in worker-backup's / (ls /), as a list",
    }
    for key, get_live in live.items():
        mine = a.get(key)
        if mine is None:
            yield Result(f"you recorded {key}", False, f"record {asks[key]}")
            continue
        real = get_live()
        if isinstance(real, list):
            mine = sorted(mine) if isinstance(mine, (list, tuple, set)) else mine
        hint = "" if mine == real else f"you recorded {mine!r}; inside the pod it is {real!r}"
        if key == "backup_root" and mine != real and isinstance(mine, list) and "home" in mine:
            hint += " (worker-backup has a pathWhitelist: only what it lists survives rendering)"
        yield Result(f"your {key} matches what the app sees", not hint, hint)


@_lab_reset(6)
def _reset_6(ws: Workspace) -> list[str]:
    from sandbox import pod
    done = []
    mine = {u for u in ws.history("pod") if u}      # a re-run cell may have started several
    for p in pod.list_pods():
        lab_pod = sorted(a.get("image", "") for a in p.get("apps", [])) == sorted(LAB6_APPS)
        if p.get("state") == "run" and (p["uuid"] in mine or lab_pod):
            pod.stop(p["uuid"], timeout=5)
            done.append(f"stopped pod {p['uuid'][:8]}")
    done += pod.gc(grace=0)
    return done


# ---------------------------------------------------------------------------------------------
# Small helpers the lab notebooks show

def flip_byte(src: str | os.PathLike[str], dst: str | os.PathLike[str], needle: bytes) -> int:
    """Copy ``src`` to ``dst`` with one byte changed: the first byte of ``needle``'s first
    occurrence gets its lowest bit flipped. Returns the offset."""
    data = bytearray(Path(src).read_bytes())
    i = data.find(needle)
    if i < 0:
        raise LabError(f"{needle!r} does not occur in {src}.")
    data[i] ^= 1
    Path(dst).write_bytes(bytes(data))
    return i


def compressed_sha512(path: str | os.PathLike[str]) -> str:
    """sha512 of a file exactly as stored (for comparing with the image ID)."""
    return "sha512-" + hashlib.sha512(Path(path).read_bytes()).hexdigest()


def uncompressed_sha512(path: str | os.PathLike[str]) -> str:
    with gzip.open(path, "rb") as f:
        return "sha512-" + hashlib.file_digest(f, "sha512").hexdigest()


__all__ = [n for n in dir() if not n.startswith("_") and n not in dir(builtins)]
