"""The static course site, built the way `make site` builds it but for a representative subset
(the full build executes every notebook and lab: `make site`, minutes; this one: three pages):
notebook 00 (widgets, the course map, the self-check), notebook 05 (graphviz pictures and
steppers, kernel objects made and removed) and lab 1's solution. Then Debian's chromium, with
every request that is not a file of the site refused, opens the index and two notebook pages:
pictures load, every link resolves to a file of the site, no console error, no network.

Widgets are frozen into HTML at build time (no widget JavaScript, no CDN): the test also reads
the built pages for that.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from sandbox.course import labs
from sandbox.viz import site

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.root]


@pytest.fixture(scope="module")
def built() -> Path:
    out = Path(tempfile.mkdtemp(prefix="sbx-site-test-"))
    netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    try:
        report = site.build(out, notebooks=["00-welcome", "05-namespaces"], labs=[1])
        assert [p.error for p in report.pages] == ["", "", ""], str(report)
        after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        assert not {n for n in after - netns_before if n.startswith("sbx-nb05")}, "the build left a netns"
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_pages_are_there_and_frozen(built: Path) -> None:
    for page in ("index.html", "notebooks/00-welcome.html", "notebooks/05-namespaces.html",
                 "labs/01-first-aci.html", "docs/instructor.html", "docs/slide-coverage.html"):
        assert (built / page).is_file(), page
    nb00 = (built / "notebooks" / "00-welcome.html").read_text()
    assert "sbx-frozen-widget" in nb00 and "widget-view+json" not in nb00
    assert "sbx-quiz-static" in nb00 and nb00.count("<details>") == 4   # the self-check, folded
    assert "sbx-state" in nb00 and "sbx-overview" in nb00           # state view, progress: static
    lab = (built / "labs" / "01-first-aci.html").read_text()
    n = len(labs.get(1).checks)
    assert f"all checks pass ({n} of {n})" in lab
    for html in (built / "index.html", built / "notebooks" / "05-namespaces.html"):
        attrs = re.findall(r'(?:src|href)="(https?:[^"]*)"', html.read_text())
        assert attrs == [], f"{html.name} points outside the site: {attrs[:3]}"


def test_browser_reads_the_site_offline(built: Path) -> None:
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: provision/packages/ui.txt"
    profile = tempfile.mkdtemp(prefix="sbx-chromium-")
    outside: list[str] = []
    errors: list[str] = []
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run"])

            def route(r):   # the site must not need anything but its own files
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()
            ctx.route("**/*", route)
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                for rel, pictures in (("index.html", 1), ("notebooks/00-welcome.html", 1),
                                      ("notebooks/05-namespaces.html", 3),
                                      ("docs/instructor.html", 0)):
                    page.goto((built / rel).as_uri())
                    page.wait_for_load_state("load")
                    imgs = page.eval_on_selector_all(
                        "main img", "is => is.map(i => [i.src, i.complete && i.naturalWidth > 0])")
                    svgs = page.eval_on_selector_all("main svg", "s => s.length")
                    assert all(ok for _, ok in imgs), f"{rel}: broken pictures {imgs}"
                    assert len(imgs) + svgs >= pictures, f"{rel}: {len(imgs)} img, {svgs} svg"
                    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
                    for href in hrefs:
                        if not href.startswith("file://"):
                            continue
                        target = Path(urllib.parse.unquote(urllib.parse.urlparse(href).path))
                        assert target.exists(), f"{rel}: broken link {href}"
                    assert page.locator("main h1").count() >= 1
                page.goto((built / "notebooks" / "00-welcome.html").as_uri())
                page.locator("details summary").first.click()
                assert page.locator("details[open]").count() == 1
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert outside == [], f"the site asked the network for {outside[:5]}"
    assert errors == [], errors
