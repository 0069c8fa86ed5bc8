"""appc Image Discovery (spec/discovery.md): from an image name plus labels to the URLs of the
ACI, its signature and the publisher's public keys.

The steps, as the spec describes them:

1. App string ``name[:version][,label=value...]`` -> :class:`App` (:func:`parse_app`); the
   client adds ``os`` / ``arch`` for the machine it runs on (:func:`sandbox._sys.platform.appc_os_arch`, appc's
   names: amd64, aarch64, i386, armv7l, ...), and ``version`` defaults to ``latest`` for the
   template only. That default is rkt's and appc's Go client's convention (discovery.go
   ``defaultVersion``), not the spec's: discovery.md's *latest pattern* relies on ``{version}``
   staying unrendered when no version is asked for, so that a ``{name}-latest.{ext}`` template
   is the best match. ``default_version=None`` gives the spec's reading.
2. Discovery URL ``https://{name}?ac-discovery=1`` (§Discovery URL). https first; plain http only
   when the operator allows it (rkt's ``--insecure-options=http``). 3xx are followed.
3. ``<meta name="ac-discovery" content="PREFIX URL-TEMPLATE">`` and
   ``<meta name="ac-discovery-pubkeys" content="PREFIX URL">`` whose PREFIX is a prefix of the
   name (:func:`parse_meta`).
4. Each template is rendered with ``{name}`` and every requested label; a template that still
   holds an unrendered ``{...}`` is skipped; ``{ext}`` becomes ``aci`` / ``aci.asc``
   (:func:`render_template`). Of the templates that render, only the *best matching* ones are
   kept: those with the most label variables substituted (§Discovery URL, "best matching").
5. No usable tag, or a 4xx, at ``a/b/c``: try ``a/b``, then ``a`` (parent-path retry).

Every HTTP request (and every redirect hop) is recorded as a ``http`` step, so a notebook can
draw the whole conversation.
"""
from __future__ import annotations

import functools
import re
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping
from urllib.parse import urljoin, urlsplit

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.image.types import App, parse_app
from sandbox.steps import Steps, record

# The HTTP(S) client is imported where a request is made: parsing an app string (every
# `sandbox run`) must not pay for http.client, ssl and the email package (~20 ms).
if TYPE_CHECKING:
    import http.client
    import ssl

DEFAULT_VERSION = "latest"           # discovery.go: defaultVersion
MAX_REDIRECTS = 10                   # Go's http.Client follows at most 10
USER_AGENT = "sandbox-discovery/0.1 (Container Standards Lab)"

# discovery.go: templateExpression `{.*?}` - any brace pair left means "not rendered". Go's RE2
# is linear; Python's backtracking `{.*?}` is quadratic ("{" * 100,000 in a meta tag: 48 s).
# `{[^{}\n]*}` finds a pair exactly when `{.*?}` does (the innermost one), in linear time.
TEMPLATE_VAR = re.compile(r"\{([^{}\n]*)\}")


class DiscoveryError(SandboxError):
    """Discovery found no usable endpoint (the attempts say why)."""


# appc's Go sources as Debian ships them (golang-github-appc-spec-dev): its discovery test
# pages (meta01.html … meta06.html) are the reference fixtures.
APPC_SPEC_SOURCES = "/usr/share/gocode/src/github.com/appc/spec"


def appc_fixture(name: str) -> "Path":
    """A file of appc's discovery test data, e.g. ``appc_fixture("meta06.html")``."""
    from pathlib import Path
    p = Path(APPC_SPEC_SOURCES) / "discovery" / "testdata" / name
    if not p.is_file():
        raise DiscoveryError(f"appc's discovery fixture {name} is not installed ({p}); install "
                             "Debian's golang-github-appc-spec-dev (provision/packages/image.txt).")
    return p






# --------------------------------------------------------------------------------------------
# Meta tags and templates
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetaTag:
    """One ``<meta name="ac-..." content="PREFIX URL">`` tag."""

    name: str       # ac-discovery | ac-discovery-pubkeys (other ac-* kept, unused)
    prefix: str
    uri: str


