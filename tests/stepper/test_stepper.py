"""The stepper widget and its static fallback, driven kernel-side (ipywidgets' callbacks fire
without a front end), and the snapshotting ``Steps`` it replays."""
from __future__ import annotations

import re

from sandbox.steps import Steps, record, snapshotting
from sandbox.viz import digraph
from sandbox.viz.stepper import FRAMES, Frame, Stepper, frame_of, live, to_svg


def _film(n: int = 4) -> Steps:
    steps = Steps(snapshots=True)
    for i in range(n):
        steps.add("write", f"file{i}", size=i * 1000, after={"kind": "test", "upto": i})
    return steps


def _frame(steps: Steps, k: int) -> Frame:
    g = digraph("t")
    while not steps[k].after:      # a step with no state shows the one before it
        k -= 1
    for i in range(steps[k].after["upto"] + 1):
        g.node(f"f{i}", f"file{i}")
    return Frame([g], note=f"<i>frame {k}</i>")


def test_plain_steps_record_no_state_and_no_time() -> None:
    steps = Steps()
    calls = []
    record(steps, "write", "x", after={"kind": "t"})
    assert not snapshotting(steps) and not snapshotting(None)
    assert steps[0].after is None and steps[0].t == 0.0 and steps[0].detail == {}
    snap = Steps(snapshot=lambda s: calls.append(s.what) or {"kind": "t", "what": s.what})
    snap.add("read", "a")
    snap.add("read", "b", after={"kind": "given"})
    assert snapshotting(snap) and calls == ["a"]           # only for a step without a state
    assert [s.after["kind"] for s in snap] == ["t", "given"]
    assert 0 < snap[0].t <= snap[1].t


def test_widget_steps_forward_and_back_and_changes_the_picture() -> None:
    st = Stepper(_film(4), _frame, static=False)
    box = st.widget()
    back, nxt, slider, counter, picture, detail, _aside = box._sbx_controls
    assert nxt.description.startswith("Next step") and back.description == "◀ Back"
    assert "step 1 of 4" in counter.value and back.disabled and not nxt.disabled
    first = picture.value
    assert "<svg" in first and "file0" in first and "file1" not in first
    nxt.click()
    assert "step 2 of 4" in counter.value and slider.value == 2
    assert picture.value != first and "file1" in picture.value
    assert "frame 1" in detail.value and "file1" in detail.value and "1,000" in detail.value
    slider.value = 4
    assert "step 4 of 4" in counter.value and nxt.disabled
    nxt.click()                                           # at the end: stays
    assert slider.value == 4
    back.click()
    assert "step 3 of 4" in counter.value and "file3" not in picture.value


def test_static_fallback_has_every_step_in_order_as_inline_svg(monkeypatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert not live()
    st = Stepper(_film(3), _frame)
    bundle = st._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    page = bundle["text/html"]
    assert [int(k) for k in re.findall(r"<b>step (\d) of 3</b>", page)] == [1, 2, 3]
    assert page.count("<svg") == 3 and "<?xml" not in page
    monkeypatch.setenv("JPY_SESSION_NAME", "x.ipynb")
    monkeypatch.setenv("SANDBOX_STATIC", "1")
    assert not live()


def test_a_step_without_state_shows_the_state_before_it(monkeypatch) -> None:
    steps = Steps(snapshots=True)
    steps.add("read", "nothing yet")
    assert "nothing recorded yet" in to_svg(frame_of(steps, 0).pictures[0])
    steps.add("write", "a", after={"kind": "netns-unknown-kind"})
    steps.add("check", "no state")
    assert "no picture" in to_svg(frame_of(steps, 2).pictures[0])
    monkeypatch.setitem(FRAMES, "test", f"{__name__}:_frame")
    film = Steps(snapshots=True)
    film.add("read", "config")                                  # before any state: the first one
    film.add("write", "file0", after={"kind": "test", "upto": 0})
    film.add("check", "nothing new")                            # no state: the one before
    film.add("write", "file1", after={"kind": "test", "upto": 1})
    srcs = [frame_of(film, k).pictures[0].source for k in range(4)]
    assert ["file1" in s for s in srcs] == [False, False, False, True]
    assert all("file0" in s for s in srcs)


def test_an_empty_record_says_so_instead_of_failing() -> None:
    bundle = Stepper(Steps(), static=False)._repr_mimebundle_()
    assert "Nothing was recorded" in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in bundle
