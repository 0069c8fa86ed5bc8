"""Every notebook runs headless, top to bottom, as a learner reads it, and is stored clean.

Each notebook runs in a real kernel with a fresh state directory of its own, one cell at a time
(tests/learner.py). At its self-check the learner answers each question wrongly — the answer is
refused and explained — then rightly — it is accepted with its explanation — and the answers land
in the progress file; then the rest of the notebook (its clean-up) runs. Where a question's answer
is read from live state, the right answer given here is computed independently in the same kernel
(INDEPENDENT), not taken from the question.

Notebooks are found by globbing, and the suite fails if it finds none (a runner that collects
nothing must not pass silently).
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from learner import Learner

from sandbox._sys import mountinfo
from sandbox.course import outline, selfchecks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_were_collected() -> None:
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path: Path) -> None:
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs; clear them before committing"


# question id -> an expression the kernel evaluates for the right answer, from the notebook's own
# objects or the kernel's state, independently of how the question computes it
INDEPENDENT = {
    ("01-image-format", "my-id"): "image_id[len('sha512-'):][:12]",
    ("03-signing-and-trust", "keyid"): "pgp.read_keys(alice_pub)[0].fingerprint[-16:]",
    ("05-namespaces", "inode"): "str(os.stat(myns).st_ino)",
    ("07-pods", "ip"): ("[l.split()[3].split('/')[0] for l in pod.enter(p.uuid, 'reduce-worker', "
                        "['ip', '-4', '-o', 'addr'], capture=True).stdout.splitlines() "
                        "if ' eth0 ' in l][0]"),
}


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless(path: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    try:
        _learner_runs(path, state)
    finally:
        mountinfo.umount_below(state)     # (a notebook's own clean-up removes what it made)


def _learner_runs(path: Path, state: Path) -> None:
    name = path.stem
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    quiz_at = ids.index("workshop-selfcheck")
    questions = selfchecks.quiz(name).questions
    rest = list(nb.cells[quiz_at + 1:])                    # the notebook's own clean-up
    with Learner(nb, path, state) as me:
        for cell in nb.cells[:quiz_at + 1]:
            me.run(cell)
        right = {q.id: me.run_code(f"print({INDEPENDENT[(name, q.id)]})").strip()
                 for q in questions if (name, q.id) in INDEPENDENT}
        out = me.run_code(
            "import json\nfrom sandbox.viz.quiz import SHOWN\n"
            f"w = SHOWN[{name!r}]\nright = {json.dumps(right)}\nrows = []\n"
            "for item in w.items:\n"
            "    bad = item.try_answer(item.q.a_wrong_answer())\n"
            "    good = item.try_answer(right.get(item.q.id, item.q.right_answer()))\n"
            "    rows.append([item.q.id, bad.correct, bad.text, 'sbx-quiz-wrong' in item.verdict.value or None,\n"
            "                 good.correct, good.text, 'sbx-quiz-right' in item.verdict.value])\n"
            "print(json.dumps(rows)); print(w.status.value)")
        for cell in rest:
            me.run(cell)
    rows = json.loads(out.splitlines()[0])
    assert [r[0] for r in rows] == [q.id for q in questions]
    for (qid, bad_ok, bad_text, _, good_ok, good_text, shown_right), q in zip(rows, questions):
        assert not bad_ok and bad_text.startswith("Not quite"), (name, qid, bad_text)
        if q.kind == "choice":
            assert q.why_not[q.a_wrong_answer()] in bad_text        # this wrong answer, explained
        else:
            assert q.hint in bad_text
        assert good_ok and good_text == q.explanation and shown_right, (name, qid, good_text)
    assert f"{len(questions)} of {len(questions)} answered right" in out
    record = json.loads((state / "progress.json").read_text())
    assert record["notebooks"][name]["visits"] >= 1
    answers = record["quizzes"][name]
    assert {q: (a["correct"], a["attempts"]) for q, a in answers.items()} == {
        q.id: (True, 2) for q in questions}
    assert outline.NOTEBOOKS[name].objectives   # the notebook this journey went through has a header
