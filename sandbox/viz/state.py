"""The live state view: what the kit has made on this machine right now (:mod:`sandbox.course.state`).

    from sandbox.viz.state import state_view
    state_view()            # Refresh on demand; tick "every 3 s" to watch state come and go

Every refresh compares with the one before: what appeared is marked **new**, what went away is
listed struck through, so a learner (and the instructor) sees a `CNI ADD` create a veth and a
lease, and a `DEL` remove them. Notebook 00 explains it; every notebook opens it from its
toolbar. With ``SANDBOX_STATIC=1`` (the static site) the cell shows one snapshot as HTML.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any

from sandbox.course import state as state_mod
from sandbox.palette import STATUS

_CSS = ("<style>.sbx-state{font:12px/1.45 sans-serif}.sbx-state h5{margin:6px 0 2px;font-size:12px}"
        ".sbx-state ul{margin:0 0 0 14px;padding:0}.sbx-state li{list-style:square}"
        ".sbx-state .new{color:%s;font-weight:bold}.sbx-state .gone{color:%s;"
        "text-decoration:line-through}.sbx-state .empty{color:%s}</style>"
        % (STATUS["new"], STATUS["muted"], STATUS["muted"]))


def render(snap: state_mod.Snapshot, before: state_mod.Snapshot | None = None,
           when: float | None = None) -> str:
    """A snapshot as HTML, marking what is new since ``before`` and what went away."""
    new, gone = state_mod.diff(before, snap)
    parts = [_CSS, "<div class='sbx-state'>"]
    stamp = time.strftime("%H:%M:%S", time.localtime(when or time.time()))
    total = sum(len(v) for v in snap.values())
    parts.append(f"<div class='empty'>{total} object(s) the kit made, read at {stamp}"
                 + (f"; <span class='new'>{len(new)} new</span>" if new else "")
                 + (f"; <span class='gone'>{sum(len(v) for v in gone.values())} gone</span>"
                    if gone else "") + "</div>")
    for section in state_mod.SECTIONS:
        entries = snap.get(section, [])
        lost = gone.get(section, [])
        parts.append(f"<h5>{html.escape(section)} ({len(entries)})</h5>")
        if not entries and not lost:
            parts.append("<div class='empty'>none</div>")
            continue
        items = []
        for e in entries:
            badge = "<span class='new'>new</span> " if e.key in new else ""
            items.append(f"<li>{badge}<code>{html.escape(e.text)}</code></li>")
        items += [f"<li class='gone'><code>{html.escape(e.text)}</code></li>" for e in lost]
        parts.append(f"<ul>{''.join(items)}</ul>")
    parts.append("</div>")
    return "".join(parts)


class StateView:
    """The widget: a Refresh button, an "every N s" toggle, and the rendered snapshot."""

    def __init__(self, every: float = 3.0, prefix: str | None = None) -> None:
        import ipywidgets as w
        from sandbox import config
        self.prefix = prefix or config.NAME_PREFIX
        self.every = every
        self.before: state_mod.Snapshot | None = None
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="100px"))
        self.auto = w.ToggleButton(value=False, description=f"every {every:g} s",
                                   icon="clock-o", layout=w.Layout(width="110px"))
        self.body = w.HTML()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.auto.observe(self._toggle, names="value")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.box = w.VBox([w.HBox([self.refresh_button, self.auto]), self.body])
        self.box.add_class("sbx-state-view")
        self.refresh()

    def refresh(self) -> state_mod.Snapshot:
        snap = state_mod.snapshot(self.prefix)
        self.body.value = render(snap, self.before)
        self.before = snap
        return snap

    def _toggle(self, change: Any) -> None:
        if change["new"]:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="sbx-state-view", daemon=True)
            self._thread.start()
        else:
            self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.refresh()
            except Exception as e:  # noqa: BLE001 - a background refresh must not die silently
                self.body.value = f"<div class='sbx-state'>refresh failed: {html.escape(str(e))}</div>"
                self.auto.value = False
                return

    def close(self) -> None:
        self._stop.set()
        self.box.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.box)


class _Static:
    def __init__(self, html_text: str) -> None:
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html


def state_view(every: float = 3.0) -> Any:
    """The live state view (a widget), or one snapshot as HTML on the static site."""
    from sandbox.viz import static_mode
    if static_mode():
        return _Static(render(state_mod.snapshot()))
    return StateView(every)
