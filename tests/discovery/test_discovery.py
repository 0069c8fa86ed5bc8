"""Meta discovery (spec/discovery.md): app strings, meta tags, templates, the walk, transport policy.

Golden inputs are Debian's appc fixtures (discovery/testdata/meta0*.html); the expected
endpoints are those of appc's own Go tests (discovery_test.go) and, where this kit follows the
spec's "best matching" rule instead, the difference is asserted explicitly. Network traffic
goes only to loopback servers these tests start.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from sandbox._sys import platform
from sandbox.config import tool_path
from sandbox.dist import discovery as d
from sandbox.dist.discovery import App, DiscoveryError, MetaTag, Transport
from sandbox.image.types import AppStringError

from .conftest import FIXTURES

LINUX_AMD64 = {"version": "1.0.0", "os": "linux", "arch": "amd64"}
HTTP = Transport(allow_http=True)


# --------------------------------------------------------------------------- app strings

@pytest.mark.parametrize("text,name,labels", [
    ("example.com/reduce-worker:1.0.0", "example.com/reduce-worker", {"version": "1.0.0"}),
    ("example.com/reduce-worker,channel=alpha,label=value", "example.com/reduce-worker",
     {"channel": "alpha", "label": "value"}),
    ("example.com/app:1.2.3,special=!*'();@&+$/?#[],channel=beta", "example.com/app",
     {"version": "1.2.3", "special": "!*'();@&+$/?#[]", "channel": "beta"}),
    ("localhost/hello", "localhost/hello", {}),
])
def test_parse_app_good(text: str, name: str, labels: dict[str, str]) -> None:
    app = d.parse_app(text)
    assert (app.name, dict(app.labels)) == (name, labels)
    assert d.parse_app(str(app)) == app           # the string form round-trips


@pytest.mark.parametrize("text,why", [
    ("not an app name", "AC identifier"),
    ("example.com/garbage%8 939", "AC identifier"),
    ("foo.com/bar,channel=alpha,dog=woof,channel=beta", "twice"),
    ("example.com/app,channel=beta:1.2.3", "right after the name"),
    ("example.com/app:3.2.1,channel=beta:1.2.3", "at most once"),
    ("example.com/app:3.2.1,version=1.2.3", "twice"),
    ("example.com/app,channel", "no value"),
    ("example.com/app,name=x", "not a label"),
    ("", "empty"),
])
def test_parse_app_bad(text: str, why: str) -> None:
    with pytest.raises(AppStringError, match=why):
        d.parse_app(text)


def test_platform_defaults_use_appc_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for machine, appc in [("x86_64", "amd64"), ("aarch64", "aarch64"), ("i686", "i386"),
                          ("armv7l", "armv7l")]:
        monkeypatch.setattr(platform, "machine", lambda m=machine: m)
        assert platform.appc_os_arch() == ("linux", appc)
        got = d.parse_app("a.com/x,arch=s390x").with_platform_defaults()
        assert dict(got.labels) == {"arch": "s390x", "os": "linux"}   # requested labels win


# --------------------------------------------------------------------------- meta tags

def _independent_meta(text: str) -> list[tuple[str, str, str]]:
    """A second, regex-based reading of the fixture files (they use one tag per line)."""
    out = []
    for name, content in re.findall(r'<meta name="(ac-[^"]+)" content="([^"]+)">', text):
        prefix, uri = content.split(" ", 1)
        out.append((name, prefix, uri))
    return out


@pytest.mark.parametrize("fixture", [f"meta0{i}.html" for i in range(1, 7)])
def test_golden_meta_fixtures(fixture: str) -> None:
    text = (FIXTURES / fixture).read_text()
    tags = d.parse_meta(text)
    assert [(t.name, t.prefix, t.uri) for t in tags] == _independent_meta(text)
    assert tags, "every appc fixture has at least one ac-* tag"
    assert all(t.prefix == "example.com" for t in tags)


def test_meta_parsing_edge_cases() -> None:
    html = """<html><head>
      <META NAME="ac-discovery" CONTENT="  a.com   https://a.com/{name}.{ext}  "/>
      <meta name="ac-discovery" content="missing-uri">
      <meta name="description" content="a.com https://ignored">
      <meta name="ac-discovery-pubkeys" content="a.com https://a.com/keys.asc">
    </head></html>"""
    assert d.parse_meta(html) == [
        MetaTag("ac-discovery", "a.com", "https://a.com/{name}.{ext}"),
        MetaTag("ac-discovery-pubkeys", "a.com", "https://a.com/keys.asc")]


# --------------------------------------------------------------------------- templates

def test_render_template_rules() -> None:
    assert d.render_template("https://x/{name}-{version}.{ext}", {"name": "a.com/b", "version": "1"}) \
        == ("https://x/a.com/b-1.{ext}", False)                      # {ext} is still open
    assert d.render_template("https://x/{name}-{channel}.aci", {"name": "n", "channel": "beta"}) \
        == ("https://x/n-beta.aci", True)                             # any label is a variable
    assert d.render_template("https://x/{os}/{name}", {"name": "n"})[1] is False


def _endpoints(fixture: str, labels: dict[str, str], *, best: bool = True) -> list[tuple[str, str]]:
    tags = d.parse_meta((FIXTURES / fixture).read_text())
    cands = d.expand_templates(App("example.com/myapp", labels), tags)
    return [(c.endpoint.aci, c.endpoint.asc) for c in cands
            if c.endpoint is not None and (c.best or not best)]


def test_templates_against_appc_go_expectations() -> None:
    base = "https://storage.example.com/example.com/myapp"
    # meta01, all labels: one endpoint (discovery_test.go case 1)
    assert _endpoints("meta01.html", LINUX_AMD64) == [
        (f"{base}-1.0.0-linux-amd64.aci", f"{base}-1.0.0-linux-amd64.aci.asc")]
    # meta05, only version: the {os}/{arch} template cannot render and is skipped
    assert _endpoints("meta05.html", {"version": "1.0.0"}) == [
        (f"{base}-1.0.0.aci", f"{base}-1.0.0.aci.asc")]
    # meta05, no labels: version defaults to "latest"
    assert _endpoints("meta05.html", {}) == [(f"{base}-latest.aci", f"{base}-latest.aci.asc")]
    # a label called "name" does not replace {name}
    assert _endpoints("meta05.html", {"name": "labelcalledname", "version": "1.0.0"}) == [
        (f"{base}-1.0.0.aci", f"{base}-1.0.0.aci.asc")]


def test_best_matching_rule_vs_reference_client() -> None:
    """meta06: appc's Go client returns all three rendered templates; the spec keeps only the
    best matching (most labels substituted), which drops {name}-{version}."""
    every = _endpoints("meta06.html", LINUX_AMD64, best=False)
    best = _endpoints("meta06.html", LINUX_AMD64)
    base = "storage.example.com/example.com/myapp"
    assert [a for a, _ in every] == [f"https://{base}-1.0.0-linux-amd64.aci",
                                     f"https://{base}-1.0.0.aci",
                                     f"hdfs://{base}-1.0.0-linux-amd64.aci"]   # Go's answer
    assert [a for a, _ in best] == [every[0][0], every[2][0]]


def test_spec_example_best_match() -> None:
    tags = [MetaTag("ac-discovery", "example.com", u) for u in (
        "https://storage.example.com/{os}/{arch}/{name}-{version}.{ext}",
        "https://mirror.storage.example.com/{os}/{arch}/{name}-{version}.{ext}",
        "https://storage.example.com/{os}/{arch}/{name}-latest.{ext}")]
    c = d.expand_templates(App("example.com/reduce-worker", LINUX_AMD64), tags)
    assert [x.best for x in c] == [True, True, False]
    assert c[2].reason == "fewer labels than the best match"
    # Without a version, {version} becomes "latest" (the reference client's default), so the
    # chosen URL is the one the spec's "latest" template names.
    c = d.expand_templates(App("example.com/reduce-worker", {"os": "linux", "arch": "amd64"}), tags)
    assert c[0].endpoint.aci == c[2].endpoint.aci == \
        "https://storage.example.com/linux/amd64/example.com/reduce-worker-latest.aci"
    assert [x.best for x in c] == [True, True, False]
    # The spec's own reading of its "latest pattern": {version} stays unrendered, so only the
    # -latest template renders, and it is the best match.
    c = d.expand_templates(App("example.com/reduce-worker", {"os": "linux", "arch": "amd64"}), tags,
                           default_version=None)
    assert [x.best for x in c] == [False, False, True]
    assert [x.reason for x in c][:2] == ["unrendered {version}"] * 2
    assert c[2].endpoint.aci == "https://storage.example.com/linux/amd64/example.com/reduce-worker-latest.aci"


def test_prefix_must_match_and_ext_required() -> None:
    tags = [MetaTag("ac-discovery", "other.com", "https://o/{name}.{ext}"),
            MetaTag("ac-discovery", "example.com", "https://e/{name}.aci"),
            MetaTag("ac-discovery", "example.com", "https://e/{name}-{channel}.{ext}")]
    c = d.expand_templates(App("example.com/app", {}), tags)
    assert [x.template for x in c] == ["https://e/{name}.aci", "https://e/{name}-{channel}.{ext}"]
    assert [x.reason for x in c] == ["no {ext} in the template", "unrendered {channel}"]
    c = d.expand_templates(App("example.com/app", {"channel": "beta"}), tags)
    assert c[1].endpoint.aci == "https://e/example.com/app-beta.aci"


# --------------------------------------------------------------------------- the walk (loopback)

def _app(name: str, labels: dict[str, str] = LINUX_AMD64) -> App:
    return App(name, labels)


def test_walk_finds_tags_at_the_name(pages) -> None:
    pages.fixture("/myapp", "meta01.html")
    r = d.discover(_app("localhost/myapp"), transport=HTTP, port=pages.port)
    base = "https://storage.example.com/localhost/myapp"
    assert [(e.aci, e.asc) for e in r.endpoints] == [
        (f"{base}-1.0.0-linux-amd64.aci", f"{base}-1.0.0-linux-amd64.aci.asc")]
    assert r.public_keys == ["https://example.com/pubkeys.gpg"]
    assert pages.paths()[-1] == "/myapp?ac-discovery=1"


def test_walk_retries_parent_paths_on_404(pages) -> None:
    pages.fixture("/", "meta01.html")
    r = d.discover(_app("localhost/myapp/foobar"), transport=HTTP, port=pages.port)
    assert r.prefix == "localhost"
    assert r.endpoints[0].aci == "https://storage.example.com/localhost/myapp/foobar-1.0.0-linux-amd64.aci"
    plain = [(p, s) for p, s in pages.log if p != "(malformed)"]   # https attempts are malformed here
    assert plain == [("/myapp/foobar?ac-discovery=1", 404), ("/myapp?ac-discovery=1", 404),
                     ("/?ac-discovery=1", 200)]


def test_walk_retries_parent_when_page_has_no_matching_tag(pages) -> None:
    pages.page("/myapp", "<html><head><meta name='ac-discovery' content='elsewhere.org "
                         "https://x/{name}.{ext}'></head></html>")
    pages.fixture("/", "meta02.html")
    r = d.discover(_app("localhost/myapp"), transport=HTTP, port=pages.port)
    assert r.prefix == "localhost" and len(r.endpoints) == 1


def test_walk_gives_up_with_every_attempt_listed(pages) -> None:
    pages.fixture("/path/out/of/myapp", "meta01.html")
    with pytest.raises(DiscoveryError) as e:
        d.discover(_app("localhost/myapp/foobar/bazzer"), transport=HTTP, port=pages.port)
    msg = str(e.value)
    for prefix in ("myapp/foobar/bazzer", "myapp/foobar", "myapp"):
        assert f"localhost:{pages.port}/{prefix}?ac-discovery=1 -> HTTP 404" in msg


@pytest.mark.parametrize("root,myapp,endpoint_host,keys_at", [
    ("meta02.html", "meta03.html", "storage.example.com", "localhost/myapp"),
    ("meta03.html", "meta02.html", "storage.example.com", "localhost"),
    ("meta04.html", "meta02.html", "storage.example.com", "localhost"),
])
def test_endpoints_and_keys_walk_separately(pages, root, myapp, endpoint_host, keys_at) -> None:
    pages.fixture("/", root)
    pages.fixture("/myapp", myapp)
    r = d.discover(_app("localhost/myapp"), transport=HTTP, port=pages.port)
    assert r.endpoints[0].aci.startswith(f"https://{endpoint_host}/")
    k = d.discover_public_keys(_app("localhost/myapp"), transport=HTTP, port=pages.port)
    assert k.public_keys == ["https://example.com/pubkeys.gpg"] and k.prefix == keys_at


def test_pubkeys_walk_fails_without_pubkeys_tag(pages) -> None:
    pages.fixture("/", "meta02.html")
    assert d.discover(_app("localhost/myapp"), transport=HTTP, port=pages.port).endpoints
    with pytest.raises(DiscoveryError, match="ac-discovery-pubkeys"):
        d.discover_public_keys(_app("localhost/myapp"), transport=HTTP, port=pages.port)


def test_redirects_are_followed_and_recorded(pages) -> None:
    from sandbox.steps import Steps
    pages.redirect("/myapp", "/moved/myapp?ac-discovery=1")
    pages.redirect("/moved/myapp", f"http://127.0.0.1:{pages.port}/final", status=302)
    pages.fixture("/final", "meta01.html")
    steps = Steps()
    r = d.discover(_app("localhost/myapp"), transport=HTTP, port=pages.port, steps=steps)
    assert r.endpoints
    http = [(s.what, s.detail["status"]) for s in steps.of("http")]
    assert http[-3:] == [(f"http://localhost:{pages.port}/myapp?ac-discovery=1", 301),
                         (f"http://localhost:{pages.port}/moved/myapp?ac-discovery=1", 302),
                         (f"http://127.0.0.1:{pages.port}/final", 200)]


# --------------------------------------------------------------------------- https vs http

def test_https_first_and_plain_http_only_when_allowed(pages) -> None:
    pages.fixture("/myapp", "meta01.html")
    with pytest.raises(DiscoveryError) as e:
        d.discover(_app("localhost/myapp"), port=pages.port)
    assert e.value.hint and "--insecure-options=http" in e.value.hint
    assert all(p == "(malformed)" for p in pages.paths()), "no plain-HTTP request was made"
    pages.log.clear()
    d.discover(_app("localhost/myapp"), allow_http=True, port=pages.port)
    assert pages.paths() == ["(malformed)", "/myapp?ac-discovery=1"]   # TLS hello first, then http


def test_https_with_ca_file_needs_no_http(tls_pages) -> None:
    tls_pages.fixture("/myapp", "meta01.html")
    with pytest.raises(DiscoveryError, match="certificate"):
        d.discover(_app("localhost/myapp"), port=tls_pages.port)       # unknown CA: refused
    assert tls_pages.paths() == []
    r = d.discover(_app("localhost/myapp"), port=tls_pages.port, ca_file=tls_pages.ca_file)
    assert r.attempts[-1].url.startswith("https://") and r.endpoints
    r = d.discover(_app("localhost/myapp"), port=tls_pages.port, insecure_tls=True)
    assert r.endpoints


def test_redirect_from_https_to_http_is_refused_unless_allowed(tls_pages, pages) -> None:
    pages.fixture("/myapp", "meta01.html")
    tls_pages.redirect("/myapp", f"http://localhost:{pages.port}/myapp?ac-discovery=1")
    with pytest.raises(DiscoveryError, match="Refusing plain-HTTP"):
        d.discover(_app("localhost/myapp"), port=tls_pages.port, ca_file=tls_pages.ca_file)
    assert pages.log == []


# --------------------------------------------------------------------------- reference oracle

@pytest.mark.usefixtures("no_proxy")
def test_same_answer_as_actool_discover(server) -> None:
    """appc's actool, built from Debian's sources, discovers against the same loopback server."""
    actool = tool_path("actool")
    assert actool is not None, "actool is missing: run provision/bootstrap.sh"
    for app in ("localhost/hello:1.0.0,os=linux,arch=amd64", "localhost/hello,os=linux,arch=amd64"):
        out = subprocess.run([str(actool), "discover", "--insecure", "--json", f"--port={server.port}", app],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        ref = json.loads(out.stdout[out.stdout.index("{"):])
        ours = d.discover(d.parse_app(app), allow_http=True, port=server.port)
        assert [(e.aci, e.asc) for e in ours.endpoints] == \
            [(e["ACI"], e["ASC"]) for e in ref["ACIEndpoints"]]
        assert ours.public_keys == ref["PublicKeys"]


def test_oversized_discovery_page_is_refused(pages) -> None:
    from sandbox import bounded
    pages.page("/myapp", "<html>" + " " * (bounded.SMALL_DOWNLOAD_BYTES.value + 10))
    pages.fixture("/", "meta01.html")
    r = d.discover(_app("localhost/myapp"), transport=HTTP, port=pages.port)
    assert r.prefix == "localhost"                     # the huge page counted as a failure
    assert any("SMALL_DOWNLOAD_BYTES" in (a.error or "") for a in r.attempts)


def test_template_and_walk_pictures_tell_each_fate(pages) -> None:
    from sandbox.viz import discovery as vd
    tags = d.parse_meta((FIXTURES / "meta05.html").read_text())
    app = App("example.com/myapp", {"version": "1.0.0"})
    src = vd.templates(d.Discovery(app, candidates=d.expand_templates(app, tags))).source
    assert "unrendered {os}, {arch}" in src and "best match; 1 labels" in src
    pages.fixture("/", "meta01.html")
    walked = d.discover(_app("localhost/myapp/foobar"), transport=HTTP, port=pages.port)
    src = vd.walk(walked).source
    assert src.count("HTTP 404") == 2 and "parent path" in src and "200 OK" in src
    assert vd.template_explorer(tags, "example.com/myapp:1.0.0") is not None


# ------------------------------------------------- a hostile page (a second attacker's variants)

@pytest.mark.serial
@pytest.mark.parametrize("unit", ["</", "<?"])
def test_a_malformed_page_is_read_in_linear_time(unit: str) -> None:
    """HTMLParser (3.11.7) is quadratic on these: 200 KB took 4 s, a page of the 1 MiB a
    discovery page may have (SMALL_DOWNLOAD_BYTES) about two minutes of CPU per fetch."""
    import time
    page = unit * (1 << 19) + '<meta name="ac-discovery" content="a.com https://a/{name}">'
    t = time.process_time()
    tags = d.parse_meta(page)
    assert time.process_time() - t < 20
    assert tags == [MetaTag("ac-discovery", "a.com", "https://a/{name}")]


def test_meta_tags_in_comments_and_raw_text_are_no_tags() -> None:
    html = """<html><head><!-- <meta name="ac-discovery" content="a.com https://comment"> -->
      <script>var s = '<meta name="ac-discovery" content="a.com https://script">';</script>
      <title><meta name="ac-discovery" content="a.com https://title"></title>
      <meta name="ac-discovery" content="a.com https://real"><metadata name="ac-discovery">
      <meta name="ac-discovery" content="a.com https://unclosed" <!-- never closed"""
    assert d.parse_meta(html) == [MetaTag("ac-discovery", "a.com", "https://real")]


@pytest.mark.serial
@pytest.mark.parametrize("uri", ["https://a/" + "{" * 500_000, "https://a/{" + "x{" * 250_000 + "\n}",
                                 "https://a/" + "{name" * 100_000 + "{ext}"])
def test_a_hostile_template_renders_in_linear_time(uri: str) -> None:
    """`{.*?}` backtracks: 100,000 '{' in one meta tag took 48 s (a 1 MiB page: minutes)."""
    import time
    t = time.process_time()
    cands = d.expand_templates(App("a.com/x", {}), [MetaTag("ac-discovery", "a.com", uri)])
    assert time.process_time() - t < 20
    assert len(cands) == 1 and cands[0].endpoint is None or uri.endswith("{ext}")


@pytest.mark.parametrize("template, done", [
    ("https://x/{name}.{ext}", False), ("https://x/{a{name}}", False), ("https://x/{x{y}", False),
    ("https://x/{name}", True), ("https://x/}{", True), ("https://x/{\n}", True),
    ("https://x/{", True)])
def test_template_completeness_is_gos(template: str, done: bool) -> None:
    """As discovery.go's `{.*?}` (RE2, '.' without newlines) decides it."""
    assert d.render_template(template, {"name": "n"})[1] is done


