"""Where a learner stands: notebooks visited, quiz answers, lab checks — one small JSON file.

``$SANDBOX_DIR/progress.json`` is written by the notebooks (a visit when a notebook's first cell
runs, each quiz answer) and by the lab checks (every ``labs.check`` / ``sandbox lab check``). It
stays on the machine: nothing here opens a socket. ``sandbox reset`` leaves it alone (a reset
cleans the machine, it does not forget what the learner did); ``sandbox reset --all`` removes the
whole state directory, this file with it.

Writers take an exclusive ``flock`` on ``progress.lock`` and replace the file atomically, so a
kernel and a terminal writing at once lose nothing. Recording never fails the caller: progress
is a courtesy, a read-only state directory must not break a check (:func:`record_*` return
False then).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sandbox import config

FILE = "progress.json"
VERSION = 1


def path() -> Path:
    """The progress file of the current state directory."""
    return config.sandbox_dir() / FILE


def _empty() -> dict[str, Any]:
    return {"version": VERSION, "notebooks": {}, "quizzes": {}, "labs": {}}


def load() -> dict[str, Any]:
    """The whole record (empty when there is none, or when it cannot be read)."""
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return _empty()
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return _empty()
    for key in ("notebooks", "quizzes", "labs"):
        if not isinstance(data.get(key), dict):
            data[key] = {}
    return data


@contextmanager
def _locked() -> Iterator[None]:
    d = config.sandbox_dir()
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / "progress.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _update(change: Callable[[dict[str, Any]], None]) -> bool:
    try:
        with _locked():
            data = load()
            change(data)
            tmp = path().with_name(f".{FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path())
        return True
    except OSError:
        return False


def record_visit(notebook: str, now: float | None = None) -> bool:
    """A learner opened (ran the first cell of) ``notebook``, e.g. ``"05-namespaces"``."""
    t = now or time.time()

    def change(d: dict[str, Any]) -> None:
        e = d["notebooks"].setdefault(notebook, {"first": t, "visits": 0})
        e["visits"] = e.get("visits", 0) + 1
        e["last"] = t
    return _update(change)


def record_quiz(notebook: str, question: str, correct: bool, now: float | None = None) -> bool:
    """One answer to one self-check question. A question counts as answered once it was right."""
    t = now or time.time()

    def change(d: dict[str, Any]) -> None:
        e = d["quizzes"].setdefault(notebook, {}).setdefault(
            question, {"attempts": 0, "correct": False})
        e["attempts"] = e.get("attempts", 0) + 1
        e["last"] = t
        if correct and not e.get("correct"):
            e["correct"], e["time"] = True, t
    return _update(change)


def record_lab(number: int, passed: int, total: int, now: float | None = None) -> bool:
    """The verdict of one run of lab ``number``'s checks."""
    t = now or time.time()

    def change(d: dict[str, Any]) -> None:
        e = d["labs"].setdefault(str(number), {})
        e.update(passed=passed, total=total, time=t)
        e["best"] = max(e.get("best", 0), passed)
        if passed == total and total and not e.get("done"):
            e["done"] = t
    return _update(change)


def lab(number: int) -> dict[str, Any] | None:
    """The last check of lab ``number``: ``passed``, ``total``, ``time``, ``best``, ``done``."""
    return load()["labs"].get(str(number))


def summary(notebooks: list[str], quizzes: dict[str, int], labs: list[int]) -> dict[str, Any]:
    """Counts for the course overview: given the course's notebooks, how many questions each
    quiz has and the lab numbers, how far this learner got."""
    d = load()
    answered = {nb: sum(1 for q in d["quizzes"].get(nb, {}).values() if q.get("correct"))
                for nb in quizzes}
    return {
        "notebooks": {nb: d["notebooks"].get(nb) for nb in notebooks},
        "visited": sum(1 for nb in notebooks if nb in d["notebooks"]),
        "quizzes": {nb: (answered[nb], n) for nb, n in quizzes.items()},
        "answered": sum(answered.values()), "questions": sum(quizzes.values()),
        "labs": {n: d["labs"].get(str(n)) for n in labs},
        "labs_passed": sum(1 for n in labs if (d["labs"].get(str(n)) or {}).get("done")),
    }
