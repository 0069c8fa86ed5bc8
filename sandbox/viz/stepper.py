"""The stepper: replay what an operation recorded, one step at a time, with a picture at each step.

    steps = Steps(snapshots=True)          # the operation keeps its state after every step
    netns.bind(myns, steps=steps)
    stepper(steps)                         # ◀ Back · ▶/⏸ · Next step ▶ · slider · "step 3 of 11"

The picture at step k is drawn from the state recorded right after step k (``Step.after``),
never from a script: the same stepper replays any run, a learner's own included. Which picture a
state gets is decided by its ``"kind"`` (:data:`FRAMES`); a step that recorded no state shows the
state of the step before it. Beside the picture: the detail of step k (the system call and its
arguments, the bytes hashed, the JSON sent and received, the file written).

In a live JupyterLab/Notebook kernel the stepper is an ipywidget. Anywhere else (nbconvert, the
static course site, the headless tests) it is plain HTML holding every step in order, each with
its inline SVG, so nothing is lost without widgets (set ``SANDBOX_STATIC=1`` to force that).
"""
from __future__ import annotations

import html
import importlib
import json
import os
import re
from collections import OrderedDict
from typing import Any, Callable, NamedTuple

import graphviz

from sandbox.palette import kind_color
from sandbox.steps import Step, Steps
from sandbox.viz import static_mode


class Frame(NamedTuple):
    """What a frame function returns for one step: the pictures of the state (graphviz graphs or
    SVG/HTML strings, side by side, full width), an optional HTML note added to the step's
    detail, and ``aside``: pictures shown beside the detail (e.g. the sequence so far)."""

    pictures: list[Any]
    note: str = ""
    aside: list[Any] = []


FrameFn = Callable[[Steps, int], Frame]

#: the kind of a recorded state -> "module:function" that draws it, ``fn(steps, k) -> Frame``
FRAMES: dict[str, str] = {
    "netns": "sandbox.viz.net:netns_frame",
    "net": "sandbox.viz.net:cni_frame",
    "tar": "sandbox.viz.image:hash_frame",
    "resolve": "sandbox.viz.render:resolve_frame",
    "render": "sandbox.viz.render:render_frame",
    "copy": "sandbox.viz.render:copy_frame",
    "pgp": "sandbox.viz.signing:sign_frame",
    "trust": "sandbox.viz.signing:verify_frame",
    "pod": "sandbox.viz.pod:start_frame",
}

_XML_HEAD = re.compile(r"^\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*", re.S)


def live() -> bool:
    """True in a kernel started by a Jupyter server (a browser may show widgets); False under
    nbclient/nbconvert, in plain Python, or with ``SANDBOX_STATIC=1``."""
    if static_mode():
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and hasattr(ip, "kernel") and bool(os.environ.get("JPY_SESSION_NAME"))


def to_svg(picture: Any) -> str:
    """One picture as inline markup: a graphviz graph rendered to SVG (scaled to fit its pane),
    or a string of SVG/HTML as it is."""
    if isinstance(picture, (graphviz.Digraph, graphviz.Graph)):
        svg = picture.pipe(format="svg", encoding="utf-8")
    elif hasattr(picture, "_repr_svg_"):
        svg = picture._repr_svg_()
    elif hasattr(picture, "_repr_html_"):
        return picture._repr_html_()
    else:
        return str(picture)
    svg = _XML_HEAD.sub("", svg, count=1)
    return svg.replace("<svg ", "<svg style='max-width:100%;height:auto' ", 1)


def last_state(steps: Steps, k: int, kind: str) -> tuple[int, dict[str, Any]]:
    """(index, state) of the last step at or before ``k`` that recorded a state of ``kind`` (a
    step that recorded none shows the state of the one before it). Frame functions start here."""
    j = k
    while not (steps[j].after and steps[j].after.get("kind") == kind):
        j -= 1
    return j, steps[j].after


