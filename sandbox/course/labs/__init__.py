"""Workshop labs: one module per lab, a workspace per lab, checks with hints, and reset.

Each lab is one module, ``sandbox/course/labs/labN.py``, that keeps together everything about
it: its metadata (``NUMBER``, ``SLUG``, ``TITLE``, ``INTRO``, ``FOLLOWS``), its notebook as
``CELLS`` (see :mod:`~sandbox.course.labs.authoring`: the student notebook and the reference
solution are both built from them), ``CHECKS`` (the names of its checks, in order), the helpers
its cells call, ``checks(ws)`` and, when it makes kernel objects or pods, ``reset(ws)``. A new
lab is a new module; ``labs/make_labs.py`` writes its student notebook to
``labs/NN-slug/lab.ipynb``.

Checks follow the iximiuz labs split (../shared/reference/teaching.md §3.3):

* a *check* decides pass/fail; when it fails, its hint is computed from the live state (files
  in the workspace, kernel objects, the pod) — "the veth exists but is DOWN inside the netns";
* an *advice* never fails, it only adds a hint;
* a *failcheck* detects a state the lab cannot recover from and says what to run
  (``sandbox lab reset N``).

``checks(ws)`` yields one *check* per entry of ``CHECKS``, in that order (a branch may name its
check more precisely). A :func:`gate` that fails stops the run; the report still lists every
check, those not reached as "not checked yet", so a learner sees how much is left.

Everything a lab makes is recorded in its workspace ``$SANDBOX_DIR/labs/NN/`` (files, the
answers the learner gives with :meth:`Workspace.answer`, the kernel names it was handed with
:meth:`Workspace.name`), so ``sandbox lab check N`` in a shell reads the same state the notebook
left, and ``sandbox lab reset N`` removes it all. Every kernel name carries the kit's ``sbx``
prefix. Each run of the checks is recorded in the progress file
(:mod:`sandbox.course.progress`).
"""
from __future__ import annotations

import html
import importlib
import json
import pkgutil
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sandbox import config
from sandbox._sys import mountinfo
from sandbox.errors import SandboxError


class LabError(SandboxError):
    """A lab cannot be found or used."""


def labs_dir() -> Path:
    """``labs/`` of the checkout: the student notebooks."""
    return config.project_root() / "labs"


_MODULE = re.compile(r"lab(\d+)$")


def _modules() -> dict[int, str]:
    """Lab number -> module name, from the modules ``labN`` of this package."""
    out = {}
    for info in pkgutil.iter_modules(__path__):
        m = _MODULE.match(info.name)
        if m:
            out[int(m.group(1))] = f"{__name__}.{info.name}"
    return out


@dataclass(frozen=True)
class Lab:
    number: int
    slug: str
    title: str
    path: Path            # labs/NN-slug: the folder of the student notebook
    module_name: str
    follows: str          # the notebook ("05") this lab comes after

    @property
    def student(self) -> Path:
        return self.path / "lab.ipynb"

    @property
    def folder(self) -> str:
        return f"{self.number:02d}-{self.slug}"

    # paths and names derived from the fields (the same shape as render.treestore's properties)
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def checks(self) -> list[str]:
        return list(self.module().CHECKS)


def discover(root: Path | None = None) -> list[Lab]:
    """Every lab module, in number order (``root``: where the student notebooks live)."""
    root = root or labs_dir()
    out = []
    for n, name in sorted(_modules().items()):
        mod = importlib.import_module(name)
        if getattr(mod, "NUMBER", None) != n:
            raise LabError(f"{name} declares NUMBER = {getattr(mod, 'NUMBER', None)!r}: set it "
                           f"to {n} (a lab's number is the one in its module's name).")
        out.append(Lab(n, mod.SLUG, mod.TITLE, root / f"{n:02d}-{mod.SLUG}", name,
                       str(mod.FOLLOWS)))
    return out


def get(number: int | str) -> Lab:
    """The lab numbered ``number`` (``4``, ``"04"`` or its folder name)."""
    found = discover()
    for lab in found:
        if str(number) in (str(lab.number), f"{lab.number:02d}", lab.folder):
            return lab
    known = ", ".join(str(l.number) for l in found) or "none"
    shown = number if str(number).strip() else repr(number)     # an empty one said "no lab ;"
    raise LabError(f"There is no lab {shown}; the labs are: {known} (see `sandbox lab list`).")


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


@dataclass
class Result:
    name: str
    ok: bool
    hint: str = ""
    kind: str = "check"        # check | advice | failcheck | pending (not reached)
    stop: bool = False         # a gate: the checks after it are not run when it fails

    def line(self) -> str:
        mark = {"check": "✓" if self.ok else "✗", "advice": "i", "pending": "·",
                "failcheck": "!" if not self.ok else "✓"}[self.kind]
        text = f"{mark} {self.name}"
        if self.hint and (not self.ok or self.kind == "advice"):
            text += f"\n    {'hint: ' if self.kind != 'pending' else ''}{self.hint}"
        return text


def gate(msg: str, ok: bool, hint: str = "") -> Result:
    """A check whose failure makes the later checks meaningless (they are not run)."""
    return Result(msg, ok, hint, stop=True)


_WAITING = "not checked yet: it needs the checks above"


