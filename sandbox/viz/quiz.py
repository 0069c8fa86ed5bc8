"""The self-check widget at the end of every notebook (questions: :mod:`sandbox.course.selfchecks`).

    from sandbox.viz.quiz import self_check
    self_check("06-cni", rt=rt, c2=c2)      # live objects the questions read their answers from

Each question shows its prompt, the choices (or a text box for a typed value), a **Check**
button and the verdict: why a wrong answer is wrong, the explanation once it is right. Every
answer goes to the progress file (the course overview in notebook 00 counts them).

With ``SANDBOX_STATIC=1`` (the static course site, ``make site``) there is no kernel to judge an
answer, so the cell shows plain HTML instead: each question with its answer and explanation
folded under it (``<details>``).
"""
from __future__ import annotations

import html
import re
from typing import Any

from sandbox.course.quiz import Question, Quiz, Verdict
from sandbox.palette import STATUS
from sandbox.viz import static_mode

#: the quiz each notebook showed last in this kernel (the learner-journey test answers them)
SHOWN: dict[str, "QuizWidget"] = {}


def inline(text: str) -> str:
    """The questions' light markup as HTML: `code` and **bold**, everything else escaped."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _verdict_html(v: Verdict) -> str:
    colour = STATUS["ok"] if v.correct else STATUS["bad"]
    mark = "✓ Right." if v.correct else "✗"
    return (f"<div class='sbx-quiz-verdict sbx-quiz-{'right' if v.correct else 'wrong'}' "
            f"style='color:{colour}'><b>{mark}</b> {inline(v.text)}</div>")


class QuizItem:
    """One question: its input, the Check button, the verdict."""

    def __init__(self, quiz: Quiz, q: Question, on_answer: Any) -> None:
        import ipywidgets as w
        self.quiz, self.q, self._on_answer = quiz, q, on_answer
        self.correct = False
        prompt = w.HTML(f"<div class='sbx-quiz-prompt'><b>{inline(q.prompt)}</b></div>")
        if q.kind == "choice":
            self.input = w.RadioButtons(options=[(c, i) for i, c in enumerate(q.choices or [])],
                                        value=None, layout=w.Layout(width="auto"))
        else:
            self.input = w.Text(placeholder="type your answer", layout=w.Layout(width="420px"))
        self.button = w.Button(description="Check", button_style="info",
                               layout=w.Layout(width="90px"))
        self.button.on_click(lambda _: self.check())
        self.verdict = w.HTML()
        self.box = w.VBox([prompt, self.input, w.HBox([self.button]), self.verdict])
        self.box.add_class("sbx-quiz-item")

    def check(self) -> Verdict:
        v = self.quiz.answer(self.q.id, self.input.value)
        self.verdict.value = _verdict_html(v)
        self.correct = self.correct or v.correct
        self._on_answer()
        return v

    def try_answer(self, response: Any) -> Verdict:
        """Set the input and press Check, as a learner would."""
        self.input.value = response
        return self.check()


class QuizWidget:
    """The self-check of one notebook, as ipywidgets."""

    def __init__(self, quiz: Quiz) -> None:
        import ipywidgets as w
        self.quiz = quiz
        self.status = w.HTML()
        self.items = [QuizItem(quiz, q, self._update) for q in quiz.questions]
        head = w.HTML(f"<h4 style='margin:4px 0'>Self-check · {len(self.items)} questions</h4>"
                      "<div style='font-size:12px'>Answer, then press Check: a wrong answer is "
                      "explained, a right one too. Your answers stay on this machine "
                      "(progress in notebook 00).</div>")
        self.box = w.VBox([head, *(i.box for i in self.items), self.status])
        self.box.add_class("sbx-quiz")
        self._update()

    def _update(self) -> None:
        done = sum(i.correct for i in self.items)
        self.status.value = f"<small>{done} of {len(self.items)} answered right</small>"

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.box)


def static_html(quiz: Quiz) -> str:
    """Every question with its answer and explanation folded under it."""
    parts = [f"<div class='sbx-quiz-static'><h4>Self-check · {len(quiz.questions)} questions</h4>"]
    for n, q in enumerate(quiz.questions, 1):
        parts.append(f"<div class='sbx-quiz-item'><p><b>{n}. {inline(q.prompt)}</b></p>")
        if q.kind == "choice":
            parts.append("<ol type='a'>" + "".join(f"<li>{inline(c)}</li>" for c in q.choices or [])
                         + "</ol>")
            answer = f"({chr(ord('a') + q.answer)}) {inline((q.choices or [])[q.answer])}"
        else:
            want = q.expected()
            answer = (f"<code>{html.escape(q.right_answer())}</code>" + (" (in this run)" if q.live else "")
                      if want is not None else "(read from the live state when you run the notebook)")
        parts.append(f"<details><summary>Answer</summary><p>{answer}</p><p>{inline(q.explanation)}"
                     "</p></details></div>")
    parts.append("</div>")
    return "".join(parts)


class _StaticQuiz:
    def __init__(self, quiz: Quiz) -> None:
        self.quiz = quiz

    def _repr_html_(self) -> str:
        return static_html(self.quiz)

    def __repr__(self) -> str:
        return f"Self-check of {self.quiz.notebook}: {len(self.quiz.questions)} questions"


def self_check(notebook: str, **live: Any) -> Any:
    """The self-check of ``notebook`` (``"06-cni"``): a widget, or static HTML for the site.
    ``live``: the notebook's objects the questions read their answers from."""
    from sandbox.course import selfchecks
    quiz = selfchecks.quiz(notebook, **live)
    quiz.snapshot()
    if static_mode():
        return _StaticQuiz(quiz)
    widget = SHOWN[quiz.notebook] = QuizWidget(quiz)
    return widget