def frame_of(steps: Steps, k: int) -> Frame:
    """The pictures for step ``k`` (0-based): drawn from the state recorded at or before it."""
    j = k
    while j >= 0 and not steps[j].after:
        j -= 1
    early = j < 0
    if early:   # before the first recorded state: show that one, and say so
        j = next((i for i, s in enumerate(steps) if s.after), -1)
        if j < 0:
            return Frame([_card("nothing recorded yet")])
        k = j
    kind = steps[j].after.get("kind", "")
    target = FRAMES.get(kind)
    if target is None:
        return Frame([_card(f"(no picture for a state of kind {kind!r})")])
    mod, fn = target.split(":")
    frame = getattr(importlib.import_module(mod), fn)(steps, k)
    if early:
        frame = frame._replace(note="<div style='color:#555'>(a step before anything was drawn: "
                                    f"the picture is the first one recorded, at step {j + 1})</div>"
                                    + frame.note)
    return frame


def _card(text: str) -> str:
    return (f"<div style='padding:24px;border:1px dashed #999;color:#555;font-size:13px'>"
            f"{html.escape(text)}</div>")


# -- the detail of one step ----------------------------------------------------------------------

def _value_html(v: Any, key: str = "") -> str:
    if isinstance(v, (dict, list)):
        text = json.dumps(v, indent=2, default=str)
    elif isinstance(v, (bytes, bytearray)):
        text = " ".join(f"{b:02x}" for b in v[:256]) + (f" … (+{len(v) - 256} bytes)" if len(v) > 256 else "")
    elif isinstance(v, str) and v[:1] in "{[":
        try:
            text = json.dumps(json.loads(v), indent=2)
        except ValueError:
            text = v
    elif isinstance(v, bool):
        return "yes" if v else "no"
    elif isinstance(v, int) and ("bytes" in key or "size" in key):
        return f"<code>{v:,}</code>"
    elif isinstance(v, float):
        return f"{v:.1f}"
    else:
        text = str(v)
    if "\n" not in text and len(text) <= 90:
        return f"<code>{html.escape(text)}</code>"
    if len(text) > 6000:
        text = text[:6000] + f"\n… ({len(text) - 6000:,} more characters)"
    return (f"<pre style='margin:0;max-height:220px;overflow:auto;white-space:pre-wrap;"
            f"word-break:break-all;font-size:11px'>{html.escape(text)}</pre>")


def detail_html(step: Step, k: int, n: int, note: str = "") -> str:
    """Step ``k`` (1-based) of ``n``: its action, what it acted on, and every recorded detail."""
    chip = (f"<span style='background:{kind_color('now')};color:white;border-radius:3px;"
            f"padding:1px 6px;font-weight:bold'>{html.escape(step.action)}</span>")
    rows = "".join(f"<tr><td style='text-align:left;vertical-align:top;color:#555;padding-right:8px'>"
                   f"{html.escape(str(key))}</td><td style='text-align:left'>{_value_html(v, str(key))}</td></tr>"
                   for key, v in step.detail.items())
    return (f"<div class='sbx-step-detail' style='font-size:12px;line-height:1.35'>"
            f"<div style='margin-bottom:4px'><b>step {k} of {n}</b> {chip}</div>"
            f"<div style='margin-bottom:6px;word-break:break-all'><code>{html.escape(step.what)}</code></div>"
            f"{note}<table style='border-collapse:collapse'>{rows}</table></div>")


# -- the stepper ---------------------------------------------------------------------------------

