"""The static course site: every notebook and lab solution executed, as pages anyone can read
offline — the fallback when a learner's VM fails, and what people read after the workshop.

    .venv/bin/python -m sandbox.viz.site build/site          # or: make site

1. **Execute** each notebook (and each lab's reference solution) headless with nbclient, in a
   fresh state directory of its own, with ``SANDBOX_STATIC=1``: steppers show every step, the
   self-checks show their answers folded, the state view one snapshot. Two at a time (2 cores).
2. **Freeze the widgets**: an ipywidget's output is only a reference to a model in the saved
   widget state, which a browser can draw only with the widget JavaScript (by default from a
   CDN). Instead, each widget's *state at the end of the run* becomes plain HTML
   (:func:`widget_html`): boxes, labels, the selected option of a dropdown, text, buttons shown
   disabled. No widget JavaScript, no CDN.
3. **Build** with Jupyter Book 1.0.4.post1 (pinned): Sphinx + MyST-NB build with no network and
   write plain files. Jupyter Book 2 / MyST cannot build offline: it downloads its theme from the
   MyST template service and runs ``npm ci`` (shared/reference/wave2.md §3). Extensions that
   would reach for a CDN are left out (no dollar-math, so no MathJax; no launch buttons, no thebe).

The site holds: an index (what the course is, the course map, notebooks with their time and
objectives, labs), a page per notebook, a page per lab solution, the slide-coverage table and the
instructor guide. :func:`build` takes a subset (``make test`` builds three pages; ``make site``
builds all) and reports how long each part took.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import config
from sandbox.errors import SandboxError

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class SiteError(SandboxError):
    """The course site could not be built."""


# --- 2. widgets frozen into HTML ---------------------------------------------------------------

def _esc(v: Any) -> str:
    return html.escape(str(v))


def widget_html(model_id: str, models: dict[str, Any], depth: int = 0) -> str:
    """The saved state of widget ``model_id`` (and its children) as static HTML."""
    m = models.get(model_id)
    if m is None or depth > 40:
        return ""
    name = m.get("model_name", "")
    s = m.get("state", {})

    def child(ref: Any) -> str:
        return widget_html(ref[len("IPY_MODEL_"):], models, depth + 1) if isinstance(
            ref, str) and ref.startswith("IPY_MODEL_") else ""

    desc = f"<span class='sbx-w-desc'>{_esc(s['description'])} </span>" if s.get("description") else ""
    if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel"):
        direction = "row" if name == "HBoxModel" else "column"
        kids = "".join(child(c) for c in s.get("children", []))
        return f"<div class='sbx-w-box' style='display:flex;flex-direction:{direction};gap:4px'>{kids}</div>"
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div class='sbx-w-html'>{desc}{s.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div class='sbx-w-label'>{_esc(s.get('value', ''))}</div>"
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        labels = s.get("_options_labels", [])
        idx = s.get("index")
        items = "".join(f"<li{' class=sbx-w-selected style=font-weight:bold' if i == idx else ''}>"
                        f"{'● ' if i == idx else '○ '}{_esc(l)}</li>" for i, l in enumerate(labels))
        return f"<div class='sbx-w-choice'>{desc}<ul style='list-style:none;margin:0'>{items}</ul></div>"
    if name in ("TextModel", "TextareaModel", "IntTextModel", "FloatTextModel"):
        return f"<div class='sbx-w-text'>{desc}<code>{_esc(s.get('value', ''))}</code></div>"
    if name in ("ButtonModel", "ToggleButtonModel"):
        return f"<button class='sbx-w-button' disabled>{_esc(s.get('description', ''))}</button>"
    if name in ("IntSliderModel", "FloatSliderModel", "IntRangeSliderModel", "SelectionSliderModel"):
        value = s.get("value")
        if name == "SelectionSliderModel":
            labels = s.get("_options_labels", [])
            value = labels[s["index"]] if isinstance(s.get("index"), int) and labels else value
        return f"<div class='sbx-w-slider'>{desc}<code>{_esc(value)}</code></div>"
    if name in ("CheckboxModel",):
        return f"<div class='sbx-w-check'>{'☑' if s.get('value') else '☐'} {desc}</div>"
    if name == "OutputModel":
        return "".join(_output_html(o) for o in s.get("outputs", []))
    if name == "ImageModel":
        return ""   # binary values are not kept in the saved state
    return ""


def _output_html(o: dict[str, Any]) -> str:
    data = o.get("data", {})
    if "text/html" in data:
        return "".join(data["text/html"])
    if "image/svg+xml" in data:
        return "".join(data["image/svg+xml"])
    if "text" in o:
        return f"<pre>{_esc(''.join(o['text']))}</pre>"
    if "text/plain" in data:
        return f"<pre>{_esc(''.join(data['text/plain']))}</pre>"
    return ""


def freeze_widgets(nb: Any) -> int:
    """Replace every widget output by static HTML of its saved state; drop the widget state.
    Returns how many widget outputs were frozen."""
    models = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    n = 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            view = data.get(WIDGET_VIEW)
            if view is None:
                continue
            frozen = widget_html(view.get("model_id", ""), models)
            data.pop(WIDGET_VIEW)
            data.pop("text/plain", None)
            data["text/html"] = f"<div class='sbx-frozen-widget'>{frozen}</div>"
            n += 1
    nb.metadata.pop("widgets", None)
    return n


# --- 1. executing ---------------------------------------------------------------------------------

@dataclass
class Page:
    source: Path          # the notebook in the repository (or a built solution)
    dest: str             # where it goes in the book, e.g. "notebooks/06-cni.ipynb"
    title: str
    lab: int | None = None
    seconds: float = 0.0
    error: str = ""
    widgets: int = 0
    times: dict[str, Any] = field(default_factory=dict)


def _times(page: Page, nb: Any) -> dict[str, Any]:
    """The learner's time for this page (sandbox.course.timing), from its executed cells."""
    from sandbox.course import selfchecks, timing
    if page.lab is not None:
        todo = [c.source for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        return timing.estimate(nb, todo_sources=todo)
    return timing.estimate(nb, questions=selfchecks.counts().get(Path(page.dest).stem, 0))

def _execute(page: Page, book: Path, timeout: int) -> Page:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    state = Path(tempfile.mkdtemp(prefix="sbx-site-"))
    t0 = time.monotonic()
    nb = nbformat.read(page.source, as_version=4)
    env = {**os.environ, "SANDBOX_DIR": str(state), "SANDBOX_STATIC": "1"}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(page.source.parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        page.error = str(e).strip().splitlines()[-1][:300]
    except Exception as e:  # noqa: BLE001 - a dead kernel, a timeout: the page says so
        page.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        if page.lab is not None:   # what the lab made in the kernel, namespaces included
            subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), "lab", "reset",
                            str(page.lab)], capture_output=True, timeout=120)
        from sandbox._sys import mountinfo
        mountinfo.umount_below(state)
        shutil.rmtree(state, ignore_errors=True)
    page.times = _times(page, nb)
    page.widgets = freeze_widgets(nb)
    out = book / page.dest
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    page.seconds = time.monotonic() - t0
    return page


