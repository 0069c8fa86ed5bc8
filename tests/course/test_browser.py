"""A real browser: Debian's chromium, driven by Python playwright, opens JupyterLab, runs the
notebooks and uses what they show.

* the welcome notebook: the rendered graphviz SVG and a live ipywidget (picking a slide in the
  dropdown makes the kernel update the text next to it);
* every notebook with a stepper (01 02 03 05 06 07): Run All succeeds, a button "Next step"
  exists in an output, clicking it advances the counter ("step 2 of N") and changes the picture
  (an inline <svg>), and the browser console shows no error. Each stepper is photographed at
  step 1 and at its last step (1280×800); with ``$SANDBOX_SCREENSHOTS`` set (``make
  screenshots`` does) they are kept there to look at, otherwise they go to the module's temporary
  directory and are removed with it (a test leaves nothing in /tmp).

One JupyterLab server and one browser serve every notebook. JupyterLab listens on 127.0.0.1
only, on a free port, with a token; the news feed and the update check are off, and cells are
not virtualised (every output is in the DOM). The notebooks are copies in a temporary directory
(autosave must never write outputs into the repository). Each notebook's kernel is shut down
after its test; the server is stopped by its PID and every temporary directory removed.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
WELCOME = "00-welcome.ipynb"
STEPPER_NOTEBOOKS = ["01-image-format", "02-rendering", "03-signing-and-trust", "05-namespaces",
                     "06-cni", "07-pods"]
SHOTS = os.environ.get("SANDBOX_SCREENSHOTS")
VIEWPORT = {"width": 1280, "height": 800}
SHOWN = ".jp-NotebookPanel:not(.lm-mod-hidden)"       # the notebook in view, not another tab

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:   # 127.0.0.1 only
        return r.status, r.read()


def _delete(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=20).close()


@pytest.fixture(scope="module")
def jupyterlab():
    tmp = Path(tempfile.mkdtemp(prefix="sbx-ui-"))
    port, token = _free_port(), secrets.token_hex(16)
    (tmp / "root" / "notebooks").mkdir(parents=True)
    for name in [WELCOME, *(n + ".ipynb" for n in STEPPER_NOTEBOOKS)]:
        shutil.copy(ROOT / "notebooks" / name, tmp / "root" / "notebooks" / name)
    # every cell in the DOM (JupyterLab 4 otherwise renders only the cells in view)
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # no "Would you like to get notified about Jupyter news?" toast over the outputs
    note = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    note.mkdir(parents=True)
    (note / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ,
               SANDBOX_DIR=str(tmp / "state"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    env.pop("SANDBOX_STATIC", None)
    jupyter = Path(sys.executable).parent / "jupyter"
    log = open(tmp / "server.log", "wb")
    server = subprocess.Popen(
        [str(jupyter), "lab", "--ip=127.0.0.1", f"--port={port}", "--no-browser", "--allow-root",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp / 'root'}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if _get(f"{base}/api/status?token={token}")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer within 60 s")
            time.sleep(0.3)
        yield {"base": base, "token": token, "tmp": tmp, "pid": server.pid}
    finally:
        _shutdown_kernels(base, token)
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _shutdown_kernels(base: str, token: str) -> None:
    """Shut every kernel down through the API (each runs its notebook's atexit clean-up)."""
    try:
        _, body = _get(f"{base}/api/kernels?token={token}")
        for k in json.loads(body):
            _delete(f"{base}/api/kernels/{k['id']}?token={token}")
    except OSError:
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: provision/packages/ui.txt"
    profile = tempfile.mkdtemp(prefix="sbx-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, viewport=VIEWPORT,
                args=["--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run"])
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHOTS:
        return tmp_path_factory.mktemp("shots")     # under the session's basetemp, removed
    where = Path(SHOTS)
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    return where


def _open_and_run_all(ctx: Any, lab: dict[str, Any], name: str) -> tuple[Any, list[str]]:
    """A new page with notebook ``name`` open, its kernel connected, Run All started; and the
    list that collects the page's console errors."""
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.set_default_timeout(90_000)
    # ?reset: a fresh workspace, so the notebooks of earlier tests are not reopened beside it
    page.goto(f"{lab['base']}/lab/tree/notebooks/{name}?reset&token={lab['token']}")
    page.wait_for_selector(f"{SHOWN} .jp-Cell")
    page.wait_for_function(
        "() => window.jupyterapp && document.querySelector('.jp-Notebook')")
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session &&"
        " w.sessionContext.session.kernel &&"
        " w.sessionContext.session.kernel.connectionStatus === 'connected'; }")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return page, errors


def _wait_all_ran(page: Any, timeout_ms: int) -> list[str]:
    """Wait until every code cell has run (read from the notebook model: all of them, not only
    those in view) or one failed; return the errors of the outputs."""
    page.wait_for_function(
        "() => { const cells = window.jupyterapp.shell.currentWidget.content.widgets"
        ".filter(c => c.model.type === 'code');"
        " const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));"
        " return failed || cells.every(c => c.model.executionCount !== null); }",
        timeout=timeout_ms)
    return page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".filter(c => c.model.type === 'code')"
        ".flatMap(c => c.model.outputs.toJSON())"
        ".filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)")


def _close(page: Any, lab: dict[str, Any]) -> None:
    """Shut the notebook's kernel down (its clean-up runs) and close the page."""
    try:
        kid = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext"
                            ".session.kernel.id")
        _delete(f"{lab['base']}/api/kernels/{kid}?token={lab['token']}")
        page.evaluate("window.jupyterapp.commands.execute('application:close-all')")
    finally:
        page.close()


