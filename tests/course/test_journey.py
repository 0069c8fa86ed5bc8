"""A learner's journey, from a fresh state directory, driven cell by cell in a real kernel.

Every lab: open the student notebook and run it down to its check, which reports every check,
failing ones with the hint the lab promises; then put the reference solution's cells in place of
the TODO cells, restart the kernel and run down to the check again — on top of what the first
attempt left — and it passes; `sandbox lab list` shows
the lab passed, and `sandbox lab check N` in a terminal agrees; the lab module's `mistake`
damages the state as a learner might and the terminal check names it; the clean-up button
removes everything the lab made (no netns, no link, no workspace, no pod).

Every notebook: run it down to its self-check (as a learner reads it), then answer each question
wrongly — the answer is refused and explained — and rightly — it is accepted with its
explanation; the answers land in the progress file. Where a question's answer is read from live
state, the right answer given here is computed independently in the same kernel (INDEPENDENT),
not taken from the question.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from waiting import eventually

from sandbox.course import labs, outline, selfchecks

from .conftest import cell_text

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
LABS = labs.discover(ROOT / "labs")
pytestmark = [pytest.mark.root, pytest.mark.slow]

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


@pytest.fixture(scope="module")
def fresh_state():
    state = Path(tempfile.mkdtemp(prefix="sbx-journey-"))
    yield state
    for lab in LABS:
        subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), "lab", "reset",
                        str(lab.number)], capture_output=True, timeout=120)
    from sandbox._sys import mountinfo
    mountinfo.umount_below(state)
    shutil.rmtree(state, ignore_errors=True)


class Learner:
    """One kernel, one notebook, cells run one at a time."""

    def __init__(self, nb: nbformat.NotebookNode, path: Path, state: Path) -> None:
        self.nb = nb
        self.client = NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
        self.env = {**os.environ, "SANDBOX_DIR": str(state)}
        self.env.pop("SANDBOX_STATIC", None)

    def __enter__(self) -> "Learner":
        self._ctx = self.client.setup_kernel(env=self.env)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

    def run(self, cell: nbformat.NotebookNode) -> str:
        if cell not in self.nb.cells:
            self.nb.cells.append(cell)
        self.client.execute_cell(cell, self.nb.cells.index(cell))
        return cell_text(cell)

    def run_code(self, src: str) -> str:
        return self.run(nbformat.v4.new_code_cell(src))


def _lab_line(state: Path, n: int) -> str:
    """Lab ``n``'s line of `sandbox lab list`."""
    cp = subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), "lab", "list"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return next(l for l in cp.stdout.splitlines() if l.startswith(f"{n:>2}  "))


def _sandbox(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("lab", LABS, ids=[l.folder for l in LABS])
def test_a_learner_does_the_lab(lab: labs.Lab, fresh_state: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    student = nbformat.read(lab.student, as_version=4)
    solution = labs.solution_notebook(lab.number)
    tags = [c.metadata.get("tags", []) for c in student.cells]
    check_at = next(i for i, t in enumerate(tags) if "check" in t)
    cleanup = student.cells[-1]
    assert "cleanup" in cleanup.metadata.get("tags", [])
    first_todo = next(i for i, t in enumerate(tags) if "todo" in t)
    n = len(lab.checks)
    assert f"not started (0/{n})" in _lab_line(fresh_state, lab.number)
    with Learner(student, lab.student, fresh_state) as me:
        for cell in student.cells[:check_at]:
            me.run(cell)                                   # TODO cells as they are
        report = me.run(student.cells[check_at])           # every check reported, with hints
        assert f"of {n} checks pass" in report and "all checks pass" not in report, report
        assert lab.module().STUDENT_HINT in report and "hint:" in report
        assert report.count("\n✓ ") + report.count("\n✗ ") + report.count("\n· ") == n, report
    # the learner puts the solution's cells in place of the TODO cells, restarts the kernel and
    # runs the notebook again, on top of what the first attempt left in the workspace
    fixed = nbformat.read(lab.student, as_version=4)
    for i in range(first_todo, check_at):
        fixed.cells[i] = solution.cells[i]
    with Learner(fixed, lab.student, fresh_state) as me:
        for cell in fixed.cells[:check_at]:
            me.run(cell)
        report = me.run(fixed.cells[check_at])
        assert f"all checks pass ({n} of {n})" in report, report
        line = _lab_line(fresh_state, lab.number)
        assert f"{n}/{n} checks, today" in line and "passed" in line, line

        # the same checks from a terminal, on the state the notebook left
        cp = _sandbox(fresh_state, "lab", "check", str(lab.number))
        assert cp.returncode == 0 and "all checks pass" in cp.stdout, cp.stdout + cp.stderr
        # a mistake learners make on the finished lab: the check says what is wrong (exit 1)
        monkeypatch.setenv("SANDBOX_DIR", str(fresh_state))
        ws = labs.Workspace(lab.number, create=False)
        names = ws.names()
        expected = lab.module().mistake(ws)
        cp = _sandbox(fresh_state, "lab", "check", str(lab.number))
        assert cp.returncode == 1 and expected in cp.stdout, cp.stdout + cp.stderr

        me.run(cleanup)                                    # the clean-up button is shown…
        done = me.run_code("_.button.click(); print(_.output.value)")   # …and pressed
        assert f"removed {fresh_state / 'labs' / f'{lab.number:02d}'}" in done
    assert not (fresh_state / "labs" / f"{lab.number:02d}").exists()
    for name in names.values():
        assert not Path("/run/netns", name).exists(), f"{name} survived the reset"
    # host ends of veths whose peers lived in a deleted netns go when the kernel frees it
    # (only this lab's: its names carry the tags it was handed; other sessions share the host)
    tags = {v.split("-")[2] for v in names.values()}
    eventually(lambda: [l for l in os.listdir("/sys/class/net")
                        if any(l.startswith("sbx" + t) for t in tags)],
               lambda left: not left, what="the lab's host links gone")
    cp = _sandbox(fresh_state, "lab", "reset", str(lab.number))
    assert cp.returncode == 0 and "nothing to remove" in cp.stdout
    assert "(passed today" in _lab_line(fresh_state, lab.number)   # the mistake came after: passed once
    if lab.number == 6:
        from sandbox.pod import stage0 as pod
        assert pod.list_pods() == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_learner_answers_the_self_check(path: Path, fresh_state: Path) -> None:
    name = path.stem
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    quiz_at = ids.index("workshop-selfcheck")
    questions = selfchecks.quiz(name).questions
    rest = list(nb.cells[quiz_at + 1:])                    # the notebook's own clean-up
    with Learner(nb, path, fresh_state) as me:
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
    record = json.loads((fresh_state / "progress.json").read_text())
    assert record["notebooks"][name]["visits"] >= 1
    answers = record["quizzes"][name]
    assert {q: (a["correct"], a["attempts"]) for q, a in answers.items()} == {
        q.id: (True, 2) for q in questions}
    assert outline.NOTEBOOKS[name].objectives   # the notebook this journey went through has a header