# --- 3. the book ----------------------------------------------------------------------------------

_CONFIG = """\
title: Container Standards Lab
author: the Container Standards Lab course
copyright: ""
only_build_toc_files: true
exclude_patterns: [_build]
execute:
  execute_notebooks: "off"
parse:
  myst_enable_extensions: [colon_fence, deflist, html_image, substitution]
html:
  use_repository_button: false
  use_issues_button: false
  use_edit_page_button: false
  use_download_button: false
  use_fullscreen_button: false
  home_page_in_navbar: true
launch_buttons:
  notebook_interface: ""
  binderhub_url: ""
  jupyterhub_url: ""
  thebe: false
  colab_url: ""
sphinx:
  config:
    nb_ipywidgets_js: {}
    html_show_sphinx: false
    html_context: {default_mode: light}   # else the theme logs "invalid theme mode" on file://
    html_show_copyright: false
    suppress_warnings: ["myst.header", "misc.highlighting_failure", "myst.xref_missing"]
"""


def _index(pages: list[Page], root: Path) -> str:
    from sandbox.course import outline
    from sandbox.viz.course import course_map
    lines = ["# Container Standards Lab", "",
             "How containers really work — the appc image format, content addressing, signing, "
             "image discovery, pods, Linux namespaces, CNI networking, CNM and the road to OCI — "
             "taught by driving a small, fully inspectable runtime from notebooks. These pages "
             "are the notebooks and the labs' reference solutions, **executed**, with every "
             "output, picture and stepper step; they need no kernel and no network.", "",
             "![The course map: notebooks in order, labs beside them](course-map.svg)", "",
             "## Notebooks", "", "| notebook | time | you will… |", "|---|---|---|"]
    for p in pages:
        if p.lab is not None:
            continue
        o = outline.NOTEBOOKS.get(Path(p.dest).stem)
        minutes = f"{o.minutes} min" if o else ""
        goals = "; ".join(o.objectives) if o else ""
        lines.append(f"| [{p.title}]({p.dest}) | {minutes} | {goals} |")
    labs = [p for p in pages if p.lab is not None]
    if labs:
        lines += ["", "## Labs: reference solutions", "",
                  "In the workshop each lab is a notebook with **TODO** cells and automatic checks "
                  "(`sandbox lab list`). Here is each reference solution, run, with its check "
                  "passing.", ""]
        lines += [f"- [{p.title}]({p.dest})" for p in labs]
    lines += ["", "## For instructors", "",
              "- [Instructor guide: agendas, talking points, failure points](docs/instructor.md)",
              "- [Which slide is taught where](docs/slide-coverage.md)", ""]
    return "\n".join(lines)