def test_jupyterlab_runs_the_welcome_notebook_in_chromium(jupyterlab, browser) -> None:
    page, console = _open_and_run_all(browser, jupyterlab, WELCOME)
    try:
        # JupyterLab 4 shows image/svg+xml output as an <img> with a data: URL
        img = page.wait_for_selector(
            f"{SHOWN} .jp-OutputArea-output[data-mime-type='image/svg+xml'] img")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 100", arg=img)
        svg = urllib.parse.unquote(img.get_attribute("src"))
        assert "Generated by graphviz" in svg and "<svg" in svg
        assert "Welcome" in svg and "lab 5" in svg

        select = page.wait_for_selector(".sbx-slide-explorer .widget-dropdown select")
        shown = page.locator(".sbx-slide-explorer .sbx-slide-sections")
        assert "Slide 7" in shown.inner_text()
        # ipywidgets writes the labels with non-breaking spaces
        index = select.eval_on_selector_all(
            "option", "os => os.findIndex(o => /^Slide\\s48\\s/.test(o.textContent))")
        assert index >= 0
        select.select_option(index=index)
        page.wait_for_function(
            "() => { const e = document.querySelector('.sbx-slide-explorer .sbx-slide-sections');"
            " return e && e.textContent.includes('Slide 48') &&"
            " e.textContent.includes('05-namespaces.ipynb'); }")
        assert _wait_all_ran(page, 120_000) == []
        assert console == []
    finally:
        _close(page, jupyterlab)


def _photograph(page: Any, stepper: Any, stem: Path) -> None:
    """What a learner sees at 1280×800: the viewport with the stepper's top at the top (controls
    and the picture; ``-clip.png`` is the stepper's part of it, for docs/course.md), then scrolled
    down to the step's detail (``-detail.png``)."""
    stepper.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(150)
    page.screenshot(path=f"{stem}.png")
    box = stepper.bounding_box()
    if box:
        top = max(box["y"], 0)
        bar = page.locator("#jp-main-statusbar").bounding_box() \
            if page.locator("#jp-main-statusbar").count() else None
        bottom = min(box["y"] + box["height"], bar["y"] if bar else VIEWPORT["height"])
        page.screenshot(path=f"{stem}-clip.png", clip={     # the stepper only, not JupyterLab's bars
            "x": max(box["x"] - 4, 0), "y": top, "width": min(box["width"] + 8, VIEWPORT["width"]),
            "height": bottom - top})
    stepper.locator(".sbx-step-detail").evaluate("el => el.scrollIntoView({block: 'end'})")
    page.wait_for_timeout(150)
    page.screenshot(path=f"{stem}-detail.png")


def _counter(stepper: Any) -> tuple[int, int]:
    text = stepper.locator(".sbx-step-counter").inner_text()
    m = re.search(r"step (\d+) of (\d+)", text)
    assert m, f"no 'step k of n' counter in {text!r}"
    return int(m.group(1)), int(m.group(2))


def _picture(stepper: Any) -> str:
    """The pictures of the step shown: the state, and beside the detail (if any) the sequence."""
    return stepper.evaluate("el => [...el.querySelectorAll('.sbx-step-pictures, .sbx-step-aside')]"
                            ".map(e => e.innerHTML).join('')")


@pytest.mark.root
@pytest.mark.parametrize("notebook", STEPPER_NOTEBOOKS)
def test_steppers_step_in_jupyterlab(jupyterlab, browser, shots: Path, notebook: str) -> None:
    page, console = _open_and_run_all(browser, jupyterlab, notebook + ".ipynb")
    try:
        assert _wait_all_ran(page, 300_000) == []
        steppers = page.locator(f"{SHOWN} .jp-OutputArea-output .sbx-stepper")
        page.wait_for_function(f"() => document.querySelectorAll('{SHOWN} .sbx-stepper').length > 0")
        count = steppers.count()
        assert count >= 1
        for i in range(count):
            st = steppers.nth(i)
            st.scroll_into_view_if_needed()
            nxt = st.get_by_role("button", name=re.compile("Next step"))
            assert nxt.count() == 1
            k, n = _counter(st)
            assert (k, n) == (1, n) and n >= 2
            before = _picture(st)
            assert "<svg" in before
            _photograph(page, st, shots / f"{notebook}-{i + 1}-step1")
            # each click advances the counter; the picture changes within a few steps (a step
            # that changed nothing drawn, e.g. reading a configuration or a manifest before
            # anything is recorded, shows the picture of the state before or after it)
            for expect in range(2, min(n, 9) + 1):
                nxt.click()
                page.wait_for_function(
                    f"el => /step {expect} of/.test(el.querySelector('.sbx-step-counter').textContent)",
                    arg=st.element_handle(), timeout=10_000)
                if _picture(st) != before:   # (the counter is written after the pictures)
                    break
            after = _picture(st)
            assert "<svg" in after and after != before, "the picture did not change in 8 steps"
            # the last step: End on the slider's handle, else Next until the end
            st.locator(".noUi-handle").first.focus()
            page.keyboard.press("End")
            try:
                page.wait_for_function(
                    f"el => /step {n} of {n}/.test(el.querySelector('.sbx-step-counter').textContent)",
                    arg=st.element_handle(), timeout=5_000)
            except Exception:  # noqa: BLE001 - the keyboard did not move it: click through
                while _counter(st)[0] < n:
                    nxt.click()
                    page.wait_for_timeout(50)
            assert _counter(st) == (n, n)
            assert nxt.is_disabled()
            _photograph(page, st, shots / f"{notebook}-{i + 1}-last")
        assert console == [], "\n".join(console)
    finally:
        _close(page, jupyterlab)