def _meta_parser() -> Any:
    from html.parser import HTMLParser

    class _MetaParser(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.tags: list[MetaTag] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag != "meta":
                return
            a = {k: (v or "") for k, v in attrs}
            name, content = a.get("name", ""), a.get("content", "").strip()
            prefix, _, uri = content.partition(" ")
            uri = uri.strip()
            if name.startswith("ac-") and prefix and uri:
                self.tags.append(MetaTag(name, prefix, uri))

        handle_startendtag = handle_starttag
    return _MetaParser()


# elements whose content is text, not markup: a <meta> written inside them is no tag
_RAW_TEXT = re.compile(r"<(script|style|textarea|title|xmp|iframe|noembed|noframes|noscript)"
                       r"[\s/>]")


def _meta_tags(text: str) -> Iterator[str]:
    """The ``<meta …>`` tags of a page, outside comments and raw-text elements, found in one
    pass. Python's HTMLParser (3.11.7) is quadratic on malformed input: 200 KB of ``</`` or
    ``<?`` took 4 s, a 1 MiB page (SMALL_DOWNLOAD_BYTES) about two minutes; here every ``find``
    starts where the last one stopped, and a construct left open ends the page."""
    low = text.lower()
    pos = 0
    while (i := low.find("<", pos)) >= 0:
        if low.startswith("<!--", i):
            j = low.find("-->", i + 4)
            if j < 0:
                return
            pos = j + 3
        elif (m := _RAW_TEXT.match(low, i)) is not None:
            j = low.find("</" + m.group(1), m.end())
            if j < 0:
                return
            pos = j + 2
        elif low.startswith("<meta", i) and low[i + 5:i + 6] in ("", " ", "\t", "\n", "\r",
                                                                   "\f", "/", ">"):
            j = low.find(">", i)
            if j < 0:
                return
            yield text[i:j + 1]
            pos = j + 1
        else:
            pos = i + 1


def parse_meta(html_text: str | bytes) -> list[MetaTag]:
    """Every ``ac-*`` meta tag with a prefix and a URL, in document order (each tag read by
    HTMLParser on its own: :func:`_meta_tags` finds them in linear time)."""
    if isinstance(html_text, bytes):
        html_text = html_text.decode("utf-8", errors="replace")
    p = _meta_parser()
    for tag in _meta_tags(html_text):
        p.feed(tag)
        p.close()
        p.reset()
    return p.tags


def render_template(template: str, variables: Mapping[str, str]) -> tuple[str, bool]:
    """Substitute ``{var}`` from ``variables``; the flag says whether nothing is left unrendered."""
    out = TEMPLATE_VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), template)
    return out, not TEMPLATE_VAR.search(out)


def template_variables(app: App, default_version: str | None = DEFAULT_VERSION) -> dict[str, str]:
    """``{name}`` plus every requested label; ``version`` defaults to ``latest`` (rkt's and the
    Go client's convention; ``default_version=None`` leaves it out, as the spec's latest
    pattern expects)."""
    v = {k: val for k, val in app.labels.items() if k != "name"}
    if default_version is not None:
        v.setdefault("version", default_version)
    v["name"] = app.name
    return v


# plain frozen records (the same shape as image.manifest's Label): data, no logic
@dataclass(frozen=True)
class Endpoint:
    aci: str
    asc: str


@dataclass(frozen=True)
class Candidate:
    """One ``ac-discovery`` template and what became of it for this request."""

    prefix: str
    template: str
    rendered: str                  # with {ext} still in place (or whatever was left)
    labels_used: tuple[str, ...]   # label variables substituted (not name, not ext)
    unrendered: tuple[str, ...]    # variables nobody could fill
    endpoint: Endpoint | None      # None when skipped
    best: bool = False             # kept by the "best matching" rule

    @property
    def reason(self) -> str:
        if self.endpoint is None:
            if "ext" not in self.template:
                return "no {ext} in the template"
            return "unrendered " + ", ".join("{" + u + "}" for u in self.unrendered)
        return "best match" if self.best else "fewer labels than the best match"