def _toc(pages: list[Page]) -> str:
    out = ["format: jb-book", "root: index", "parts:"]
    for caption, group in (("Notebooks", [p for p in pages if p.lab is None]),
                           ("Lab solutions", [p for p in pages if p.lab is not None])):
        if group:     # Jupyter Book refuses a part without chapters
            out += [f"- caption: {caption}", "  chapters:"]
            out += [f"  - file: {Path(p.dest).with_suffix('')}" for p in group]
    out += ["- caption: For instructors", "  chapters:", "  - file: docs/instructor",
            "  - file: docs/slide-coverage"]
    return "\n".join(out) + "\n"


def _solution(n: int, book: Path) -> Path:
    from sandbox.course import labs
    src = book / "_solutions"
    return labs.write_solution(n, src)


@dataclass
class Report:
    out: Path
    pages: list[Page] = field(default_factory=list)
    execute_s: float = 0.0
    book_s: float = 0.0

    def __str__(self) -> str:
        lines = [f"{p.dest:<46} {p.seconds:6.1f} s  {p.widgets:2d} widget(s) frozen"
                 + (f"  ERROR: {p.error}" if p.error else "") for p in self.pages]
        lines.append(f"executed in {self.execute_s:.0f} s, book built in {self.book_s:.0f} s: "
                     f"{self.out / 'index.html'}")
        return "\n".join(lines)


