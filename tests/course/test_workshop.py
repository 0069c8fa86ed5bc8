"""The workshop around the notebooks: self-check questions and their widget, the progress file and
the course overview, the toolbar, and the live state view against real kernel objects.

Widgets are driven the way the front end drives them (set the input's value, press the button:
ipywidgets run their Python callbacks without a browser); the browser test looks at them rendered.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.course import labs, progress, quiz, selfchecks, state
from sandbox.course.quiz import Question, Quiz
from sandbox.net import netns


def _mc() -> Question:
    return Question("q", "Pick b", "b is right because of the spec.", answer=1,
                    choices=["a", "b", "c"], why_not={0: "a is the old name.", 2: "c is a bridge."})


def test_multiple_choice_explains_wrong_and_right_answers(sandbox_dir: Path) -> None:
    qz = Quiz("99-test", [_mc()])
    v = qz.answer("q", 0)
    assert not v.correct and "a is the old name." in v.text
    v = qz.answer("q", 2)
    assert not v.correct and "c is a bridge." in v.text
    v = qz.answer("q", 1)
    assert v.correct and v.text == "b is right because of the spec."
    rec = progress.load()["quizzes"]["99-test"]["q"]
    assert rec["attempts"] == 3 and rec["correct"] is True
    assert not qz.answer("q", None).correct and progress.load()["quizzes"]["99-test"]["q"]["attempts"] == 3


def test_typed_value_is_read_from_live_state(tmp_path: Path, sandbox_dir: Path) -> None:
    f = tmp_path / "lease"
    f.write_text("10.22.0.3")
    q = Question("ip", "Which address?", "host-local wrote it.", answer=lambda: f.read_text(),
                 hint="Look in the lease file.")
    qz = Quiz("99-test", [q])
    qz.snapshot()
    assert qz.answer("ip", " 10.22.0.3 ").correct
    f.write_text("10.22.0.4")                       # the state changed: the fresh value counts
    assert not qz.answer("ip", "10.22.0.3").correct and qz.answer("ip", "10.22.0.4").correct
    f.unlink()                                       # the state is gone: what was seen counts
    assert qz.answer("ip", "10.22.0.3").correct
    wrong = qz.answer("ip", "1.2.3.4")
    assert not wrong.correct and "Look in the lease file." in wrong.text


def test_quiz_refuses_a_choice_question_without_a_valid_answer() -> None:
    with pytest.raises(quiz.QuizError):
        Quiz("99-test", [Question("q", "?", "!", answer=5, choices=["a"])])


def test_every_self_check_has_3_to_5_explained_questions() -> None:
    assert selfchecks.QUIZZES, "no self-checks"
    for name, n in selfchecks.counts().items():
        assert 3 <= n <= 5, (name, n)
        for q in selfchecks.quiz(name).questions:
            assert q.explanation and q.prompt, (name, q.id)
            if q.kind == "choice":
                wrong = set(range(len(q.choices))) - {q.answer}
                assert set(q.why_not) == wrong, f"{name}/{q.id}: explain every wrong choice"
            else:
                assert q.hint, f"{name}/{q.id}: a typed answer needs a hint for wrong tries"


def test_quiz_widget_as_a_learner_uses_it(sandbox_dir: Path) -> None:
    from sandbox.viz.quiz import SHOWN, self_check
    widget = self_check("00")
    assert SHOWN["00-welcome"] is widget
    item = widget.items[0]
    item.try_answer(item.q.a_wrong_answer())
    assert "sbx-quiz-wrong" in item.verdict.value and "Not quite" in item.verdict.value
    assert "0 of 4 answered right" in widget.status.value
    item.try_answer(item.q.right_answer())
    assert "sbx-quiz-right" in item.verdict.value and "✓ Right." in item.verdict.value
    assert "1 of 4 answered right" in widget.status.value
    typed = next(i for i in widget.items if i.q.kind == "value")
    assert typed.try_answer(str(sandbox_dir / "progress.json")).correct


def test_static_quiz_folds_every_answer(monkeypatch: pytest.MonkeyPatch, sandbox_dir: Path) -> None:
    from sandbox.viz.quiz import self_check
    monkeypatch.setenv("SANDBOX_STATIC", "1")
    html = self_check("00-welcome")._repr_html_()
    assert html.count("<details>") == 4 and "sandbox doctor" in html
    assert not (sandbox_dir / "progress.json").exists()


def test_progress_and_the_course_overview(sandbox_dir: Path) -> None:
    from sandbox.viz import course
    assert "0 of" in course.overview_html()
    progress.record_visit("00-welcome")
    progress.record_visit("00-welcome")
    progress.record_lab(4, 7, 7)
    progress.record_lab(4, 3, 7)      # a later check after a change: not passed now, passed once
    for q in selfchecks.quiz("00").questions:
        progress.record_quiz("00-welcome", q.id, True)
    data = json.loads((sandbox_dir / "progress.json").read_text())
    assert data["notebooks"]["00-welcome"]["visits"] == 2
    assert data["labs"]["4"]["best"] == 7 and data["labs"]["4"]["passed"] == 3 and data["labs"]["4"]["done"]
    html = course.overview_html()
    assert "1 of " in html and "notebooks visited" in html
    assert "4 of " in html and f"1 of {len(labs.discover())} labs passed" in html
    box = course.course_overview()
    progress.record_visit("01-image-format")
    box.refresh()
    assert "2 of " in box.children[1].value


def test_progress_survives_concurrent_writers(sandbox_dir: Path) -> None:
    import sys
    code = ("from sandbox.course import progress\n"
            "for i in range(40): progress.record_quiz('99-x', f'q{i}', True)")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    for i in range(40):
        progress.record_visit(f"nb{i}")
    assert all(p.wait(timeout=60) == 0 for p in procs)
    data = progress.load()
    assert len(data["notebooks"]) == 40
    assert all(e["attempts"] == 3 for e in data["quizzes"]["99-x"].values())


def test_toolbar_records_the_visit_and_opens_panels(sandbox_dir: Path) -> None:
    from sandbox.viz import course
    bar = course.toolbar("05-namespaces")
    assert "05-namespaces" in progress.load()["notebooks"]
    bar.pick.value = "doctor"
    assert "root" in bar.panel.children[0].value
    bar.pick.value = "state view"
    assert "network namespaces" in bar.panel.children[0].children[1].value
    bar.pick.value = "–"
    assert bar.panel.children == ()


@pytest.mark.root
def test_state_view_sees_kernel_objects_come_and_go(sandbox_dir: Path) -> None:
    from sandbox._sys import libc
    from sandbox.net.cni.cache import Attachment, Cache
    from sandbox.net.plugins.host_local import Store
    from sandbox.viz.state import StateView
    prefix = netns.unique_name("sbx-wsst")
    view = StateView(prefix=prefix)
    assert "network namespaces (0)" in view.body.value
    name = prefix + "-a"
    netns.create(name)
    mnt = sandbox_dir / "notebooks" / "99" / "mnt"
    try:
        netns.run(name, ["ip", "addr", "add", "10.250.9.1/24", "dev", "lo"], check=True)
        work = sandbox_dir / "notebooks" / "99" / "work"
        Cache(work / "cache").put(Attachment("sbx-wsnet", "c2-id", "eth0",
                                             result={"ips": [{"address": "10.250.9.7/24"}]}))
        with Store(work / "networks", "sbx-wsnet") as s:
            s.reserve("c2-id", "eth0", __import__("ipaddress").ip_address("10.250.9.7"), 0)
        mnt.mkdir(parents=True)
        libc.mount("tmpfs", str(mnt), "tmpfs")
        view.refresh()
        body = view.body.value
        assert f"{name}: lo" in body and "10.250.9.1/24" in body
        assert "sbx-wsnet: c2-id eth0 10.250.9.7/24" in body
        assert f"sbx-wsnet: 10.250.9.7 → c2-id eth0 — {work / 'networks' / 'sbx-wsnet' / '10.250.9.7'}" in body
        assert str(mnt) in body and "class='new'>new</span>" in body
        snap = state.snapshot(prefix)
        assert [e.key for e in snap["network namespaces"]] == [f"netns {name}"]
    finally:
        libc.umount(str(mnt))
        netns.delete(name)
    view.refresh()
    assert "class='gone'><code>" + name in view.body.value
    assert "network namespaces (0)" in view.body.value


def test_state_view_static(monkeypatch: pytest.MonkeyPatch, sandbox_dir: Path) -> None:
    from sandbox.viz.state import state_view
    monkeypatch.setenv("SANDBOX_STATIC", "1")
    html = state_view()._repr_html_()
    assert "pods (0)" in html and "IPAM leases" in html