def expand_templates(app: App, tags: Iterable[MetaTag], *,
                     default_version: str | None = DEFAULT_VERSION) -> list[Candidate]:
    """Render every ``ac-discovery`` tag whose prefix matches; mark the best matching ones.

    The prefix test is a string prefix, as in appc's reference client (discovery.go).
    ``default_version``: see :func:`template_variables`.
    """
    variables = template_variables(app, default_version)
    out: list[Candidate] = []
    for t in tags:
        if t.name != "ac-discovery" or not app.name.startswith(t.prefix):
            continue
        names = [m.group(1) for m in TEMPLATE_VAR.finditer(t.uri)]
        used = tuple(dict.fromkeys(n for n in names if n in variables and n != "name"))
        rendered, _ = render_template(t.uri, variables)
        left = tuple(dict.fromkeys(n for n in TEMPLATE_VAR.findall(rendered) if n != "ext"))
        endpoint = None
        if "{ext}" in t.uri and not left:
            endpoint = Endpoint(rendered.replace("{ext}", "aci"), rendered.replace("{ext}", "aci.asc"))
        out.append(Candidate(t.prefix, t.uri, rendered, used, left, endpoint))
    rendered_ok = [c for c in out if c.endpoint is not None]
    most = max((len(c.labels_used) for c in rendered_ok), default=0)
    return [Candidate(c.prefix, c.template, c.rendered, c.labels_used, c.unrendered, c.endpoint,
                      best=c.endpoint is not None and len(c.labels_used) == most) for c in out]


# --------------------------------------------------------------------------------------------
# HTTP(S) with redirects, TLS policy and step recording
# --------------------------------------------------------------------------------------------

class TransportError(SandboxError):
    """A request could not be made or was refused by policy."""


@dataclass(frozen=True)
class Transport:
    """How requests may be made: rkt's ``--insecure-options`` http/tls plus a CA file."""

    allow_http: bool = False        # insecure-options=http
    insecure_tls: bool = False      # insecure-options=tls: no certificate checks
    ca_file: str | None = None      # an extra CA to trust (e.g. `sandbox serve --tls`)
    # the longest wait for a connection or the next bytes (bounded.STALL_SECONDS when None);
    # the whole exchange has its own deadline (bounded.Deadline)
    timeout: float | None = None

    @property
    def stall(self) -> float:
        return float(self.timeout if self.timeout is not None else bounded.STALL_SECONDS.value)

    def ssl_context(self) -> ssl.SSLContext:
        return _ssl_context(self.insecure_tls, self.ca_file)


