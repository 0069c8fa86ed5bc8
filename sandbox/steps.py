"""A record of what an operation did, for notebooks to render.

Library functions take an optional ``steps: Steps | None``; when given, they append one
:class:`Step` per thing they read, hashed, wrote, checked, mounted or executed. Nothing is
recorded (and nothing costs) when ``steps`` is ``None``.

A *snapshotting* ``Steps`` (``Steps(snapshots=True)``, or ``Steps(snapshot=fn)``) also keeps the
state of the world right after each step (``Step.after``: a dict whose ``"kind"`` says what it
describes), so a stepper can draw the picture at step k from what was recorded. Operations
compute that state only when :func:`snapshotting` says a stepper asked for it.
"""
from __future__ import annotations

import json
import time
from collections import namedtuple

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator


# (a namedtuple, not a dataclass: every pod start imports this module)
class Step(namedtuple("Step", "action what detail after t", defaults=(None, 0.0))):
    """``action``: read | hash | write | check | exec | mount | netlink | ...; ``what``: the
    object acted on (a path, an entry, a link, a command); ``detail``: a dict. Only in a
    snapshotting :class:`Steps`: ``after``, the state right after the step (a dict with a
    ``"kind"``), and ``t``, when it was recorded (``time.monotonic()``)."""
    __slots__ = ()

    def __str__(self) -> str:
        from sandbox.errors import printable     # only when a step is shown
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items())
        return printable(f"{self.action:8} {self.what}" + (f"  ({extra})" if extra else ""))


class Steps:
    """An ordered, filterable list of steps with text and HTML views.

    ``snapshots=True``: operations that can describe their state after each step do so
    (``Step.after``). ``snapshot=fn``: ``fn(step)`` is called for every step that comes without a
    state, and its answer kept as ``after`` (a caller watching something of its own)."""

    def __init__(self, snapshots: bool = False,
                 snapshot: Callable[[Step], dict[str, Any] | None] | None = None) -> None:
        self._items: list[Step] = []
        self.snapshots = snapshots or snapshot is not None
        self._snapshot = snapshot

    def add(self, action: str, what: str, *, after: dict[str, Any] | None = None,
            t: float | None = None, **detail: Any) -> Step:
        if not self.snapshots:
            step = Step(action, what, detail)
        else:
            step = Step(action, what, detail, after, time.monotonic() if t is None else t)
            if after is None and self._snapshot is not None:
                step = step._replace(after=self._snapshot(step))
        self._items.append(step)
        return step

    def extend(self, steps: Iterator[Step] | list[Step]) -> None:
        """Append steps recorded elsewhere (e.g. by another process), in their order."""
        self._items.extend(steps)

    def attach(self, start: int, after: dict[str, Any]) -> None:
        """Give the steps from index ``start`` on that recorded no state the state ``after``
        (an operation that starts watching the world after its first steps: nothing had
        changed yet when they were recorded)."""
        for i in range(start, len(self._items)):
            if self._items[i].after is None:
                self._items[i] = self._items[i]._replace(after=after)

    def watching(self, snapshot: Callable[[Step], dict[str, Any] | None]) -> Any:
        """``with steps.watching(fn):`` every step recorded in the block without a state gets
        ``fn(step)`` (the snapshot given at construction, if any, is restored after)."""
        import contextlib

        @contextlib.contextmanager
        def scope() -> Iterator[None]:
            old, self._snapshot = self._snapshot, snapshot
            try:
                yield
            finally:
                self._snapshot = old
        return scope()

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


def snapshotting(steps: Steps | None) -> bool:
    """True when a stepper asked for the state after each step (the costly part is skipped
    otherwise)."""
    return steps is not None and steps.snapshots
