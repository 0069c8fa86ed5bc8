"""Lab 9: publish your image so ``sandbox fetch`` finds and verifies it — meta tags, a URL
template, a signature and a public key on a plain web server (slides 17, 25–28; discovery.md).

Everything stays on loopback: the lab's web server binds 127.0.0.1 and serves a directory
(``site/``) the learner fills, as any static web host would. The check serves the same
directory itself (on the lab's port) and runs discovery and fetch against it from scratch.
"""
from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.errors import SandboxError

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 9
SLUG = "publish-discovery"
TITLE = "Publish your image so discovery finds it"
FOLLOWS = "04"
OBJECTIVES = (
    'publish an image the appc way: meta tags, URL templates, the ACI, its signature and the key',
    'watch `sandbox fetch` discover, verify and import it from a plain loopback web server',
)
INTRO = """
Notebook 04 fetched an image someone else published. Now you are the publisher. Your image is
`localhost/lab9/hello`; its first segment, `localhost`, is the host a client asks (with the lab's
port, like `actool discover --port`). A client that wants `localhost/lab9/hello:1.0.0` for this
machine will:

1. ask `https://localhost:PORT/lab9/hello?ac-discovery=1` (then `/lab9`, then `/`, on a 404) and
   read the `<meta name="ac-discovery" content="PREFIX TEMPLATE">` and
   `<meta name="ac-discovery-pubkeys" content="PREFIX URL">` tags whose PREFIX is a prefix of
   the name;
2. render the template with `{name}`, `{version}`, `{os}`, `{arch}` — and `{ext}`: `aci` for the
   image, `aci.asc` for its detached signature — skipping a template that keeps a `{…}`;
3. download the signature first, check its signer is trusted for the name, then the image,
   verify, and compare the manifest's name and labels with the request.

The lab's web server serves the directory `site/` exactly as it is: a URL path is a file path
under it, and a directory answers with its `index.html`. Nothing is generated for you."""

CHECKS = [
    "the discovery page for localhost/lab9/hello exists",
    "it has an ac-discovery tag for the name, with a template that renders",
    "the rendered URLs serve the image and its signature",
    "the ac-discovery-pubkeys tag points at your public key",
    "sandbox fetch finds, verifies and imports the image",
    "you fetched it into your store",
]
STUDENT_HINT = "no discovery page"

NAME = "localhost/lab9/hello"
VERSION = "1.0.0"

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab9
from sandbox.dist import discovery, fetch
from sandbox.trust import pgp, truststore as trust

ws = labs.workspace(9)
lab = lab9.setup(ws)        # your key, your image (not signed yet), an empty site/, the web server
lab
'''),
    md("""## 1. Sign your image

`lab.image` is `localhost/lab9/hello` 1.0.0, built for this machine; `lab.key` is your (secret,
unprotected lab) key. Put its detached signature where clients look for it — beside the image,
as `<image>.asc` (notebook 03 shows the calls)."""),
    todo('''
trust.signature_path_for(lab.image).write_bytes(pgp.sign(lab.image, lab.key))
''', '''
'''),
    md("""## 2. Publish

Fill `lab.site` so that discovery works: the discovery page at the path the client asks, with
an `ac-discovery` tag (prefix + a URL template under `lab.base_url`) and an
`ac-discovery-pubkeys` tag (prefix + the URL of your armored public key, `lab.key.public()
.armored()`), and the image, its signature and the key at the URLs those tags give.
Choose your own URL layout — the template decides it."""),
    todo('''
import shutil
page = lab.site / "lab9" / "hello"
page.mkdir(parents=True, exist_ok=True)
template = f"{lab.base_url}/images/{{os}}/{{arch}}/{{name}}-{{version}}.{{ext}}"
(page / "index.html").write_text(
    f'<html><head><meta name="ac-discovery" content="localhost/lab9 {template}">\\n'
    f'<meta name="ac-discovery-pubkeys" content="localhost/lab9 {lab.base_url}/keys/you.asc">'
    '</head></html>\\n')
rendered = template.replace("{os}", lab.os).replace("{arch}", lab.arch).replace(
    "{name}", lab9.NAME).replace("{version}", lab9.VERSION).removeprefix(lab.base_url + "/")