# ------------------------------------ numbers a server or an image writes ('²' is a digit to isdigit)

@pytest.mark.parametrize("value", ["\u00b2", "1\u00b2", "9" * 5000, "\u0661\u0662"])
def test_numbers_from_headers_and_labels_that_int_refuses(value: str) -> None:
    from email.message import Message

    from sandbox.dist import fetch, serve
    from sandbox.dist.discovery import Opened

    class Resp:
        status = 200
        headers = Message()

        def getheader(self, name: str) -> str | None:
            return self.headers.get(name)
    Resp.headers["Content-Length"] = value
    assert Opened("http://h/", None, Resp(), []).length is None        # type: ignore[arg-type]
    assert fetch._cache_control(f"max-age={value}") == (None, True)
    assert serve._version_key(f"1.{value}")[0] == (0, 1, "")           # a key, not a ValueError
    assert serve._version_key("1.10") > serve._version_key("1.9")


def test_a_limit_variable_int_refuses_is_a_sentence(monkeypatch) -> None:
    from sandbox import bounded
    from sandbox.errors import SandboxError
    for raw in ("\u00b2", "9" * 5000):
        monkeypatch.setenv("SANDBOX_MAX_ARCHIVE_ENTRIES", raw)
        with pytest.raises(SandboxError, match="not a valid ARCHIVE_ENTRIES limit"):
            bounded.ARCHIVE_ENTRIES.value
        monkeypatch.setenv("SANDBOX_MAX_DOWNLOAD_BYTES", raw + "M")
        with pytest.raises(SandboxError, match="not a valid DOWNLOAD_BYTES limit"):
            bounded.DOWNLOAD_BYTES.value
