"""The self-check questions at the end of each notebook (see :mod:`sandbox.course.quiz`).

One function per notebook, named after it in :data:`QUIZZES`; it takes the notebook's live objects
as keyword arguments (all optional: without them the questions still exist, so the course
overview can count them) and returns 3–5 questions. A typed value that depends on what the
notebook made is a function evaluated against the live state, never a constant.
"""
from __future__ import annotations

from typing import Any, Callable

from sandbox.course.quiz import Question, Quiz, QuizError


def _welcome(**live: Any) -> list[Question]:
    return [
        Question(
            "doctor", "A cell fails with `PermissionError: [Errno 1] Operation not permitted` "
            "while it creates a network namespace. What do you run first?",
            "`sandbox doctor` runs the environment checks (root, netns, overlay, cgroups, tools, "
            "state dir, leftovers) and prints one line each with the fix; a namespace needs root "
            "(CAP_SYS_ADMIN), which its `root` and `netns` lines check.",
            answer=1,
            choices=["`sandbox reset`", "`sandbox doctor`", "restart JupyterLab",
                     "`pip install --upgrade sandbox`"],
            why_not={0: "`sandbox reset` removes what the kit made; it cannot give this process "
                        "the right to make namespaces.",
                     2: "A new kernel runs as the same user with the same rights.",
                     3: "The kit is installed from this checkout; nothing is missing from it."}),
        Question(
            "state-view", "You ran a cell that should have created a veth pair. Where do you see, "
            "right now, whether it exists and in which namespace?",
            "The live state view reads the kernel and the kit's files at each refresh: the "
            "namespaces with their links and addresses, CNI cache entries, leases, pods, keys, "
            "trees and mounts — new things are marked, gone things struck through.",
            answer=2,
            choices=["in the notebook's last output", "in `docs/course.md`",
                     "in the live state view (Refresh)", "in the progress file"],
            why_not={0: "An output shows what a cell printed when it ran, not what exists now.",
                     1: "The docs describe the kit; they do not read this machine.",
                     3: "The progress file records what you did in the course, not kernel state."}),
        Question(
            "lab-solution", "How do you get a lab's reference solution?",
            "Solutions are not stored beside the student notebook; `sandbox lab solution N` writes "
            "`labs/NN-…/solution.ipynb` when you ask (try the lab first).",
            answer=0,
            choices=["`sandbox lab solution N`", "open `labs/NN-…/solution/lab.ipynb`",
                     "run the check cell until it gives up", "it is not available"],
            why_not={1: "There is no solution folder in the repository any more: nothing to "
                        "peek at by accident.",
                     2: "The check only gives hints for what is still missing.",
                     3: "It is available, on request."}),
        Question(
            "progress", "Where does the course overview read your progress from?",
            "From `$SANDBOX_DIR/progress.json` on this machine: notebooks visited, quiz answers and "
            "lab checks are written there, and nothing leaves the machine.",
            answer="progress.json",
            hint="It is a small JSON file in the state directory.",
            normalize=lambda v: str(v).strip().rsplit("/", 1)[-1]),
    ]


#: notebook file name (without .ipynb) -> its questions
QUIZZES: dict[str, Callable[..., list[Question]]] = {
    "00-welcome": _welcome,
}


def _name(notebook: str) -> str:
    if notebook in QUIZZES:
        return notebook
    for name in QUIZZES:
        if name.split("-", 1)[0] == notebook:
            return name
    raise QuizError(f"There is no self-check for notebook {notebook!r}; there are: "
                    f"{', '.join(QUIZZES)}.")


def quiz(notebook: str, **live: Any) -> Quiz:
    """The self-check of ``notebook`` (its file name, or its number ``"06"``)."""
    name = _name(notebook)
    return Quiz(name, QUIZZES[name](**live))


def counts() -> dict[str, int]:
    """How many questions each notebook's self-check has."""
    return {name: len(fn()) for name, fn in QUIZZES.items()}
