"""The slides and the spec excerpt the course follows (``../shared/seed/``), and the coverage
table that maps every slide and spec section to the notebook section that teaches it.

``docs/slide-coverage.json`` maps every slide of the seed (``Slide N`` markers in
``../shared/seed/*.txt``) and every section of the spec excerpt at its top to the notebook
sections that teach them; :func:`coverage_problems` says what is missing or points nowhere,
:func:`coverage_markdown` renders ``docs/slide-coverage.md``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sandbox import config
from sandbox.errors import SandboxError


class CourseError(SandboxError):
    """The course material (seed, coverage table, notebooks) is missing or inconsistent."""


def seed_dir(root: Path | None = None) -> Path:
    """``../shared/seed`` next to the repository (where CI puts it beside the clone)."""
    root = root or config.project_root()
    d = (root.parent / "shared" / "seed").resolve()
    if not d.is_dir() or not list(d.glob("*.txt")):
        raise CourseError(f"The slide seed is missing: expected ../shared/seed/*.txt beside the "
                          f"repository (looked in {d}); check out the shared material next to "
                          "the clone.")
    return d


def _seed_text(seed: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(seed.glob("*.txt")))


_SLIDE = re.compile(r"^Slide (\d+)$")


def seed_slides(seed: Path | None = None) -> dict[int, str]:
    """{slide number: its first line of text} from the ``Slide N`` markers of the seed."""
    lines = _seed_text(seed or seed_dir()).splitlines()
    out: dict[int, str] = {}
    for i, line in enumerate(lines):
        m = _SLIDE.match(line.strip())
        if m:
            n = int(m.group(1))
            text = [l.strip() for l in lines[i + 1:i + 4]
                    if l.strip() and l.strip() != f"Slide {n} text" and not _SLIDE.match(l.strip())]
            out[n] = text[0] if text else ""
    return out


def spec_sections(seed: Path | None = None) -> list[str]:
    """The sections of the spec excerpt that opens the seed (before the first slide): its
    untitled opening (the *app* perspective) and every ``#### Heading``."""
    text = _seed_text(seed or seed_dir())
    head = text.split("\nSlide ", 1)[0]
    out = []
    if "perspective" in head.split("####", 1)[0]:
        out.append("The app perspective")
    out += [m.group(1).strip() for m in re.finditer(r"^#{2,6} (.+)$", head, re.M)]
    return out


def coverage_path(root: Path | None = None) -> Path:
    return (root or config.project_root()) / "docs" / "slide-coverage.json"


def load_coverage(path: Path | None = None) -> dict[str, Any]:
    p = path or coverage_path()
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise CourseError(f"Cannot read the slide-coverage table {p}: {e}") from e


def notebook_headings(path: Path) -> list[str]:
    """Every markdown heading line (``# …``, ``## …``) of a notebook."""
    nb = json.loads(path.read_text())
    out = []
    for c in nb.get("cells", []):
        if c.get("cell_type") == "markdown":
            src = "".join(c.get("source", ""))
            out += [l.strip() for l in src.splitlines() if l.startswith("#")]
    return out


def section_text(path: Path, heading: str) -> str:
    """The text of a notebook section: from the markdown cell holding ``heading`` down to the
    next heading of the same or a higher level (``##`` stops at ``##`` or ``#``), markdown and
    code cells alike. Empty if the heading is not there."""
    nb = json.loads(path.read_text())
    level = len(heading) - len(heading.lstrip("#"))
    out: list[str] = []
    inside = False
    for c in nb.get("cells", []):
        src = "".join(c.get("source", ""))
        lines = src.splitlines()
        if c.get("cell_type") == "markdown":
            for i, line in enumerate(lines):
                if inside and line.startswith("#"):
                    lvl = len(line) - len(line.lstrip("#"))
                    if lvl <= level:
                        out.append("\n".join(lines[:i]))
                        return "\n".join(out)
                if not inside and line.strip() == heading:
                    inside = True
                    lines = lines[i:]
                    break
            if inside:
                out.append("\n".join(lines))
                continue
        elif inside:
            out.append(src)
    return "\n".join(out)