@dataclass(repr=False)
class Report:
    lab: int
    results: list[Result] = field(default_factory=list)
    note: str = ""             # one sentence under the headline (e.g. the lab has not started)

    @property
    def unrecoverable(self) -> list[Result]:
        return [r for r in self.results if r.kind == "failcheck" and not r.ok]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.kind in ("check", "failcheck") and not r.ok]

    @property
    def pending(self) -> list[Result]:
        return [r for r in self.results if r.kind == "pending"]

    @property
    def total(self) -> int:
        return sum(r.kind in ("check", "pending") for r in self.results)

    @property
    def passed(self) -> int:
        return sum(r.kind == "check" and r.ok for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pending

    def hints(self) -> list[str]:
        return ([self.note] if self.note else []) + [r.hint for r in self.failed if r.hint]

    def headline(self) -> str:
        if self.ok:
            return f"lab {self.lab}: all checks pass ({self.passed} of {self.total})"
        fails = sum(r.kind == "check" and not r.ok for r in self.results)
        parts = [f"{fails} fail{'s' if fails == 1 else ''}"] if fails else []
        if self.pending:
            parts.append(f"{len(self.pending)} not checked yet")
        head = f"lab {self.lab}: {self.passed} of {self.total} checks pass"
        if parts:
            head += f" ({', '.join(parts)})"
        if self.unrecoverable:
            head += (" — the state cannot be recovered: run "
                     f"`sandbox lab reset {self.lab}` and start again")
        return head

    def __str__(self) -> str:
        note = [f"  {self.note}"] if self.note else []
        return "\n".join([self.headline(), *note, *(r.line() for r in self.results)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from sandbox.palette import STATUS
        rows = []
        for r in self.results:
            colour = (STATUS["info"] if r.kind == "advice" else STATUS["muted"]
                      if r.kind == "pending" else STATUS["ok"] if r.ok else STATUS["bad"])
            mark = html.escape(r.line().split("\n")[0][0])
            label = "hint: " if r.kind != "pending" else ""
            hint = f"<br><small>{label}{html.escape(r.hint)}</small>" if r.hint and (
                not r.ok or r.kind == "advice") else ""
            rows.append(f"<tr><td style='color:{colour};font-weight:bold'>{mark}</td>"
                        f"<td style='text-align:left'>{html.escape(r.name)}{hint}</td></tr>")
        ok = "ok" if self.ok else "fail"
        note = f"<br><small>{html.escape(self.note)}</small>" if self.note else ""
        return (f"<div class='sandbox-lab-report sandbox-lab-{ok}'><b>{html.escape(self.headline())}"
                f"</b>{note}<table>{''.join(rows)}</table></div>")


def run_checks(number: int, record: bool = True) -> Report:
    """Run lab ``number``'s checks against the live state; every declared check gets a verdict
    (those after a failed gate: "not checked yet"). Never raises for a failing check."""
    lab = get(number)
    mod = lab.module()
    ws = Workspace(lab.number, create=False)
    report = Report(lab.number)
    declared = list(mod.CHECKS)
    if not ws.exists():
        report.note = (f"There is no workspace {ws.path} yet: run the lab's first cells (or was "
                       f"SANDBOX_DIR different when the lab ran? It is {config.sandbox_dir()} here).")
    else:
        try:
            for r in mod.checks(ws):
                report.results.append(r)
                if r.kind == "check" and not r.ok and r.stop:
                    break
        except PermissionError as e:
            raise LabError(f"Checking lab {lab.number} needs root (it reads namespaces, pods and "
                           f"kernel state): run it as root ({e.strerror}: {e.filename}).") from e
    reached = sum(r.kind == "check" for r in report.results)
    waiting = _WAITING if reached else "not checked yet"
    report.results += [Result(name, False, waiting, "pending") for name in declared[reached:]]
    if record and ws.exists():
        from sandbox.course import progress
        progress.record_lab(lab.number, report.passed, report.total)
    return report


def check(number: int) -> Report:
    """The check cell: run the checks and return the report (shown as the cell's result, every
    verdict with its hint). It does not raise, so "Run All" and nbconvert run to the end."""
    return run_checks(number)


def reset(number: int) -> list[str]:
    """Remove everything lab ``number`` made (kernel objects, pods, files). Idempotent."""
    lab = get(number)
    ws = Workspace(lab.number, create=False)
    done: list[str] = []
    if ws.exists():
        fn = getattr(lab.module(), "reset", None)
        if fn is not None:
            done += fn(ws)
        mountinfo.umount_below(ws.path)
        shutil.rmtree(ws.path, ignore_errors=True)
        done.append(f"removed {ws.path}")
    return done


# --- the notebooks: student (in git) and reference solution (written on request) -------------

def student_notebook(number: int) -> Any:
    """The student notebook of lab ``number`` as built from its module (an nbformat node)."""
    from sandbox.course.labs import authoring
    return authoring.build(get(number).module(), solution=False)


def solution_notebook(number: int) -> Any:
    """The reference solution of lab ``number`` (an nbformat node; not stored anywhere)."""
    from sandbox.course.labs import authoring
    return authoring.build(get(number).module(), solution=True)


def solution_path(number: int, out_dir: Path | None = None) -> Path:
    """Where :func:`write_solution` puts it: ``labs/NN-slug/solution.ipynb`` (git ignores it),
    or ``OUT/NN-slug.solution.ipynb``."""
    lab = get(number)
    if out_dir is None:
        return lab.path / "solution.ipynb"
    return Path(out_dir) / f"{lab.folder}.solution.ipynb"


def write_solution(number: int, out_dir: Path | None = None) -> Path:
    """Write lab ``number``'s reference solution; return its path."""
    import nbformat
    dest = solution_path(number, out_dir)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(solution_notebook(number), dest)
    except OSError as e:
        raise LabError(f"Cannot write the solution to {dest} ({e.strerror}): choose a "
                       "writable directory with --out DIR.") from e
    return dest
