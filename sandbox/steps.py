"""A record of what an operation did, for notebooks to render.

Library functions take an optional ``steps: Steps | None``; when given, they append one
:class:`Step` per thing they read, hashed, wrote, checked, mounted or executed. Nothing is
recorded (and nothing costs) when ``steps`` is ``None``.
"""
from __future__ import annotations

import json
from collections import namedtuple

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any, Iterator


# (a namedtuple, not a dataclass: every pod start imports this module)
class Step(namedtuple("Step", "action what detail")):
    """``action``: read | hash | write | check | exec | mount | netlink | ...; ``what``: the
    object acted on (a path, an entry, a link, a command); ``detail``: a dict."""
    __slots__ = ()

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{self.action:8} {self.what}" + (f"  ({extra})" if extra else "")


class Steps:
    """An ordered, filterable list of steps with text and HTML views."""

    def __init__(self) -> None:
        self._items: list[Step] = []

    def add(self, action: str, what: str, **detail: Any) -> Step:
        step = Step(action, what, detail)
        self._items.append(step)
        return step

    def __iter__(self) -> Iterator[Step]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Step:
        return self._items[i]

    def of(self, action: str) -> list[Step]:
        return [s for s in self._items if s.action == action]

    def to_json(self) -> str:
        return json.dumps([{"action": s.action, "what": s.what, **s.detail} for s in self._items],
                          indent=2, default=str)

    def __str__(self) -> str:
        return "\n".join(str(s) for s in self._items)

    def _repr_html_(self) -> str:
        import html
        rows = "".join(
            f"<tr><td>{i}</td><td><b>{html.escape(s.action)}</b></td><td><code>{html.escape(s.what)}</code></td>"
            f"<td>{html.escape(', '.join(f'{k}={v}' for k, v in s.detail.items()))}</td></tr>"
            for i, s in enumerate(self._items, 1))
        return ("<table class='sandbox-steps'><thead><tr><th>#</th><th>action</th><th>what</th>"
                f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table>")


def record(steps: Steps | None, action: str, what: str, **detail: Any) -> None:
    """Append a step when recording is on (a no-op when ``steps`` is None)."""
    if steps is not None:
        steps.add(action, what, **detail)