def build(out: Path, notebooks: list[str] | None = None, labs: list[int] | None = None,
          jobs: int = 2, timeout: int = 600, keep_going: bool = False) -> Report:
    """Execute ``notebooks`` (names like ``"06-cni"``; all when None) and the solutions of
    ``labs`` (all when None), and build the site into ``out`` (its ``index.html``)."""
    from sandbox.course import labs as labs_mod
    from sandbox.course import slides
    from sandbox.viz.course import course_map
    root = config.project_root()
    out = Path(out).resolve()
    book = out / "book"
    if book.exists():
        shutil.rmtree(book)
    book.mkdir(parents=True)
    chs = slides.chapters(root)
    want = [c for c in chs if notebooks is None or c[2].stem in notebooks or c[0] in notebooks]
    pages = [Page(p, f"notebooks/{p.name}", f"{num} · {title}") for num, title, p in want]
    for lab in labs_mod.discover():
        if labs is None or lab.number in labs:
            pages.append(Page(_solution(lab.number, book), f"labs/{lab.folder}.ipynb",
                              f"Lab {lab.number} · {lab.title}", lab=lab.number))
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(lambda p: _execute(p, book, timeout), pages))
    report = Report(out, done, execute_s=time.monotonic() - t0)
    failed = [p for p in done if p.error]
    if failed and not keep_going:
        raise SiteError(f"{len(failed)} page(s) failed to execute: " + "; ".join(
            f"{p.dest}: {p.error}" for p in failed) + " — fix them (or pass --keep-going).")
    shutil.rmtree(book / "_solutions", ignore_errors=True)
    (book / "docs").mkdir()
    for doc in ("instructor.md", "slide-coverage.md"):
        shutil.copy(root / "docs" / doc, book / "docs" / doc)
    (book / "course-map.svg").write_text(course_map(root).pipe(format="svg", encoding="utf-8"))
    (book / "index.md").write_text(_index(done, root))
    (book / "_toc.yml").write_text(_toc(done))
    (book / "_config.yml").write_text(_CONFIG)
    t1 = time.monotonic()
    jb = Path(sys.executable).parent / "jupyter-book"
    cp = subprocess.run([str(jb), "build", str(book), "--path-output", str(out), "--builder", "html"],
                        capture_output=True, text=True, timeout=1200)
    report.book_s = time.monotonic() - t1
    if cp.returncode != 0 or not (out / "_build" / "html" / "index.html").is_file():
        tail = (cp.stdout + cp.stderr).strip().splitlines()[-5:]
        raise SiteError("Jupyter Book could not build the site: " + " / ".join(tail))
    html_dir = out / "_build" / "html"
    for item in html_dir.iterdir():          # the site at out/, the book's sources gone
        shutil.move(str(item), out / item.name)
    shutil.rmtree(out / "_build")
    shutil.rmtree(book)
    for page in out.rglob("*.html"):
        _strip_thebe(page)
    return report


_THEBE = re.compile(r'\s*<script>const THEBE_JS_URL = [^<]*</script>|'
                    r'\s*<script async="async" src="[^"]*sphinx-thebe\.js[^"]*"></script>')


def _strip_thebe(page: Path) -> None:
    """Jupyter Book 1 always loads sphinx-thebe (live code from a CDN, off here) and declares its
    ``THEBE_JS_URL`` constant twice, a console error on every page: both go."""
    text = page.read_text()
    new = _THEBE.sub("", text)
    if new != text:
        page.write_text(new)


def write_times(report: Report, path: Path) -> None:
    """Merge the pages' measured times into ``path`` (notebooks by name, labs as ``lab-N``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    for p in report.pages:
        if p.error or not p.times:
            continue
        data[f"lab-{p.lab}" if p.lab is not None else Path(p.dest).stem] = p.times
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox.viz.site",
                                 description="Build the static course site (all notebooks and lab "
                                             "solutions, executed).")
    ap.add_argument("out", help="output directory (its index.html is the site's front page)")
    ap.add_argument("--notebook", action="append", help="only this notebook (repeat); default all")
    ap.add_argument("--lab", action="append", type=int, help="only this lab's solution (repeat)")
    ap.add_argument("--no-labs", action="store_true", help="no lab solutions")
    ap.add_argument("--no-notebooks", action="store_true", help="no notebooks (labs only)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--times", metavar="JSON",
                    help="also write each page's measured time there (docs/course-times.json)")
    ap.add_argument("--keep-going", action="store_true",
                    help="build the site even when a page failed to execute (its error shows)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        report = build(Path(args.out), [] if args.no_notebooks else args.notebook,
                       [] if args.no_labs else args.lab,
                       jobs=args.jobs, keep_going=args.keep_going)
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 1
    print(report)
    if args.times:
        write_times(report, Path(args.times))
        print(f"wrote the measured times to {args.times}")
    print(f"site built in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
