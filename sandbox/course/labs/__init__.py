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

import html
import json
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sandbox import config
from sandbox._sys import mountinfo
from sandbox.errors import SandboxError


class LabError(SandboxError):
    """A lab cannot be found or used."""


class CheckFailed(SandboxError):
    """A lab's checks did not pass; the message lists the hints."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the report above already said what failed
        return [f"\x1b[31mCheckFailed\x1b[0m: {self}"]


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


def _load(n: int) -> None:
    """Import lab ``n``'s module (``sandbox.course.labs.labN``), which registers its checks."""
    import importlib
    importlib.import_module(f"{__name__}.lab{n}")


def checks_for(n: int) -> Callable[[Check], Check]:
    def deco(fn: Check) -> Check:
        _CHECKS[n] = fn
        return fn
    return deco


def reset_for(n: int):
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
    _load(lab.number)
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
        _load(lab.number)
        fn = _RESETS.get(lab.number)
        if fn is not None:
            done += fn(ws)
        mountinfo.umount_below(ws.path)
        shutil.rmtree(ws.path, ignore_errors=True)
        done.append(f"removed {ws.path}")
    return done


def gate(msg: str, ok: bool, hint: str = "") -> Result:
    """A check whose failure makes the later checks meaningless (they are not run)."""
    r = Result(msg, ok, hint)
    r.stop = True  # type: ignore[attr-defined]
    return r