class Stepper:
    """Replays ``steps``: the picture after step k and the detail of step k.

    ``frame(steps, k) -> Frame`` draws step k (0-based); the default picks the drawing by the
    kind of the recorded state (:func:`frame_of`). ``title`` heads it."""

    def __init__(self, steps: Steps, frame: FrameFn | None = None, *, title: str = "",
                 interval_ms: int = 1500, static: bool | None = None) -> None:
        self.steps, self.title, self.interval_ms = steps, title, interval_ms
        self.frame_fn = frame or frame_of
        self.static = (not live()) if static is None else static
        self._cache: OrderedDict[int, tuple[str, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.steps)

    def render(self, k: int) -> tuple[str, str, str]:
        """(pictures HTML, aside HTML, detail HTML) of step ``k`` (1-based), cached."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        fr = self.frame_fn(self.steps, k - 1)

        def row(pictures: list[Any]) -> str:
            inner = "".join(f"<div class='sbx-step-picture' style='flex:0 1 auto;min-width:0'>"
                            f"{to_svg(p)}</div>" for p in pictures)
            return (f"<div style='display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start'>"
                    f"{inner}</div>") if inner else ""
        out = (row(fr.pictures), row(fr.aside), detail_html(self.steps[k - 1], k, len(self), fr.note))
        self._cache[k] = out
        if len(self._cache) > 64:
            self._cache.popitem(last=False)
        return out

    # -- static: every step in order
    def static_html(self) -> str:
        parts = []
        for k in range(1, len(self) + 1):
            pics, aside, detail = self.render(k)
            parts.append(f"<div class='sbx-step' style='border-top:1px solid #ccc;padding:6px 0'>"
                         f"{pics}<div style='display:flex;flex-wrap:wrap;gap:12px;margin-top:6px'>"
                         + (f"<div style='flex:0 1 auto;max-width:58%'>{aside}</div>" if aside else "")
                         + f"<div style='flex:1 1 300px;min-width:0'>{detail}</div></div></div>")
        head = f"<h4 style='margin:4px 0'>{html.escape(self.title)}</h4>" if self.title else ""
        return (f"<div class='sbx-stepper-static'>{head}<div style='font-size:12px;color:#555'>"
                f"{len(self)} steps, all shown in order (run the notebook in JupyterLab to step "
                f"through them)</div>{''.join(parts)}</div>")

    # -- live: the widget
    def widget(self) -> Any:
        import ipywidgets as w
        n = len(self)
        back = w.Button(description="◀ Back", tooltip="the step before",
                        layout=w.Layout(width="auto"))
        nxt = w.Button(description="Next step ▶", tooltip="the next step", button_style="primary",
                       layout=w.Layout(width="auto"))
        play = w.Play(value=1, min=1, max=n, step=1, interval=self.interval_ms,
                      show_repeat=False, tooltip="play / pause")
        slider = w.IntSlider(value=1, min=1, max=n, readout=False, continuous_update=False,
                             layout=w.Layout(width="260px"))
        w.jslink((play, "value"), (slider, "value"))
        counter = w.HTML(layout=w.Layout(margin="0 0 0 8px"))
        counter.add_class("sbx-step-counter")
        picture = w.HTML(layout=w.Layout(width="100%", overflow="auto"))
        picture.add_class("sbx-step-pictures")
        aside = w.HTML(layout=w.Layout(flex="0 1 auto", max_width="58%", overflow="auto"))
        aside.add_class("sbx-step-aside")
        detail = w.HTML(layout=w.Layout(flex="1 1 300px", min_width="0", max_height="420px",
                                        overflow="auto"))

        def show(k: int) -> None:
            pics, side, det = self.render(k)
            picture.value, aside.value, detail.value = pics, side, det
            back.disabled, nxt.disabled = k <= 1, k >= n
            counter.value = f"<b>step {k} of {n}</b>"     # last: the counter says it is done

        slider.observe(lambda ch: show(ch["new"]), names="value")
        back.on_click(lambda _b: setattr(slider, "value", max(1, slider.value - 1)))
        nxt.on_click(lambda _b: setattr(slider, "value", min(n, slider.value + 1)))
        show(1)
        rows: list[Any] = []
        if self.title:
            rows.append(w.HTML(f"<b>{html.escape(self.title)}</b>"))
        rows.append(w.HBox([back, play, nxt, slider, counter],
                           layout=w.Layout(align_items="center", flex_flow="row wrap")))
        rows.append(picture)
        rows.append(w.HBox([aside, detail], layout=w.Layout(flex_flow="row wrap",
                                                            align_items="flex-start")))
        box = w.VBox(rows)
        box.add_class("sbx-stepper")
        box._sbx_controls = (back, nxt, slider, counter, picture, detail, aside)  # for tests
        return box

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if not len(self):
            return {"text/html": "<div class='sbx-stepper-empty'>Nothing was recorded (yet): pass a "
                                 "<code>Steps(snapshots=True)</code> to the operation, run it, then "
                                 "this cell again.</div>",
                    "text/plain": "<Stepper: nothing recorded yet>"}
        if self.static:
            return {"text/html": self.static_html(),
                    "text/plain": f"<Stepper: {len(self)} steps>"}
        return self.widget()._repr_mimebundle_(include=include, exclude=exclude)


def stepper(steps: Steps, frame: FrameFn | None = None, *, title: str = "",
            static: bool | None = None) -> Stepper:
    """A :class:`Stepper` over ``steps`` (a widget in JupyterLab, every step as HTML elsewhere)."""
    return Stepper(steps, frame, title=title, static=static)