@functools.lru_cache(maxsize=16)
def _ssl_context(insecure_tls: bool, ca_file: str | None) -> ssl.SSLContext:
    """System CAs (+ ``ca_file``); loading them costs milliseconds, so contexts are reused."""
    import ssl
    ctx = ssl.create_default_context()
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"Cannot load the CA file {ca_file}: {e}.") from e
    if insecure_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Opened:
    """An open response at the end of a redirect chain; read it, then close it."""

    def __init__(self, url: str, conn: http.client.HTTPConnection,
                 resp: http.client.HTTPResponse, chain: list[tuple[str, int]],
                 deadline: bounded.Deadline | None = None, stall: float | None = None) -> None:
        self.url, self._conn, self._resp, self.chain = url, conn, resp, chain
        self.status = resp.status
        self.headers = resp.headers
        self.deadline = deadline
        self.stall = stall

    def header(self, name: str) -> str | None:
        return self._resp.getheader(name)

    @property
    def length(self) -> int | None:
        v = self._resp.getheader("Content-Length")
        return bounded.plain_int(v.strip()) if v else None

    def read(self, n: int = -1) -> bytes:
        return self._resp.read() if n < 0 else self._resp.read(n)

    def copy_to(self, write: Any, *, limit: bounded.Limit, what: str,
                max_bytes: int | None = None) -> int:
        """Copy the body to ``write`` within the size limit and this exchange's deadline."""
        assert self.deadline is not None
        return bounded.copy_limited(self._resp.read1, write, limit=limit, what=what,
                                    deadline=self.deadline, max_bytes=max_bytes, stall=self.stall)

    def close(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self._resp.close()
        self._conn.close()

    def __enter__(self) -> "Opened":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(url: str, transport: Transport, deadline: bounded.Deadline
             ) -> tuple[http.client.HTTPConnection, str]:
    """A connection for ``url`` (not yet connected) whose socket the deadline watches."""
    import http.client
    try:
        u = urlsplit(url)
        host, port = u.hostname, u.port          # .port raises ValueError for "h:99999"
    except ValueError as e:
        raise TransportError(f"Cannot fetch {url[:200]}: it is not a valid URL ({e}).") from e
    if u.scheme not in ("http", "https"):
        raise TransportError(f"Cannot fetch {url[:200]}: only https (and http when allowed) are "
                             "supported.")
    if not host:
        raise TransportError(f"Cannot fetch {url[:200]}: the URL names no host.")
    timeout = min(transport.stall, max(deadline.remaining(), 0.001))
    if u.scheme == "https":
        cls: Any = deadline.connection_class(http.client.HTTPSConnection)
        conn: http.client.HTTPConnection = cls(host, port, timeout=timeout,
                                               context=transport.ssl_context())
    else:
        conn = deadline.connection_class(http.client.HTTPConnection)(host, port, timeout=timeout)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return conn, target



def open_url(url: str, transport: Transport, *, headers: Mapping[str, str] | None = None,
             steps: Steps | None = None, purpose: str = "",
             deadline: bounded.Deadline | None = None) -> Opened:
    """GET ``url``, following 3xx (spec: "All HTTP redirects MUST be followed").

    Plain http (first hop or after a redirect) is refused unless ``transport.allow_http``.
    Each hop is recorded as an ``http`` step. Raises :class:`TransportError` when no response
    could be had; non-2xx final statuses are returned for the caller to judge. The whole
    exchange, redirects and body included, ends by ``deadline`` (default: a small document's,
    SMALL_DOWNLOAD_SECONDS); the response owns it and cancels it when closed.
    """
    import http.client
    import ssl
    if deadline is None:
        deadline = bounded.Deadline(bounded.SMALL_DOWNLOAD_SECONDS, f"GET {url[:200]}")
    try:
        return _open_url(url, transport, headers, steps, purpose, deadline)
    except BaseException:
        deadline.cancel()
        raise


def _open_url(url: str, transport: Transport, headers: Mapping[str, str] | None,
              steps: Steps | None, purpose: str, deadline: bounded.Deadline) -> Opened:
    import http.client
    import ssl
    chain: list[tuple[str, int]] = []
    for _ in range(MAX_REDIRECTS + 1):
        scheme = urlsplit(url).scheme
        if scheme == "http" and not transport.allow_http:
            record(steps, "http", url, method="GET", status="refused", purpose=purpose,
                   error="plain http not allowed")
            raise TransportError(
                f"Refusing plain-HTTP request to {url}.",
                hint="Pass --insecure-options=http to allow unencrypted HTTP (labs on loopback only).")
        conn, target = _connect(url, transport, deadline)
        try:
            conn.request("GET", target, headers={"User-Agent": USER_AGENT, **(headers or {})})
            resp = conn.getresponse()
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
            # ValueError: UnicodeError from IDNA (a host label over 63 characters), bad headers
            conn.close()
            if deadline.expired():
                record(steps, "http", url, method="GET", status="error", purpose=purpose,
                       error="deadline")
                raise deadline.error() from e
            reason = _explain(e)
            record(steps, "http", url, method="GET", status="error", purpose=purpose, error=reason)
            raise TransportError(f"GET {url} failed: {reason}.") from e
        chain.append((url, resp.status))
        location = resp.getheader("Location")
        record(steps, "http", url, method="GET", status=resp.status, purpose=purpose,
               **({"location": location} if location and 300 <= resp.status < 400 else {}),
               **({"bytes": resp.getheader("Content-Length")} if resp.getheader("Content-Length") else {}))
        if resp.status in (301, 302, 303, 307, 308) and location:
            resp.close()          # the body of a redirect is not read (it could be endless)
            conn.close()
            try:
                url = urljoin(url, location)
            except ValueError as e:
                raise TransportError(f"GET {url} redirects to {location[:200]!r}, which is not a "
                                     f"valid URL ({e}).") from e
            continue
        return Opened(url, conn, resp, chain, deadline, transport.stall)
    raise TransportError(f"Too many redirects (more than {MAX_REDIRECTS}) starting at {chain[0][0]}.")


def _explain(e: BaseException) -> str:
    import ssl
    if isinstance(e, UnicodeError):
        return f"the host name is not valid ({e})"
    if isinstance(e, ssl.SSLCertVerificationError):
        return (f"the TLS certificate was not accepted ({e.verify_message}); trust its CA with "
                "--ca-file, or pass --insecure-options=tls")
    if isinstance(e, ssl.SSLError):
        return f"TLS handshake failed ({e.reason or e}); is the server speaking plain HTTP?"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the server running on that port?)"
    if isinstance(e, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return (f"no answer within {bounded.STALL_SECONDS.value} s (the STALL_SECONDS limit; "
                f"${bounded.STALL_SECONDS.env} raises it)")
    return str(e) or e.__class__.__name__


def get(url: str, transport: Transport, *, headers: Mapping[str, str] | None = None,
        steps: Steps | None = None, purpose: str = "",
        max_bytes: int | None = None) -> tuple[int, bytes, str, Opened]:
    """GET and read the whole body: (status, body, final URL, response). A small document: at
    most SMALL_DOWNLOAD_BYTES (or ``max_bytes``), all within SMALL_DOWNLOAD_SECONDS."""
    what = f"the {purpose or 'document'} at {url[:200]}"
    with open_url(url, transport, headers=headers, steps=steps, purpose=purpose) as r:
        parts: list[bytes] = []
        r.copy_to(parts.append, limit=bounded.SMALL_DOWNLOAD_BYTES, what=what, max_bytes=max_bytes)
    return r.status, b"".join(parts), r.url, r


# --------------------------------------------------------------------------------------------
# The discovery walk
# --------------------------------------------------------------------------------------------

# a record with defaults, the same shape as image.aci.Inspection: data, no logic
@dataclass
class Attempt:
    """One discovery URL tried (one prefix, one scheme)."""

    prefix: str
    url: str
    status: int | None = None
    error: str | None = None
    final_url: str | None = None
    html: str | None = None
    tags: list[MetaTag] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Discovery:
    """What discovery found for one request, with everything it tried."""

    app: App
    attempts: list[Attempt] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    public_keys: list[str] = field(default_factory=list)
    prefix: str | None = None      # the prefix whose page answered

    @property
    def endpoints(self) -> list[Endpoint]:
        """The best matching endpoints, in document order."""
        return [c.endpoint for c in self.candidates if c.best and c.endpoint is not None]

    @property
    def html(self) -> str | None:
        return next((a.html for a in reversed(self.attempts) if a.ok), None)

    @property
    def variables(self) -> dict[str, str]:
        return template_variables(self.app)

    def summary(self) -> str:
        """actool-like text: ACI/ASC pairs and public keys."""
        lines = [f"ACI: {e.aci}, ASC: {e.asc}" for e in self.endpoints]
        if self.public_keys:
            lines.append("PublicKeys: " + ", ".join(self.public_keys))
        return "\n".join(lines)


def discovery_url(prefix: str, scheme: str = "https", port: int | None = None) -> str:
    """``{scheme}://{prefix}?ac-discovery=1`` with ``port`` put on the host (actool --port)."""
    host, _, path = prefix.partition("/")
    if port:
        host = f"{host}:{port}"
    return f"{scheme}://{host}/{path}?ac-discovery=1"


def _fetch_page(prefix: str, transport: Transport, port: int | None,
                steps: Steps | None) -> list[Attempt]:
    """https first; http only if allowed and https did not give a 200 (http.go httpsOrHTTP)."""
    tries: list[Attempt] = []
    for scheme in ("https", "http"):
        if scheme == "http" and not transport.allow_http:
            break
        url = discovery_url(prefix, scheme, port)
        a = Attempt(prefix, url)
        tries.append(a)
        try:
            status, body, final, _ = get(url, transport, steps=steps, purpose="discovery")
        except (TransportError, bounded.InputTooLarge, bounded.TookTooLong) as e:
            a.error = e.message.removeprefix(f"GET {url} failed: ").rstrip(".")
            continue
        a.status, a.final_url = status, final
        if status == 200:
            a.html = body.decode("utf-8", errors="replace")
            a.tags = parse_meta(a.html)
            break
        a.error = f"HTTP {status}"
    return tries


def _walk(app: App, want: str, transport: Transport, port: int | None,
          steps: Steps | None) -> Discovery:
    d = Discovery(app)
    parts = app.name.split("/")
    for end in range(len(parts), 0, -1):          # a/b/c, then a/b, then a
        prefix = "/".join(parts[:end])
        tries = _fetch_page(prefix, transport, port, steps)
        d.attempts.extend(tries)
        page = next((a for a in tries if a.ok), None)
        if page is None:
            continue
        if want == "endpoints":
            cands = expand_templates(app, page.tags)
            if any(c.best for c in cands):
                d.candidates, d.prefix = cands, prefix
                d.public_keys = [t.uri for t in page.tags if t.name == "ac-discovery-pubkeys"
                                 and app.name.startswith(t.prefix)]
                record(steps, "check", f"ac-discovery at {prefix}",
                       endpoints=len(d.endpoints), skipped=sum(1 for c in cands if not c.best))
                return d
            record(steps, "check", f"ac-discovery at {prefix}", endpoints=0, result="parent next")
        else:
            keys = [t.uri for t in page.tags
                    if t.name == "ac-discovery-pubkeys" and app.name.startswith(t.prefix)]
            if keys:
                d.public_keys, d.prefix = keys, prefix
                record(steps, "check", f"ac-discovery-pubkeys at {prefix}", keys=len(keys))
                return d
    return d


def _policy(allow_http: bool, insecure_tls: bool, ca_file: str | None,
            transport: Transport | None) -> Transport:
    return transport or Transport(allow_http=allow_http, insecure_tls=insecure_tls, ca_file=ca_file)


def _failure(d: Discovery, what: str, allow_http: bool) -> DiscoveryError:
    tried = "; ".join(f"{a.url} -> {a.error or a.status}" + ("" if not a.ok else " (no matching tag)")
                      for a in d.attempts)
    hint = None
    if not allow_http and any(a.error and "TLS" in a.error for a in d.attempts):
        hint = "If the server speaks plain HTTP (a lab server), add --insecure-options=http."
    return DiscoveryError(f"Discovery found no {what} for {d.app}: tried {tried}.", hint=hint)


def _discover(app: App | str, want: str, t: Transport, port: int | None,
              steps: Steps | None) -> Discovery:
    """The walk for ``want`` ("endpoints" or "pubkeys"); a DiscoveryError listing every URL
    tried when it found none."""
    app = parse_app(app) if isinstance(app, str) else app
    d = _walk(app, want, t, port, steps)
    if want == "endpoints" and not d.endpoints:
        raise _failure(d, "ac-discovery endpoint", t.allow_http)
    if want == "pubkeys" and not d.public_keys:
        raise _failure(d, "ac-discovery-pubkeys", t.allow_http)
    return d


def discover(app: App | str, *, allow_http: bool = False, insecure_tls: bool = False,
             ca_file: str | None = None, port: int | None = None,
             transport: Transport | None = None, steps: Steps | None = None) -> Discovery:
    """Find the ACI and signature URLs for ``app`` (labels as requested; add platform defaults
    with :meth:`App.with_platform_defaults` first if wanted). Raises :class:`DiscoveryError`."""
    return _discover(app, "endpoints", _policy(allow_http, insecure_tls, ca_file, transport),
                     port, steps)


def discover_public_keys(app: App | str, *, allow_http: bool = False, insecure_tls: bool = False,
                         ca_file: str | None = None, port: int | None = None,
                         transport: Transport | None = None,
                         steps: Steps | None = None) -> Discovery:
    """Find the ``ac-discovery-pubkeys`` URLs for a name (the walk stops at the first page that
    has any). Raises :class:`DiscoveryError`."""
    return _discover(app, "pubkeys", _policy(allow_http, insecure_tls, ca_file, transport),
                     port, steps)
