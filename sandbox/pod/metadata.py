"""The App Container metadata service (ace.md §App Container Metadata Service).

Each pod gets its own small HTTP server, listening on 127.0.0.1 *inside the pod's network
namespace* (the socket is created there by stage0, then served from stage0's thread), so apps
reach it at ``$AC_METADATA_URL`` = ``http://127.0.0.1:PORT/TOKEN``. The token is 16 random bytes
(128 bits, ace.md: "SHOULD embed a token of at least 128 bits"); a request without it gets 403.

    GET  /acMetadata/v1/pod/annotations            the pod's annotations (JSON)
    GET  /acMetadata/v1/pod/manifest               the pod manifest (JSON)
    GET  /acMetadata/v1/pod/uuid                   text
    GET  /acMetadata/v1/apps/NAME/annotations      image annotations merged with the app's (pod wins)
    GET  /acMetadata/v1/apps/NAME/image/manifest   the image manifest (JSON)
    GET  /acMetadata/v1/apps/NAME/image/id         text
    POST /acMetadata/v1/pod/hmac/sign              form content=…  -> base64 HMAC-SHA512
    POST /acMetadata/v1/pod/hmac/verify            form content, uuid, signature -> 200 or 403
"""
from __future__ import annotations

import json
import os
import select
import socket
import threading
import urllib.parse

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any

PREFIX = "/acMetadata/v1/"
TEXT = "text/plain; charset=us-ascii"


def new_token() -> str:
    # 16 bytes from the kernel's CSPRNG (what secrets.token_hex does; secrets itself imports
    # hashlib, hmac and random, ~4 ms on every pod start)
    return os.urandom(16).hex()


