"""Self-checks: the questions at the end of every notebook, and how an answer is judged.

A :class:`Question` is either **multiple choice** (``choices``; ``answer`` is the index of the
right one; ``why_not`` explains each wrong one) or a **typed value** (``answer`` is the value, or
a function that reads it from the live state the notebook made — "which file holds the address
host-local gave c2?" is answered by the file the kernel finds *now*). Every question carries an
``explanation``: shown once answered right, and folded under the question on the static site.

:class:`Quiz` judges answers and records each one in the progress file
(:func:`sandbox.course.progress.record_quiz`); the widget that asks them is
:func:`sandbox.viz.quiz.self_check`. The questions of each notebook are in
:mod:`sandbox.course.selfchecks`.

A live answer is read twice: when the quiz is shown (right after the cells that made the state,
so "Run All" then a later click still has it) and again when the learner answers — the fresh
value wins when the state is still there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sandbox.errors import SandboxError


class QuizError(SandboxError):
    """A self-check cannot be built (unknown notebook, a question without an answer)."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    text: str          # what to show: why it is right, or why this answer is not


def _plain(value: Any) -> str:
    return " ".join(str(value).strip().split())


@dataclass
class Question:
    id: str
    prompt: str
    explanation: str
    answer: Any                                    # choice index, a value, or a function of nothing
    choices: list[str] | None = None
    why_not: dict[int, str] = field(default_factory=dict)
    hint: str = ""                                 # typed values: shown after a wrong answer
    normalize: Callable[[Any], str] = _plain       # typed values: compared after this
    _seen: Any = field(default=None, repr=False)   # the live answer when the quiz was shown

    @property
    def kind(self) -> str:
        return "choice" if self.choices else "value"

    @property
    def live(self) -> bool:
        return callable(self.answer)

    def snapshot(self) -> None:
        """Read the live answer now (the quiz cell calls this when it is shown)."""
        if self.live:
            try:
                self._seen = self.answer()
            except (OSError, SandboxError, LookupError, ValueError, TypeError):
                self._seen = None

    def expected(self) -> Any:
        """The right answer: a choice index, or the value (read from the live state now, else
        the value seen when the quiz was shown; None when neither exists)."""
        if not self.live:
            return self.answer
        try:
            value = self.answer()
        except (OSError, SandboxError, LookupError, ValueError, TypeError):
            value = None
        return self._seen if value is None else value

    def judge(self, response: Any) -> Verdict:
        """Whether ``response`` (a choice index, or the typed text) is right, and why."""
        if self.kind == "choice":
            if response is None or not isinstance(response, int) or not (
                    0 <= response < len(self.choices or [])):
                return Verdict(False, "Pick one of the answers first.")
            if response == self.answer:
                return Verdict(True, self.explanation)
            why = self.why_not.get(response, "")
            return Verdict(False, f"Not quite. {why}".strip())
        want = self.expected()
        if want is None:
            return Verdict(False, "The state this question asks about is gone (was the notebook "
                                  "cleaned up?): run the notebook's cells again, then answer.")
        given = self.normalize(response or "")
        if not given:
            return Verdict(False, "Type an answer first.")
        accepted = want if isinstance(want, (list, tuple, set, frozenset)) else [want]
        if given in {self.normalize(a) for a in accepted}:
            return Verdict(True, self.explanation)
        return Verdict(False, f"Not quite: {given!r} is not it. {self.hint}".strip())

    def a_wrong_answer(self) -> Any:
        """Some answer that is wrong (for the learner-journey test and the instructor's demo)."""
        if self.kind == "choice":
            return next(i for i in range(len(self.choices or [])) if i != self.answer)
        return "certainly-not-the-answer"

    def right_answer(self) -> Any:
        """The answer to give for a right verdict (a choice index, or the value as text)."""
        if self.kind == "choice":
            return self.answer
        want = self.expected()
        return str(next(iter(want)) if isinstance(want, (list, tuple, set, frozenset)) else want)


@dataclass
class Quiz:
    notebook: str                 # "06-cni": the notebook's file name without .ipynb
    questions: list[Question]
    record: bool = True

    def __post_init__(self) -> None:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise QuizError(f"The self-check of {self.notebook} repeats a question id.")
        for q in self.questions:
            if q.kind == "choice" and not (isinstance(q.answer, int)
                                           and 0 <= q.answer < len(q.choices or [])):
                raise QuizError(f"Question {q.id} of {self.notebook} has no valid answer index.")

    def snapshot(self) -> None:
        for q in self.questions:
            q.snapshot()

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise QuizError(f"The self-check of {self.notebook} has no question {qid!r}.")

    def answer(self, qid: str, response: Any) -> Verdict:
        """Judge one answer and record it in the progress file."""
        verdict = self.question(qid).judge(response)
        if self.record and response not in (None, ""):
            from sandbox.course import progress
            progress.record_quiz(self.notebook, qid, verdict.correct)
        return verdict