def term_problems(coverage: dict[str, Any], terms: dict[int, list[str]],
                  root: Path | None = None) -> list[str]:
    """One sentence per mapped section that does not mention one of its slide's terms.

    ``terms`` maps a slide number to the words the slide itself uses; ``"a|b"`` accepts either
    (case-insensitive). Every section the coverage table maps the slide to must mention every
    term: a section that only names the slide's number does not teach it."""
    root = root or config.project_root()
    problems = []
    for n, words in sorted(terms.items()):
        entries = coverage.get("slides", {}).get(str(n), {}).get("sections", [])
        if not entries:
            problems.append(f"slide {n} has terms but no section")
        for nb, heading in entries:
            text = section_text(root / nb, heading).lower()
            missing = [w for w in words if not any(a.lower() in text for a in w.split("|"))]
            if missing:
                problems.append(f"slide {n}: {nb} section {heading!r} never mentions "
                                + ", ".join(repr(m) for m in missing))
    return problems


def coverage_problems(coverage: dict[str, Any], slides: dict[int, str], sections: list[str],
                      root: Path | None = None) -> list[str]:
    """One sentence per slide or spec section with no teaching section, and per entry that
    points at a notebook or heading that does not exist ([] = all covered)."""
    root = root or config.project_root()
    problems = []
    table = coverage.get("slides", {})
    for n in sorted(slides):
        if not table.get(str(n), {}).get("sections"):
            problems.append(f"slide {n} ({slides[n]!r}) has no notebook section")
    for s in sections:
        if not coverage.get("spec", {}).get(s):
            problems.append(f"spec section {s!r} has no notebook section")
    headings: dict[str, list[str]] = {}
    entries = [(f"slide {k}", e) for k, v in table.items() for e in v.get("sections", [])]
    entries += [(f"spec section {k!r}", e) for k, v in coverage.get("spec", {}).items() for e in v]
    for what, (nb, heading) in entries:
        p = root / nb
        if not p.is_file():
            problems.append(f"{what}: {nb} does not exist")
            continue
        if nb not in headings:
            headings[nb] = notebook_headings(p)
        if heading not in headings[nb]:
            problems.append(f"{what}: {nb} has no heading {heading!r}")
    return problems


def coverage_markdown(coverage: dict[str, Any], slides: dict[int, str] | None = None) -> str:
    """docs/slide-coverage.md, rendered from the JSON table."""
    lines = ["# Slide coverage", "",
             "Generated from `docs/slide-coverage.json` by `sandbox.course.slides.coverage_markdown` "
             "(tests/course/test_slide_coverage.py checks that every slide of the seed and every "
             "section of its spec excerpt has a section, and that this file is up to date).", "",
             "| slide | on the slide | taught in |", "|---|---|---|"]

    def where(entries: list[list[str]]) -> str:
        return "<br>".join(f"`{nb}` — {h.lstrip('#').strip()}" for nb, h in entries)

    for k, v in sorted(coverage.get("slides", {}).items(), key=lambda kv: int(kv[0])):
        title = (slides or {}).get(int(k), v.get("title", ""))
        lines.append(f"| {k} | {title.replace('|', '/')} | {where(v.get('sections', []))} |")
    lines += ["", "| spec excerpt section | taught in |", "|---|---|"]
    for k, v in coverage.get("spec", {}).items():
        lines.append(f"| {k} | {where(v)} |")
    return "\n".join(lines) + "\n"


def chapters(root: Path | None = None) -> list[tuple[str, str, Path]]:
    """(number, title, path) of every notebook in notebooks/, in order. A number may carry a
    letter (``06b``: a notebook between 06 and 07)."""
    root = root or config.project_root()
    out = []
    for p in sorted((root / "notebooks").glob("[0-9][0-9]*-*.ipynb")):
        hs = [h for h in notebook_headings(p) if h.startswith("# ")]
        title = hs[0][2:].split("·", 1)[-1].strip() if hs else p.stem
        out.append((p.name.split("-", 1)[0], title, p))
    return out
