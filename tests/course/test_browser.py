"""A real browser: Debian's chromium, driven by Python playwright, opens JupyterLab, runs the
welcome notebook, and finds the rendered graphviz SVG and a live ipywidget (picking a slide in the
dropdown makes the kernel update the text next to it).

JupyterLab listens on 127.0.0.1 only, on a free port, with a token; the news feed and the update
check are off. The notebook is a copy in a temporary directory (autosave must never write outputs
into the repository). The server is stopped by its PID and every temporary directory removed.
"""
from __future__ import annotations

import json
import os
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

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = ROOT / "notebooks" / "00-welcome.ipynb"

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:   # 127.0.0.1 only
        return r.status, r.read()


@pytest.fixture
def jupyterlab():
    tmp = Path(tempfile.mkdtemp(prefix="sbx-ui-"))
    port, token = _free_port(), secrets.token_hex(16)
    (tmp / "root" / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOK, tmp / "root" / "notebooks" / NOTEBOOK.name)
    env = dict(os.environ,
               SANDBOX_DIR=str(tmp / "state"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
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
        try:  # shut the kernels down through the API, then the server by its PID
            _, body = _get(f"{base}/api/kernels?token={token}")
            for k in json.loads(body):
                req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}",
                                             method="DELETE")
                urllib.request.urlopen(req, timeout=10).close()
        except OSError:
            pass
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_jupyterlab_runs_the_welcome_notebook_in_chromium(jupyterlab) -> None:
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: provision/packages/ui.txt"
    profile = tempfile.mkdtemp(prefix="sbx-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run"])
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.set_default_timeout(90_000)
                page.goto(f"{jupyterlab['base']}/lab/tree/notebooks/{NOTEBOOK.name}"
                          f"?token={jupyterlab['token']}")
                page.wait_for_selector(".jp-Notebook .jp-Cell")
                page.wait_for_function(
                    "() => window.jupyterapp && document.querySelector('.jp-Notebook')")
                # wait for the kernel, then Run → Run All Cells
                page.wait_for_function(
                    "() => { const w = window.jupyterapp.shell.currentWidget;"
                    " return w && w.sessionContext && w.sessionContext.session &&"
                    " w.sessionContext.session.kernel &&"
                    " w.sessionContext.session.kernel.connectionStatus === 'connected'; }")
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

                # JupyterLab 4 shows image/svg+xml output as an <img> with a data: URL
                img = page.wait_for_selector(
                    ".jp-OutputArea-output[data-mime-type='image/svg+xml'] img")
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
                # every code cell ran (read from the notebook model: JupyterLab renders only
                # the cells in view) and none produced an error
                page.wait_for_function(
                    "() => window.jupyterapp.shell.currentWidget.content.widgets"
                    ".filter(c => c.model.type === 'code')"
                    ".every(c => c.model.executionCount !== null)")
                errors = page.evaluate(
                    "() => window.jupyterapp.shell.currentWidget.content.widgets"
                    ".filter(c => c.model.type === 'code')"
                    ".flatMap(c => c.model.outputs.toJSON())"
                    ".filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)")
                assert errors == []
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