def url_for(sock: socket.socket, token: str) -> str:
    """``$AC_METADATA_URL`` for a service on ``sock`` (known before the service runs)."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}/{token}"


# What http.server imports, one module at a time: ~30 ms of CPU on a loaded 2-core machine. The
# service's thread imports them while the pod runs, holding the GIL; a pod that ended meanwhile
# (/bin/true ends within ~10 ms) stops the build between two of them, so that its teardown
# does not wait behind the rest at every system call. ssl comes first: it is one ~7 ms C call
# (loading _ssl), best taken while the pod is starting and the supervisor waits; the others
# are small steps (~2 ms at most each), the last one http.server itself.
BUILD_STEP_WAIT = 0.05      # seconds stop() waits for the build's import under way

_SERVER_IMPORTS = ("ssl", "random", "locale", "calendar", "email.charset", "email.utils",
                   "email.feedparser", "email.parser", "email.message", "http.client", "copy",
                   "html", "mimetypes", "bz2", "lzma", "shutil", "socketserver", "http.server")


def _make_server(sock: socket.socket, service: "MetadataService") -> Any:
    """The HTTP server on ``sock``, or None when the service was stopped while it was built.

    http.server (with http.client and email) is imported here, not at the top: the supervisor
    binds the socket and starts stage1 first, and only then builds the server."""
    for name in _SERVER_IMPORTS:
        if service._stopped:
            return None
        try:
            __import__(name)
        except ImportError:     # optional for http.server (ssl, bz2, lzma): it copes without
            pass
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sandbox import bounded

    class Handler(bounded.TimedRequests, _Routes, BaseHTTPRequestHandler):
        # each recv waits at most this long, and the whole request too (an app in the pod that
        # drips its request one byte at a time must not hold a thread of the supervisor)
        request_limit = bounded.METADATA_REQUEST_SECONDS
        request_what = "a metadata request"

    class Server(bounded.CountedRequests, ThreadingHTTPServer):
        # At most METADATA_CONNECTIONS requests are served at once (a thread each, and a
        # deadline's timer): an app that opens connections by the thousand must not make the
        # supervisor start threads by the thousand; further connections wait in the socket's
        # backlog, as they do before the server is built.
        daemon_threads = True
        timeout = 0.5                   # handle_request() never blocks for long

        def stopping(self) -> bool:
            return service._stopped

        def handle_error(self, request: Any, client_address: Any) -> None:
            # a client that hangs up mid-answer (or is cut off by its deadline) is the client's
            # business: no traceback in the pod's log
            service.log("(connection dropped)")

    service._log_entries = bounded.METADATA_LOG_ENTRIES.value
    server = Server(sock.getsockname(), Handler, bind_and_activate=False)
    server.slots = threading.BoundedSemaphore(bounded.METADATA_CONNECTIONS.value)
    server.socket.close()
    server.socket = sock
    server.service = service
    return server


class _Routes:
    """The request handler's routes (mixed into http.server's BaseHTTPRequestHandler)."""

    def log_message(self, fmt: str, *args: Any) -> None:  # keep stderr quiet; count instead
        path = getattr(self, "path", "") or ""
        self.server.service.log(f"{getattr(self, 'command', None) or '-'} {path.split('/', 2)[-1]}")

    # Text answers (uuid, image id, hmac) are ASCII; appc's ace-validator insists on exactly
    # this Content-Type (validator.go: "text/plain; charset=us-ascii").
    def _reply(self, code: int, body: bytes | str = b"", ctype: str = TEXT) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> str | None:
        svc = self.server.service
        parts = self.path.split("?", 1)[0]
        want = f"/{svc.token}{PREFIX}"
        if not parts.startswith(want):
            self._reply(403, "missing or wrong metadata token\n")
            return None
        return parts[len(want):]

    def _body(self) -> bytes | None:
        """The request body, or None after answering 411/400/413: RFC 9110 §8.6 says
        Content-Length is 1*DIGIT (no sign, no spaces inside), and the forms here are small
        (METADATA_BODY_BYTES). Chunked bodies are not accepted (411: send a length)."""
        from sandbox import bounded
        raw = self.headers.get("Content-Length")
        if raw is None or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._reply(411, "a POST needs a Content-Length\n")
            return None
        raw = raw.strip()
        if not raw.isdigit() or not raw.isascii():
            self.close_connection = True
            self._reply(400, "Content-Length must be a decimal number\n")
            return None
        length = bounded.plain_int(raw)         # None: more digits than any body could have
        if length is None:
            length = bounded.METADATA_BODY_BYTES.value + 1
        if length > bounded.METADATA_BODY_BYTES.value:
            self.close_connection = True
            self._reply(413, f"the body is over {bounded.METADATA_BODY_BYTES.value} bytes\n")
            return None
        data = self.rfile.read(length)
        if len(data) != length:          # the client went away, or the deadline shut it
            self.close_connection = True
            return None
        return data

    def do_GET(self) -> None:  # noqa: N802
        route = self._route()
        if route is None:
            return
        svc = self.server.service
        js = lambda o: self._reply(200, json.dumps(o), "application/json")  # noqa: E731
        if route == "pod/annotations":
            return js(svc.pod_manifest.get("annotations") or [])
        if route == "pod/manifest":
            return js(svc.pod_manifest)
        if route == "pod/uuid":
            return self._reply(200, svc.uuid)
        if route.startswith("apps/"):
            _, name, *rest = route.split("/")
            app = svc.apps.get(name)
            if app is None:
                return self._reply(404, f"no app {name} in this pod\n")
            sub = "/".join(rest)
            if sub == "annotations":
                merged = {a["name"]: a["value"] for a in app["image_manifest"].get("annotations") or []}
                merged.update({a["name"]: a["value"] for a in app.get("annotations") or []})
                return js([{"name": k, "value": v} for k, v in merged.items()])
            if sub == "image/manifest":
                return js(app["image_manifest"])
            if sub == "image/id":
                return self._reply(200, app["image_id"])
        self._reply(404, "unknown metadata path\n")

    def do_POST(self) -> None:  # noqa: N802
        route = self._route()
        if route is None:
            return
        svc = self.server.service
        body = self._body()
        if body is None:
            return
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        content = (form.get("content") or [""])[0]
        if route == "pod/hmac/sign":
            return self._reply(200, svc.sign(content))
        if route == "pod/hmac/verify":
            ok = svc.verify(content, (form.get("uuid") or [""])[0],
                            (form.get("signature") or [""])[0])
            return self._reply(200 if ok else 403, "" if ok else "signature does not verify\n")
        self._reply(404, "unknown metadata path\n")


class MetadataService:
    """One pod's metadata service on a socket stage0 bound (in the pod's netns)."""

    def __init__(self, sock: socket.socket, *, token: str, uuid: str,
                 pod_manifest: dict[str, Any], apps: dict[str, dict[str, Any]],
                 hmac_key: bytes | None = None) -> None:
        self.token, self.uuid = token, uuid
        # /pod/annotations answers [] for a pod without annotations, so the manifest served says
        # so too (a Go client decodes a missing key as nil and [] as empty: ace-validator's
        # DeepEqual would tell them apart).
        self.pod_manifest = {**pod_manifest, "annotations": pod_manifest.get("annotations") or []}
        self.apps = apps
        self.key = hmac_key or os.urandom(64)
        # what was asked, for run.json: the first METADATA_LOG_ENTRIES requests, each cut short,
        # and how many there were (an app may ask millions of times, with 64 KiB paths)
        self.requests: list[str] = []
        self.request_count = 0
        self._log_entries = 0           # set by _make_server (sandbox.bounded is imported
                                        # there, off the pod's start path)
        self._sock = sock
        self._server: Any = None        # built by the service's thread (see _serve)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.url = url_for(sock, token)

    LOG_ENTRY_CHARS = 200

    def log(self, entry: str) -> None:
        """Note one request (run.json's ``metadataRequests``), within METADATA_LOG_ENTRIES."""
        self.request_count += 1
        if len(self.requests) < self._log_entries:
            self.requests.append(entry if len(entry) <= self.LOG_ENTRY_CHARS
                                 else entry[:self.LOG_ENTRY_CHARS] + "…")

    def sign(self, content: str) -> str:
        import base64
        import hashlib
        import hmac
        return base64.b64encode(hmac.new(self.key, content.encode(), hashlib.sha512).digest()).decode()

    def verify(self, content: str, uuid: str, signature: str) -> bool:
        import hmac
        return uuid == self.uuid and hmac.compare_digest(self.sign(content), signature)

    def start(self) -> "MetadataService":
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="metadata", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        # The HTTP server (and the import of http.server, ~15 ms) is built here, in this thread,
        # which starts once the pod's PID 1 is running: the pod's start does not wait for it, and
        # neither does the first request. (Built on the first connection instead, it missed the
        # 100 ms that appc's ACE validator gives a metadata request on a loaded or emulated
        # machine.) Until it is ready, early callers wait in the socket's backlog.
        server = _make_server(self._sock, self)
        with self._lock:
            if self._stopped:           # the pod ended while it was built: never served
                if server is None:
                    self._sock.close()
                else:
                    server.server_close()   # closes the socket too
                return
            self._server = server
        # socketserver's serve_forever notices a shutdown only at its next poll; waiting on the
        # socket and a pipe instead lets stop() end the loop at once (a pod's teardown waits).
        while True:
            ready = select.select([self._sock, self._wake[0]], [], [])[0]
            if self._wake[0] in ready:
                return
            server.handle_request()

    def stop(self) -> None:
        """End the service. A server still being built (a pod that ended within a few ms, e.g.
        /bin/true) is not waited for: its thread stops at its next import and closes the
        socket itself. Only that import is waited for (up to BUILD_STEP_WAIT): the teardown
        that follows needs the GIL at every system call, and beside an importing thread each
        hand-over cost a switch interval and a scheduling delay (5-9 ms of a teardown under
        load, longer than the import itself); a longer one goes on on its own."""
        with self._lock:
            self._stopped = True
            server = self._server
        if self._thread is None:
            self._sock.close()
            return
        if server is not None:
            os.write(self._wake[1], b"x")
            self._thread.join(5)
            server.server_close()       # closes the socket too
        else:
            self._thread.join(BUILD_STEP_WAIT)
        for fd in self._wake:
            os.close(fd)
        self._thread = None


def listen() -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (kernel-chosen port) in the calling thread's network
    namespace. A socket stays in the netns it was created in."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s
