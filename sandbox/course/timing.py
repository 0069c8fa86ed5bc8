"""How long a notebook takes a learner: its cells' measured run time plus a reading model.

The run time is **measured**: the notebook is executed cell by cell in one kernel, as a learner
does (nbclient records when each cell started and finished). The rest is the time a person spends
between the cells, from what the notebook shows them, at these rates:

======================  ==========================================================================
prose                   180 words a minute (technical text; slower than the ~240 a minute adults
                        read non-fiction at)
code                    6 s per non-blank line: read before running
pictures and widgets    20 s per picture (SVG/PNG), widget or HTML table an output shows
text output             1 s per 3 lines, at most 20 s per output
"predict, then run"     60 s per prompt (a markdown cell that starts with **Predict**)
self-check              40 s per question
lab TODO cells          90 s to think, plus typing the solution at 2 characters a second
======================  ==========================================================================

The total is rounded up to the next 5 minutes. ``python -m sandbox.viz.site OUT --times
docs/course-times.json`` executes everything and writes the figures (with their parts, so the
guide can say how each was reached).
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

WORDS_PER_MIN = 180
CODE_LINE_S = 6
PICTURE_S = 20
TEXT_LINES_PER_S = 3
TEXT_MAX_S = 20
PREDICT_S = 60
QUESTION_S = 40
TODO_THINK_S = 90
TYPE_CHARS_PER_S = 2

_PICTURE = ("image/svg+xml", "image/png", "application/vnd.jupyter.widget-view+json")


def _seconds(cell: Any) -> float:
    ex = cell.get("metadata", {}).get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (b - a).total_seconds())


def _words(text: str) -> int:
    text = re.sub(r"<[^>]+>", " ", text)       # tags are not read
    return len(re.findall(r"[\w'`/.-]+", text))


def _output_seconds(o: Any) -> float:
    data = o.get("data", {})
    if any(k in data for k in _PICTURE) or "<table" in "".join(data.get("text/html", "")) \
            or "<svg" in "".join(data.get("text/html", "")):
        return PICTURE_S
    text = "".join(o.get("text", "")) or "".join(data.get("text/plain", ""))
    return min(TEXT_MAX_S, len(text.splitlines()) / TEXT_LINES_PER_S)


def estimate(nb: Any, questions: int = 0, todo_sources: list[str] | None = None) -> dict[str, Any]:
    """The parts (seconds) and the total (minutes) for an *executed* notebook."""
    run = read = look = predict = 0.0
    for c in nb.cells:
        src = c.get("source", "")
        if c.get("cell_type") == "markdown":
            read += _words(src) / WORDS_PER_MIN * 60
            if src.lstrip().startswith("**Predict"):
                predict += PREDICT_S
        elif c.get("cell_type") == "code":
            read += CODE_LINE_S * sum(1 for l in src.splitlines() if l.strip())
            run += _seconds(c)
            look += sum(_output_seconds(o) for o in c.get("outputs", []))
    quiz = QUESTION_S * questions
    todo = sum(TODO_THINK_S + len(s) / TYPE_CHARS_PER_S for s in (todo_sources or []))
    total = run + read + look + predict + quiz + todo
    return {"run_s": round(run), "read_s": round(read), "look_s": round(look),
            "predict_s": round(predict), "quiz_s": round(quiz), "todo_s": round(todo),
            "minutes": int(math.ceil(total / 60 / 5) * 5)}