target = lab.site / rendered.replace("{ext}", "aci")
target.parent.mkdir(parents=True, exist_ok=True)
shutil.copy(lab.image, target)
shutil.copy(trust.signature_path_for(lab.image), lab.site / rendered.replace("{ext}", "aci.asc"))
(lab.site / "keys").mkdir(exist_ok=True)
(lab.site / "keys" / "you.asc").write_bytes(lab.key.public().armored())
''', '''
'''),
    md("What a client now sees (discovery only, like `sandbox discover`):"),
    code('print(lab9.discover(ws))'),
    md("""## 3. Fetch it

Be the client: trust your own key for the prefix `localhost/lab9` in `lab.trust` (the lab's trust
store), then fetch `localhost/lab9/hello:1.0.0` into `lab.store` with `fetch.fetch(…,
discovery_port=lab.port, ca_file=lab.ca_file, store=lab.store, trust_store=lab.trust)`, and record
the image ID you got with `ws.answer("fetched", …)`."""),
    todo('''
lab.trust.add("localhost/lab9", lab.key.public().armored())
result = fetch.fetch(f"{lab9.NAME}:{lab9.VERSION}", discovery_port=lab.port, ca_file=lab.ca_file,
                     store=lab.store, trust_store=lab.trust)
ws.answer("fetched", result.id)
result.verification
''', '''
'''),
    *footer(NUMBER),
]


# ------------------------------------------------------------------------------- the lab's world

_SERVERS: dict[str, Any] = {}     # workspace path -> the kernel's running server


class Lab9:
    """What :func:`setup` hands the learner."""

    def __init__(self, ws: Workspace, server: Any) -> None:
        from sandbox._sys import platform
        from sandbox.image.store import Store
        from sandbox.trust import pgp
        from sandbox.trust.truststore import TrustStore
        self.ws = ws
        self.site = ws.path / "site"
        self.image = ws.path / "hello-1.0.0.aci"
        self.key = pgp.read_secret_key((ws.path / "you.secret.asc").read_bytes())
        self.port = int((ws.path / "port").read_text())
        self.base_url = f"https://localhost:{self.port}"
        self.server = server
        self.ca_file = server.ca_file
        self.os, self.arch = platform.appc_os_arch()
        self.store = Store(ws.path / "state")
        self.trust = TrustStore(ws.path / "state" / "trustedkeys", ws.path / "no-system-keys")

    def __repr__(self) -> str:
        return (f"lab 9: image {self.image.name} ({NAME} {VERSION}, {self.os}/{self.arch}), "
                f"key {self.key.fingerprint[:16]}…, site {self.site}, served at {self.base_url}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def setup(ws: Workspace) -> Lab9:
    """Your key and image (once per workspace), an empty ``site/``, a port for the lab, and the
    static web server (TLS with a throwaway CA) serving ``site/`` on it."""
    import os

    from sandbox._sys import platform
    from sandbox.dist import serve
    from sandbox.image import catalog
    from sandbox.trust import pgp
    if not (ws.path / "you.secret.asc").is_file():
        key = pgp.generate_key("You <you@lab9.localhost>", bits=2048)
        fd = os.open(ws.path / "you.secret.asc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.armored())
        os_, arch = platform.appc_os_arch()
        catalog.small_image(ws.path / "hello-1.0.0.aci", NAME,
                            {"greeting": "hello from your own publisher\n"}, version=VERSION,
                            labels={"os": os_, "arch": arch})
        (ws.path / "port").write_text(str(_free_port()))
    (ws.path / "site").mkdir(exist_ok=True)
    key_ = str(ws.path)
    srv = _SERVERS.get(key_)
    port = int((ws.path / "port").read_text())
    if srv is not None and srv.port != port:      # the workspace was reset meanwhile
        srv.stop()
        srv = None
    if srv is None:
        # the throwaway CA lives in the workspace: `lab reset 9` removes it with the rest, even
        # after a kernel that died with its server running
        srv = serve.DiscoveryServer(ws.path / "site", static=True, tls=True, port=port,
                                    cert_dir=ws.path / "tls")
        try:
            srv.start()
        except serve.ServeError as e:
            raise LabError(f"The lab's port is taken ({e}); run `sandbox lab reset 9` and start "
                           "again (a new port is chosen).") from e
        _SERVERS[key_] = srv
        # `sandbox lab check 9` in a terminal finds this kernel's server by its CA
        (ws.path / "server-ca").write_text(str(srv.ca_file))
    return Lab9(ws, srv)


def discover(ws: Workspace) -> str:
    """What discovery finds for ``localhost/lab9/hello:1.0.0`` on the lab's server right now."""
    from sandbox.dist import discovery
    srv = _SERVERS.get(str(ws.path))
    if srv is None:
        return "the lab's server is not running: run the first cell"
    try:
        d = discovery.discover(_app(), port=int((ws.path / "port").read_text()), ca_file=srv.ca_file)
    except SandboxError as e:
        return f"discovery failed: {e}"
    return d.summary()


def _app():
    from sandbox._sys import platform
    from sandbox.dist import discovery
    os_, arch = platform.appc_os_arch()
    return discovery.App(NAME, {"version": VERSION, "os": os_, "arch": arch})


# ------------------------------------------------------------------------------- the checks


class _Serving:
    """The lab's port serving ``site/``: the kernel's server if it is up, else one of the check's
    own (the same directory, the same port; its own throwaway CA)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws, self.own = ws, None
        self.port = int((ws.path / "port").read_text())

    def __enter__(self) -> "_Serving":
        from sandbox.dist import serve
        srv = _SERVERS.get(str(self.ws.path))
        kernel_ca = self.ws.path / "server-ca"     # the notebook's server, seen from a terminal
        if srv is not None and _listening(self.port):
            self.ca_file = srv.ca_file
        elif _listening(self.port) and kernel_ca.is_file() and Path(kernel_ca.read_text()).is_file():
            self.ca_file = kernel_ca.read_text()
        elif _listening(self.port):
            raise LabError(f"Something else listens on the lab's port {self.port}; run "
                           "`sandbox lab reset 9` and do the lab again.")
        else:
            self.own = serve.DiscoveryServer(self.ws.path / "site", static=True, tls=True, port=self.port,
                                             cert_dir=self.ws.path / "tls")
            self.own.start()
            self.ca_file = self.own.ca_file
        return self

    def __exit__(self, *exc: object) -> None:
        if self.own is not None:
            self.own.stop()


def _site_file(ws: Workspace, url: str, port: int) -> Path | None:
    """The file under site/ a URL on the lab's server maps to (None: another server)."""
    from urllib.parse import unquote, urlsplit
    u = urlsplit(url)
    if u.hostname not in ("localhost", "127.0.0.1") or u.port != port:
        return None
    return ws.path / "site" / unquote(u.path).lstrip("/")


def checks(ws: Workspace) -> Iterable[Result]:
    # Long on purpose: the lab's table of checks, in the order the learner meets them.
    from sandbox.dist import discovery, fetch
    from sandbox.image.store import Store
    from sandbox.trust import pgp
    from sandbox.trust.truststore import TrustStore
    if not (ws.path / "port").is_file():
        yield gate(CHECKS[0], False, "run the lab's first cell: lab9.setup(ws)")
        return
    port = int((ws.path / "port").read_text())
    page = ws.path / "site" / "lab9" / "hello" / "index.html"
    parent_pages = [p for p in (ws.path / "site" / "lab9" / "index.html", ws.path / "site" / "index.html")
                    if p.is_file()]
    found = page if page.is_file() else (parent_pages[0] if parent_pages else None)
    yield gate(CHECKS[0], found is not None,
               f"no discovery page: a client asks https://localhost:{port}/lab9/hello?ac-discovery=1, "
               "and a static web server answers that with site/lab9/hello/index.html (or, walking "
               "up, site/lab9/index.html)")
    if found is None:
        return
    tags = discovery.parse_meta(found.read_text(errors="replace"))
    app = _app()
    cands = discovery.expand_templates(app, tags)
    good = [c for c in cands if c.best and c.endpoint]
    if not good:
        if not any(t.name == "ac-discovery" for t in tags):
            hint = (f"{found.relative_to(ws.path)} has no <meta name=\"ac-discovery\" content=\"PREFIX "
                    "TEMPLATE\"> tag")
        elif not cands:
            hint = ("no ac-discovery tag's prefix is a prefix of " + NAME + " (the tags say: "
                    + ", ".join(t.prefix for t in tags if t.name == "ac-discovery") + ")")
        else:
            hint = "; ".join(f"{c.template}: {c.reason}" for c in cands)
        yield gate(CHECKS[1], False, hint)
        return
    yield gate(CHECKS[1], True)
    ep = good[0].endpoint
    files = {what: _site_file(ws, url, port) for what, url in (("image", ep.aci), ("signature", ep.asc))}
    problems = []
    for what, f in files.items():
        url = ep.aci if what == "image" else ep.asc
        if f is None:
            problems.append(f"the template renders the {what} URL to {url}, which is not the lab's "
                            f"server (https://localhost:{port})")
        elif not f.is_file():
            problems.append(f"the {what} URL {url} would be site/{f.relative_to(ws.path / 'site')}, "
                            "which does not exist")
    yield gate(CHECKS[2], not problems, "; ".join(problems))
    if problems:
        return
    mine = pgp.read_secret_key((ws.path / "you.secret.asc").read_bytes())
    keytags = [t for t in tags if t.name == "ac-discovery-pubkeys" and NAME.startswith(t.prefix)]
    key_hint = ""
    if not keytags:
        key_hint = "no ac-discovery-pubkeys tag whose prefix matches " + NAME
    else:
        kf = _site_file(ws, keytags[0].uri, port)
        if kf is None or not kf.is_file():
            key_hint = f"the pubkeys URL {keytags[0].uri} serves nothing from site/"
        else:
            try:
                fprs = [c.fingerprint for c in pgp.read_keys(kf.read_bytes())]
            except pgp.SignatureError as e:
                fprs, key_hint = [], f"{keytags[0].uri} is not an armored public key ({e})"
            if fprs and mine.fingerprint not in fprs:
                key_hint = f"{keytags[0].uri} holds key(s) {', '.join(f[:16] for f in fprs)}, not yours"
            elif any(b"PRIVATE KEY" in kf.read_bytes()[:200] for _ in [0]):
                key_hint = f"{keytags[0].uri} serves your SECRET key: publish only the public one"
    yield Result(CHECKS[3], not key_hint, key_hint)
    with tempfile.TemporaryDirectory(prefix="sbx-lab9-check-") as tmp:
        store = Store(Path(tmp) / "state")
        trusted = TrustStore(Path(tmp) / "trustedkeys", Path(tmp) / "no-system-keys")
        trusted.add("localhost/lab9", mine.public().armored())
        try:
            with _Serving(ws) as s:
                r = fetch.fetch(f"{NAME}:{VERSION}", discovery_port=port, ca_file=s.ca_file,
                                store=store, trust_store=trusted, cache=False)
            yield Result(CHECKS[4], True)
            fetched_id = r.id
        except pgp.BadSignature:
            yield Result(CHECKS[4], False, "the signature served does not match the image served: "
                         "was the image rebuilt or copied after you signed it? sign the file you publish")
            fetched_id = None
        except pgp.UnknownSigner:
            yield Result(CHECKS[4], False, "the signature served was not made by your key "
                         f"({mine.fingerprint[:16]}…): sign with lab.key")
            fetched_id = None
        except SandboxError as e:
            yield Result(CHECKS[4], False, f"fetch refused: {e}")
            fetched_id = None
    said = ws.answers().get("fetched")
    yield Result(CHECKS[5], said is not None and said == fetched_id,
                 "fetch it into lab.store yourself (trusting your key in lab.trust) and record "
                 "ws.answer('fetched', result.id)" if said is None else
                 f"you recorded {str(said)[:23]}…, but what is published is {str(fetched_id)[:23]}…")


def reset(ws: Workspace) -> list[str]:
    srv = _SERVERS.pop(str(ws.path), None)
    if srv is not None:
        srv.stop()
        return ["stopped the lab's web server"]
    return []


def mistake(ws: Workspace) -> str:
    """A mistake learners make: re-build the published image after signing it (here: change
    one byte of the served copy). Returns what the check then says."""
    from sandbox.image import aci
    target = next(p for p in (ws.path / "site").rglob("*.aci"))
    aci.flip_byte(target)
    return "the signature served does not match the image served"
