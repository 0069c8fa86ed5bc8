"""Every notebook opens with objectives, prerequisites and its measured time, has the toolbar,
its predict prompts and troubleshooting boxes, and ends with a self-check — and the cells the
workshop adds are exactly what sandbox.course.outline writes (a test fails when one is stale).
The instructor guide's agendas add up to the notebooks' own measured estimates.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sandbox.course import doctor, outline, selfchecks, slides
from sandbox.course import labs

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_notebooks_were_collected() -> None:
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_and_ends_as_promised(path: Path) -> None:
    name = path.stem
    assert name in outline.NOTEBOOKS, f"{name}: add its objectives to sandbox/course/outline.py"
    o = outline.NOTEBOOKS[name]
    assert 3 <= len(o.objectives) <= 5
    assert all(b in outline.NOTEBOOKS for b in o.before)
    nb = json.loads(path.read_text())
    assert outline.workshop_cells(name, nb) == nb, (
        f"{path.name}: the workshop's cells are stale: `.venv/bin/python -m sandbox.course.outline --write`")
    ids = [c["id"] for c in nb["cells"]]
    assert ids[1:3] == [outline.HEADER_ID, outline.TOOLBAR_ID]
    header = "".join(nb["cells"][1]["source"])
    minutes = outline.minutes(name)
    assert minutes > 0 and f"**Time:** about {minutes} minutes" in header
    assert header.count("\n- ") == len(o.objectives)
    assert name in selfchecks.QUIZZES and "workshop-selfcheck" in ids
    quiz_at = ids.index("workshop-selfcheck")
    after = "".join("".join(c["source"]) for c in nb["cells"][quiz_at + 1:] if c["cell_type"] == "code")
    assert "self_check(" not in after
    texts = ["".join(c["source"]) for c in nb["cells"]]
    if name != "00-welcome":
        assert any(t.startswith("**Predict, then run:**") for t in texts), f"{name}: no prediction"
    assert any(t.startswith("> **If the next cells fail**") for t in texts), f"{name}: no box"


def test_troubleshooting_boxes_name_real_doctor_checks() -> None:
    for name, extra in outline.EXTRA.items():
        for kind, _, text in extra:
            if kind != "trouble":
                continue
            cmd = re.search(r"`sandbox doctor([a-z ]*)`", text)
            assert cmd, (name, text)
            assert set(cmd.group(1).split()) <= set(doctor.CHECKS), (name, cmd.group(1))


def test_every_notebook_and_lab_has_a_measured_time() -> None:
    times = outline.load_times()
    for p in NOTEBOOKS:
        assert times[p.stem]["minutes"] > 0, p.stem
    for lab in labs.discover():
        assert times[f"lab-{lab.number}"]["minutes"] > 0
        header = labs.student_notebook(lab.number).cells[0].source
        assert f"**Time:** about {times[f'lab-{lab.number}']['minutes']} minutes" in header


def test_instructor_guide_is_current_and_its_agendas_add_up() -> None:
    text = (ROOT / "docs" / "instructor.md").read_text()
    assert outline.agenda_markdown() in text, "agendas stale: python -m sandbox.course.outline --write"
    assert outline.slides_markdown() in text, "talking points stale: same command"
    times = outline.load_times()
    for kind in outline.AGENDAS:
        block = text.split(f"### {kind.capitalize()} (")[1].split("\n### ")[0]
        rows = re.findall(r"^\| (\d\d:\d\d) \| (\d+) \| (.+?) \|", block, re.M)
        assert rows
        total = 0
        for start, mins, item in rows:
            name = re.sub(r"\[(.+?)\]\(.*", r"\1", item)
            key = f"lab-{name[4:]}" if name.startswith("lab ") else name
            if key in times:
                assert int(mins) == times[key]["minutes"], (kind, key)
            total += int(mins)
        h, m = re.search(r"^(\d+) h (\d+) min\)", block).groups()
        assert total == int(h) * 60 + int(m)
        assert f"with set-up, breaks and wrap-up: {total} min" in block
    half = sum(int(m) for _, m, _ in re.findall(
        r"^\| (\d\d:\d\d) \| (\d+) \| (.+?) \|", text.split("### Half day")[1].split("### Full day")[0], re.M))
    assert 150 <= half <= 240, "a half day is three to four hours"


def test_every_slide_has_a_talking_point() -> None:
    cov = slides.load_coverage()
    missing = [k for k in cov["slides"] if int(k) not in outline.TALKING]
    assert not missing, f"slides without a talking point in sandbox/course/outline.py: {missing}"


def test_instructor_guide_links_resolve() -> None:
    text = (ROOT / "docs" / "instructor.md").read_text()
    for target in re.findall(r"\]\((\.\./[^)]+)\)", text):
        assert (ROOT / "docs" / target).resolve().exists(), target
    for section in ("## Agendas", "## Room set-up", "## Talking points per slide",
                    "## Known failure points and fixes", "## The day before",
                    "## How the times were measured"):
        assert section in text
    for knob in ("LAB_EXTRA_CA_DIR", "sandbox doctor", "USB"):
        assert knob in text
