"""An offline appc discovery server for labs (``sandbox serve DIR``), bound to 127.0.0.1 only.

It publishes what it finds in DIR the way a real image publisher would (spec/discovery.md):

* every ``*.aci`` (read by its manifest, not its file name) with the ``.aci.asc`` beside it,
  under one URL template ``{base}/aci/{os}/{arch}/{name}-{version}.{ext}``;
* every armored public key (``-----BEGIN PGP PUBLIC KEY BLOCK-----``) under ``/pubkeys/<file>``;
* a discovery page ``<path>?ac-discovery=1`` for every prefix (whole path segments) of a
  published name, holding ``ac-discovery`` and ``ac-discovery-pubkeys`` meta tags whose
  prefix is that page's prefix. Other paths answer 404, which makes clients walk up.

An image name's first segment is a host. Names starting with ``localhost/`` reach this server
when the client puts the server's port on the host (``sandbox fetch --discovery-port N``, like
``actool discover --port``). ``{version}`` = ``latest`` serves the image labelled
``version=latest`` if there is one, else the highest version (discovery.md §Latest pattern).

Responses carry a strong ``ETag`` (a hash of the file) and ``Cache-Control: max-age`` and
answer ``If-None-Match`` with 304, so clients can cache. ``tls=True`` makes a throwaway CA and
a certificate for localhost/127.0.0.1 (:func:`make_tls_material`); clients trust it with
``--ca-file``. Every request is logged in :attr:`DiscoveryServer.log`.

Library use (tests, notebooks)::

    with DiscoveryServer("images/") as srv:     # starts on a free port in a thread
        fetch.fetch_image("localhost/hello", discovery_port=srv.port, ...)
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import html
import ipaddress
import os
import re
import shutil
import ssl
import stat
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.steps import Steps, record

BIND = "127.0.0.1"                     # loopback only, always
MAX_STATIC_BYTES = 256 << 20           # one file a static lab site may serve
TEMPLATE = "/aci/{os}/{arch}/{name}-{version}.{ext}"
PUBKEY_MARKER = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


class ServeError(SandboxError):
    """The discovery server cannot start or publish."""


# --------------------------------------------------------------------------------------------
# What is published
# --------------------------------------------------------------------------------------------

@dataclass
class Published:
    """One ACI as published: where it is on disk and the labels it answers to."""

    path: Path
    name: str
    labels: dict[str, str]
    asc: Path | None
    etag: str

    def matches(self, name: str, want: dict[str, str]) -> bool:
        """discovery.md §Validation: a requested label must be present with the same value;
        here an image without an os/arch label serves any os/arch."""
        if name != self.name:
            return False
        for k, v in want.items():
            have = self.labels.get(k)
            if have is None and k in ("os", "arch"):
                continue
            if have != v:
                return False
        return True


@dataclass
class PublicKey:
    path: Path
    url_path: str
    etag: str


@dataclass
class LogEntry:
    method: str
    path: str
    status: int
    bytes: int = 0
    scheme: str = "http"


def _etag(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return '"' + h.hexdigest()[:32] + '"'


def _version_key(v: str) -> tuple[Any, ...]:
    """Sort key for "highest version": numeric dotted parts compare as numbers."""
    return tuple((0, n, "") if (n := bounded.plain_int(p, 4000)) is not None else (1, 0, p)
                 for p in re.split(r"[.\-+]", v))


def scan(directory: str | os.PathLike[str], steps: Steps | None = None
         ) -> tuple[list[Published], list[PublicKey], list[str]]:
    """Find ACIs and armored public keys under ``directory`` (recursively).

    Returns (images, keys, problems); an unreadable ACI is a problem, not a crash.
    """
    from sandbox.image import aci  # the image-format module; imported late to keep this light

    root = Path(directory)
    if not root.is_dir():
        raise ServeError(f"{root} is not a directory; give the directory holding your .aci files.")
    images: list[Published] = []
    keys: list[PublicKey] = []
    problems: list[str] = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if p.name.endswith(".aci"):
            try:
                m = aci.read_manifest(p)
            except SandboxError as e:
                problems.append(f"{p.relative_to(root)}: {e}")
                continue
            asc = p.with_name(p.name + ".asc")
            images.append(Published(p, m.name, dict(m.labels), asc if asc.is_file() else None,
                                    _etag(p)))
            record(steps, "read", str(p), name=m.name, labels=dict(m.labels),
                   signature=asc.name if asc.is_file() else "none")
        elif not p.name.endswith(".aci.asc"):
            with open(p, "rb") as f:
                head = f.read(4096)
            if PUBKEY_MARKER in head:
                keys.append(PublicKey(p, "/pubkeys/" + p.relative_to(root).as_posix(), _etag(p)))
                record(steps, "read", str(p), kind="public key")
    return images, keys, problems


# --------------------------------------------------------------------------------------------
# Throwaway TLS
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TLSMaterial:
    ca_cert: Path       # give this to clients (--ca-file)
    cert: Path          # server certificate (localhost, 127.0.0.1)
    key: Path           # server private key


def make_tls_material(directory: str | os.PathLike[str], *, days: int = 7) -> TLSMaterial:
    """A throwaway CA and a server certificate for ``localhost`` / ``127.0.0.1`` (P-256 keys),
    written as PEM into ``directory``. Nothing here is secret beyond the lab."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox serve throwaway CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - _dt.timedelta(minutes=5))
          .not_valid_after(now + _dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(BIND))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = TLSMaterial(d / "ca.pem", d / "server.pem", d / "server-key.pem")
    out.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(out.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return out


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

class _Server(bounded.CountedRequests, ThreadingHTTPServer):
    # Any local user can connect to 127.0.0.1: at most SERVE_CONNECTIONS requests are answered
    # at once. (Before: a thread per connection for as long as the client kept it open.)
    daemon_threads = True
    allow_reuse_address = True
    owner: "DiscoveryServer"

    def stopping(self) -> bool:
        return self.owner._httpd is not self

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up before its answer (or is cut off by its deadline) is logged,
        # not a traceback on the terminal that runs `sandbox serve`
        self.owner._log(LogEntry("-", "(connection dropped)", 0, 0, self.owner.scheme))

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the request's own thread, so one slow or plain-HTTP
        # client cannot stall the accept loop.
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(10)
                request.do_handshake()
            except (ssl.SSLError, OSError):
                self.owner._log(LogEntry("-", "(TLS handshake failed)", 0, 0, "https"))
                return
        super().finish_request(request, client_address)


class _Handler(bounded.TimedRequests, BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "sandbox-serve/0.1"
    # every read and write waits at most STALL_SECONDS (none was set: an idle client held its
    # thread for ever), and a request's line and headers must all arrive within
    # SERVE_REQUEST_SECONDS (a client that drips them is cut off)
    request_limit = bounded.SERVE_REQUEST_SECONDS
    request_what = "a request to sandbox serve"
    stall_limit = bounded.STALL_SECONDS

    def log_message(self, format: str, *args: Any) -> None:  # quiet; the owner keeps a log
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.deadline.cancel()          # the answer may be a large image to a slow client
        try:
            self.server.owner._handle(self)
        finally:
            self.arm()                  # the next request on a kept-alive connection

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests (e.g. a TLS hello sent to plain HTTP) are logged too.
        self.server.owner._log(LogEntry(getattr(self, "command", None) or "-",
                                        getattr(self, "path", None) or "(malformed request)", code))
        self.close_connection = True
        try:
            super().send_error(code, message, explain)
        except OSError:
            pass


class DiscoveryServer:
    """Serve ``directory`` for appc discovery on 127.0.0.1 (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], *, port: int = 0, tls: bool = False,
                 cert_dir: str | os.PathLike[str] | None = None, max_age: int = 0,
                 redirects: dict[str, str] | None = None, static: bool = False,
                 steps: Steps | None = None) -> None:
        self.directory = Path(directory)
        # static: serve DIR as it is, like any web host (a publisher writes the discovery pages,
        # meta tags and file layout itself); a path that is a directory answers its index.html
        self.static = static
        self.requested_port = port
        self.tls = tls
        self.max_age = max_age
        self.redirects = dict(redirects or {})
        self.steps = steps
        self.log: list[LogEntry] = []
        self._log_entries = bounded.SERVE_LOG_ENTRIES.value
        self._lock = threading.Lock()
        self._cert_dir = Path(cert_dir) if cert_dir else None
        self._own_cert_dir: str | None = None
        self.tls_material: TLSMaterial | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.images: list[Published] = []
        self.keys: list[PublicKey] = []
        self.problems: list[str] = []

    # ---- lifecycle
    def start(self) -> int:
        """Scan, bind 127.0.0.1 and serve in a background thread; return the port."""
        if self._httpd is not None:
            return self.port
        self.rescan()
        try:
            httpd = _Server((BIND, self.requested_port), _Handler, bind_and_activate=True)
        except OSError as e:
            raise ServeError(f"Cannot listen on {BIND}:{self.requested_port} ({e.strerror}); "
                             "pick another --port or stop what uses it.") from e
        httpd.owner = self
        httpd.slots = threading.BoundedSemaphore(bounded.SERVE_CONNECTIONS.value)
        if self.tls:
            try:
                if self._cert_dir is None:
                    self._own_cert_dir = tempfile.mkdtemp(prefix="sbx-serve-tls-")
                    self._cert_dir = Path(self._own_cert_dir)
                self.tls_material = make_tls_material(self._cert_dir)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.tls_material.cert, self.tls_material.key)
                httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                               do_handshake_on_connect=False)
            except BaseException:
                httpd.server_close()                # neither the port nor the CA outlives it
                self.stop()
                raise
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"sandbox-serve:{self.port}", daemon=True)
        self._thread.start()
        record(self.steps, "listen", self.base_url, images=len(self.images), keys=len(self.keys))
        return self.port

    def stop(self) -> None:
        """Stop serving, close the socket, remove a throwaway certificate directory."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_cert_dir:
            shutil.rmtree(self._own_cert_dir, ignore_errors=True)
            self._own_cert_dir = None

    def __enter__(self) -> "DiscoveryServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rescan(self) -> None:
        """Re-read the directory (after adding or re-signing images); a static site is served
        as it is, nothing to read."""
        if self.static:
            if not self.directory.is_dir():
                raise ServeError(f"{self.directory} is not a directory; give the site's directory.")
            return
        self.images, self.keys, self.problems = scan(self.directory, self.steps)

    # ---- facts
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise ServeError("The discovery server is not running; call start() first.")
        return self._httpd.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}"

    @property
    def ca_file(self) -> str | None:
        return str(self.tls_material.ca_cert) if self.tls_material else None

    @property
    def names(self) -> list[str]:
        return sorted({i.name for i in self.images})

    def served(self, suffix: str = "") -> list[LogEntry]:
        """Log entries with a 200 for paths ending in ``suffix`` (e.g. ``.aci``)."""
        with self._lock:
            return [e for e in self.log if e.status == 200 and e.path.split("?")[0].endswith(suffix)]

    LOG_PATH_CHARS = 2000

    def _log(self, entry: LogEntry) -> None:
        """Note one request: the newest SERVE_LOG_ENTRIES are kept, each path cut short."""
        if len(entry.path) > self.LOG_PATH_CHARS:
            entry.path = entry.path[:self.LOG_PATH_CHARS] + "…"
        with self._lock:
            self.log.append(entry)
            over = len(self.log) - self._log_entries
            if over > 0:
                del self.log[:over]

    # ---- routing
    def _prefixes(self) -> set[str]:
        out: set[str] = set()
        for n in self.names:
            parts = n.split("/")
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        return out

    def discovery_html(self, prefix: str, base: str) -> str:
        """The page for ``prefix``: one ac-discovery template and one pubkeys tag per key."""
        tags = [f'<meta name="ac-discovery" content="{html.escape(prefix)} {html.escape(base + TEMPLATE)}">']
        tags += [f'<meta name="ac-discovery-pubkeys" content="{html.escape(prefix)} '
                 f'{html.escape(base + k.url_path)}">' for k in self.keys]
        listed = "".join(f"<li><code>{html.escape(i.name)}</code> "
                         f"{html.escape(', '.join(f'{k}={v}' for k, v in i.labels.items()))}</li>"
                         for i in self.images if i.name == prefix or i.name.startswith(prefix + "/"))
        return ("<!DOCTYPE html>\n<html>\n<head>\n  <title>appc discovery: "
                f"{html.escape(prefix)}</title>\n  " + "\n  ".join(tags) +
                f"\n</head>\n<body>\n  <h1>{html.escape(prefix)}</h1>\n  <ul>{listed}</ul>\n"
                "</body>\n</html>\n")

    def find(self, name: str, labels: dict[str, str]) -> Published | None:
        """The image for a rendered template: ``version=latest`` means the ``latest`` label or
        else the highest version."""
        want = dict(labels)
        if want.get("version") == "latest" and not any(
                i.matches(name, want) for i in self.images):
            want.pop("version")
            found = [i for i in self.images if i.matches(name, want)]
            return max(found, key=lambda i: _version_key(i.labels.get("version", "")), default=None)
        return next((i for i in self.images if i.matches(name, want)), None)

    def _resolve_aci_path(self, path: str) -> tuple[Path | None, str | None]:
        """``/aci/{os}/{arch}/{name}-{version}.aci[.asc]`` -> (file, etag)."""
        parts = path.split("/", 4)          # '', 'aci', os, arch, rest
        if len(parts) != 5:
            return None, None
        _, _, os_, arch, rest = parts
        ext = "aci.asc" if rest.endswith(".aci.asc") else "aci" if rest.endswith(".aci") else None
        if ext is None:
            return None, None
        stem = rest[: -len(ext) - 1]
        for name in sorted(self.names, key=len, reverse=True):
            if stem.startswith(name + "-"):
                img = self.find(name, {"os": os_, "arch": arch, "version": stem[len(name) + 1:]})
                if img is None:
                    return None, None
                if ext == "aci":
                    return img.path, img.etag
                return (img.asc, _etag(img.asc)) if img.asc else (None, None)
        return None, None

    def _handle(self, h: _Handler) -> None:
        if self.static:
            return self._handle_static(h)
        u = urlsplit(h.path)
        path = u.path
        host = (h.headers.get("Host") or f"localhost:{self.port}").rsplit(":", 1)[0]
        base = f"{self.scheme}://{h.headers.get('Host') or f'localhost:{self.port}'}"
        if path in self.redirects:
            target = self.redirects[path] + (f"?{u.query}" if u.query else "")
            return self._send(h, 301, b"", "text/plain", headers={"Location": target})
        if "ac-discovery" in parse_qs(u.query) or path in ("", "/"):
            prefix = (host + path).rstrip("/")
            if prefix in self._prefixes() or path in ("", "/"):
                body = self.discovery_html(prefix, base).encode()
                return self._send(h, 200, body, "text/html; charset=utf-8")
            return self._send(h, 404, b"no image under this prefix\n", "text/plain")
        file: Path | None = None
        etag: str | None = None
        if path.startswith("/aci/"):
            file, etag = self._resolve_aci_path(path)
        elif path.startswith("/pubkeys/"):
            k = next((k for k in self.keys if k.url_path == path), None)
            file, etag = (k.path, k.etag) if k else (None, None)
        if file is None:
            return self._send(h, 404, b"not found\n", "text/plain")
        ctype = ("application/pgp-signature" if path.endswith(".asc") and path.startswith("/aci/")
                 else "application/pgp-keys" if path.startswith("/pubkeys/")
                 else "application/vnd.appc.aci")
        headers = {"ETag": etag or "", "Cache-Control": f"max-age={self.max_age}"}
        if etag and etag in [t.strip() for t in (h.headers.get("If-None-Match") or "").split(",")]:
            return self._send(h, 304, b"", ctype, headers=headers)
        self._send_file(h, file, ctype, headers)

    _STATIC_TYPES = {".html": "text/html; charset=utf-8", ".aci": "application/vnd.appc.aci",
                     ".asc": "application/pgp-signature", ".gpg": "application/pgp-keys"}

    def _handle_static(self, h: _Handler) -> None:
        """A plain web server over the directory: the URL path resolved *inside* it (symlinks
        too: the publisher's tree cannot reach outside it), ``index.html`` for a directory."""
        from urllib.parse import unquote

        from sandbox._sys import inroot
        path = unquote(urlsplit(h.path).path)
        if "\0" in path:
            return self._send(h, 404, b"not found\n", "text/plain")
        try:
            root = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return self._send(h, 404, b"not found\n", "text/plain")
        try:
            rel = path.strip("/")
            fd = None
            for cand in ([rel] if rel else []) + [f"{rel}/index.html".lstrip("/")]:
                try:
                    fd = inroot.open_in(root, cand, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    rel = cand
                    break
                os.close(fd)
                fd = None
            if fd is None:
                return self._send(h, 404, b"not found\n", "text/plain")
            with os.fdopen(fd, "rb") as f:
                data = f.read(MAX_STATIC_BYTES + 1)
        finally:
            os.close(root)
        if len(data) > MAX_STATIC_BYTES:
            return self._send(h, 404, b"too large for this lab server\n", "text/plain")
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": f"max-age={self.max_age}"}
        ctype = self._STATIC_TYPES.get(os.path.splitext(rel)[1], "application/octet-stream")
        if etag in [t.strip() for t in (h.headers.get("If-None-Match") or "").split(",")]:
            return self._send(h, 304, b"", ctype, headers=headers)
        self._send(h, 200, data, ctype, headers=headers)

    def _send(self, h: _Handler, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        self._log(LogEntry("GET", h.path, status, len(body), self.scheme))
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if status != 304:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if status != 304:
            h.wfile.write(body)

    def _send_file(self, h: _Handler, file: Path, ctype: str, headers: dict[str, str]) -> None:
        size = file.stat().st_size
        self._log(LogEntry("GET", h.path, 200, size, self.scheme))
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(size))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        with open(file, "rb") as f:
            try:
                shutil.copyfileobj(f, h.wfile, 1 << 16)
            except (BrokenPipeError, ConnectionResetError):
                h.close_connection = True


def publish_demo(directory: str | os.PathLike[str], signer: Any, name: str = "localhost/hello",
                 versions: tuple[str, ...] = ("1.0.0", "1.2.0"), *, key_file: str = "alice.pub.asc",
                 steps: Steps | None = None) -> list[Path]:
    """What a publisher puts in the directory :class:`DiscoveryServer` serves: for each version a
    small ACI ``name`` (one file, ``/greeting``, labelled version/os/arch for this machine) with
    its detached signature beside it, and the signer's armored public key. Returns the files."""
    import json

    from sandbox._sys import platform
    from sandbox.image import aci
    from sandbox.trust import pgp

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    os_, arch = platform.appc_os_arch()
    made = [out / key_file]
    made[0].write_bytes(signer.public().armored())
    base = name.rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory(prefix="sbx-publish-") as tmp:
        for version in versions:
            layout = Path(tmp) / version
            (layout / "rootfs").mkdir(parents=True)
            (layout / "rootfs" / "greeting").write_text(f"hello from {version}\n")
            (layout / "manifest").write_text(json.dumps({
                "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
                "labels": [{"name": "version", "value": version}, {"name": "os", "value": os_},
                           {"name": "arch", "value": arch}]}))
            image = out / f"{base}-{version}.aci"
            aci.build(layout, image, overwrite=True, steps=steps)
            asc = image.with_name(image.name + ".asc")
            asc.write_bytes(pgp.sign(image, signer, steps=steps))
            made += [image, asc]
    return made


def serve(directory: str | os.PathLike[str], **kwargs: Any) -> DiscoveryServer:
    """Start a :class:`DiscoveryServer` and return it (call ``.stop()`` when done)."""
    srv = DiscoveryServer(directory, **kwargs)
    srv.start()
    return srv
