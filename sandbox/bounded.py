"""Bounded input: every limit the kit puts on what it reads, and the readers that enforce them.

The image author is not trusted (docs/security.md), so nothing an image, a server, a CNI
config or a signature file says may make the kit use unbounded memory or time. Each limit is a
named :class:`Limit` in :data:`LIMITS` with its default; a limit a real user could need to raise
has an environment variable that overrides it (``SANDBOX_MAX_…``; read at the moment of use, so
a notebook can change it with ``os.environ``). docs/security.md §Limits lists the same table; a
test keeps the two equal.

This module is imported by every CNI plugin exec: it imports nothing beyond ``json``, ``os`` and
``re`` (json imports re anyway) and the kit's errors.
"""
from __future__ import annotations

import json
import os
import re

from sandbox.errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ms per plugin exec; annotations are strings anyway
    from typing import Any, Callable

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class Limit:
    """One bound: its name, default, unit, the variable that overrides it (None = fixed) and
    what it protects."""

    __slots__ = ("name", "default", "unit", "env", "what")

    def __init__(self, name: str, default: int, unit: str, env: str | None, what: str) -> None:
        self.name, self.default, self.unit, self.env, self.what = name, default, unit, env, what

    def __repr__(self) -> str:
        return f"<Limit {self.name}={self.default} {self.unit}>"

    @property
    def value(self) -> int:
        """The limit in force: ``$env`` when set (a positive integer, with an optional K/M/G
        suffix for bytes), else the default."""
        raw = os.environ.get(self.env) if self.env else None
        if not raw:
            return self.default
        n = parse_size(raw) if self.unit == "bytes" else plain_int(raw)
        if n is None or n <= 0:
            raise SandboxError(f"${self.env}={raw!r} is not a valid {self.name} limit; give a "
                               "positive whole number" + (" of bytes, e.g. 4G." if self.unit == "bytes"
                                                           else f" of {self.unit}."))
        return n


# One Limit(...) a line, the same shape by design: the table is data, not repeated logic.
# The table (docs/security.md §Limits shows it; tests/fuzz/test_limits_doc.py compares).
MANIFEST_BYTES = Limit("MANIFEST_BYTES", 1 * MiB, "bytes", "SANDBOX_MAX_MANIFEST_BYTES",
                       "an ACI's `manifest` entry, a pod manifest, an image layout's manifest")
JSON_DEPTH = Limit("JSON_DEPTH", 64, "levels", None,
                   "nesting of any JSON document the kit parses (appc manifests, CNI configs and "
                   "results, OCI JSON): deeper documents are refused before parsing")
TAR_META_HEADER_BYTES = Limit("TAR_META_HEADER_BYTES", 1 * MiB, "bytes", None,
                              "one tar metadata header (PAX record set, GNU long name or link)")
TAR_HEADER_CHAIN = Limit("TAR_HEADER_CHAIN", 16, "headers", None,
                         "metadata headers (PAX, GNU long name/link) in a row before one entry")
TAR_SPARSE_ENTRIES = Limit("TAR_SPARSE_ENTRIES", 65536, "entries", None,
                           "the sparse map of one tar entry (old GNU, PAX 0.0/0.1/1.0)")
IMAGE_BYTES = Limit("IMAGE_BYTES", 8 * GiB, "bytes", "SANDBOX_MAX_IMAGE_BYTES",
                    "an image's uncompressed tar, hashed whole for its ID at import and fetch (a "
                    "few hundred bytes of bzip2 expand to hundreds of megabytes); the files one "
                    "image archive or OCI layer makes, a sparse file's holes included")
PATH_DEPTH = Limit("PATH_DEPTH", 512, "levels", None,
                   "directories above one entry of an image archive or OCI layer (the tree "
                   "store's walks and clean-up go down one level at a time)")
# Rendering keeps ~1.6 KB per entry (`image render` of 100,000 empty files: 188 MB at most, 22 s):
# at this default an image's worst case is ~0.8 GB, which the workshop VM's 4 GiB can spare (at
# 1,000,000 it was ~1.6 GB); a real image has tens of thousands (a Debian rootfs ~20,000).
ARCHIVE_ENTRIES = Limit("ARCHIVE_ENTRIES", 500_000, "entries", "SANDBOX_MAX_ARCHIVE_ENTRIES",
                        "entries in one image archive or OCI layer")
DOWNLOAD_BYTES = Limit("DOWNLOAD_BYTES", 2 * GiB, "bytes", "SANDBOX_MAX_DOWNLOAD_BYTES",
                       "one image download (`sandbox fetch --max-size`)")
SMALL_DOWNLOAD_BYTES = Limit("SMALL_DOWNLOAD_BYTES", 1 * MiB, "bytes", None,
                             "a discovery page, a signature or a public key over HTTP(S)")
STALL_SECONDS = Limit("STALL_SECONDS", 20, "seconds", "SANDBOX_STALL_SECONDS",
                      "the longest wait for the next byte of a download (connect included)")
DOWNLOAD_SECONDS = Limit("DOWNLOAD_SECONDS", 3600, "seconds", "SANDBOX_DOWNLOAD_SECONDS",
                         "the whole of one image download, however it trickles "
                         "(`sandbox fetch --deadline`)")
SMALL_DOWNLOAD_SECONDS = Limit("SMALL_DOWNLOAD_SECONDS", 60, "seconds", None,
                               "the whole of one discovery page, signature or key download")
KEY_FILE_BYTES = Limit("KEY_FILE_BYTES", 1 * MiB, "bytes", "SANDBOX_MAX_KEY_BYTES",
                       "an OpenPGP key or signature file, from disk or a URL")
ACCOUNT_FILE_BYTES = Limit("ACCOUNT_FILE_BYTES", 4 * MiB, "bytes", "SANDBOX_MAX_ACCOUNT_FILE_BYTES",
                           "an image's /etc/passwd or /etc/group, read to turn a user or group "
                           "name into a number")
METADATA_BODY_BYTES = Limit("METADATA_BODY_BYTES", 64 * KiB, "bytes", None,
                            "a POST body sent to a pod's metadata service (the HMAC sign/verify "
                            "forms)")
METADATA_REQUEST_SECONDS = Limit("METADATA_REQUEST_SECONDS", 10, "seconds", None,
                                 "one request to a pod's metadata service, headers and body (a "
                                 "client that stops sending is dropped)")
METADATA_CONNECTIONS = Limit("METADATA_CONNECTIONS", 32, "connections", None,
                             "requests a pod's metadata service serves at once (one thread "
                             "each); further connections wait in the socket's backlog")
METADATA_LOG_ENTRIES = Limit("METADATA_LOG_ENTRIES", 256, "entries", None,
                             "requests a pod's metadata service names in its run.json "
                             "(`metadataRequests`, each cut at 200 characters; the rest are "
                             "counted in `metadataRequestCount`)")
SERVE_REQUEST_SECONDS = Limit("SERVE_REQUEST_SECONDS", 10, "seconds", None,
                              "a request's line and headers sent to `sandbox serve` (a client "
                              "that stops sending is dropped; any later read or write waits at "
                              "most STALL_SECONDS)")
SERVE_CONNECTIONS = Limit("SERVE_CONNECTIONS", 64, "connections", None,
                          "requests `sandbox serve` answers at once (one thread each); further "
                          "connections wait in the socket's backlog")
SERVE_LOG_ENTRIES = Limit("SERVE_LOG_ENTRIES", 10_000, "entries", None,
                          "requests `sandbox serve` keeps in its log (the newest; a path is cut "
                          "at 2,000 characters)")
CNM_REQUEST_SECONDS = Limit("CNM_REQUEST_SECONDS", 10, "seconds", None,
                            "one request to the kit's CNM remote driver, headers and body (it "
                            "answers one at a time: a caller that stops sending is dropped)")
CNI_CONFIG_BYTES = Limit("CNI_CONFIG_BYTES", 1 * MiB, "bytes", "SANDBOX_MAX_CNI_CONFIG_BYTES",
                         "a CNI network configuration file, a plugin's stdin, a plugin's result")
OCI_JSON_BYTES = Limit("OCI_JSON_BYTES", 4 * MiB, "bytes", "SANDBOX_MAX_OCI_JSON_BYTES",
                       "an OCI index.json, image index, manifest or config blob (the distribution "
                       "spec's manifest limit)")
LIMITS: tuple[Limit, ...] = (
    MANIFEST_BYTES, JSON_DEPTH, TAR_META_HEADER_BYTES, TAR_HEADER_CHAIN, TAR_SPARSE_ENTRIES,
    IMAGE_BYTES, PATH_DEPTH, ARCHIVE_ENTRIES, DOWNLOAD_BYTES, SMALL_DOWNLOAD_BYTES, STALL_SECONDS, DOWNLOAD_SECONDS,
    SMALL_DOWNLOAD_SECONDS, KEY_FILE_BYTES, ACCOUNT_FILE_BYTES, METADATA_BODY_BYTES,
    METADATA_REQUEST_SECONDS, METADATA_CONNECTIONS, METADATA_LOG_ENTRIES, SERVE_REQUEST_SECONDS,
    SERVE_CONNECTIONS, SERVE_LOG_ENTRIES, CNM_REQUEST_SECONDS, CNI_CONFIG_BYTES, OCI_JSON_BYTES)


class InputTooLarge(SandboxError):
    """An input is over one of the limits above; the message names the limit and how to raise it."""


def _sentence_start(what: str) -> str:
    return what[:1].upper() + what[1:]


def too_large(limit: Limit, what: str, value: int | None = None, bound: int | None = None,
              cls: type[InputTooLarge] = InputTooLarge) -> InputTooLarge:
    """The error (``cls``) for ``what`` exceeding ``limit`` (``bound``: the value in force, if
    not the limit's current value)."""
    bound = limit.value if bound is None else bound
    size = f" ({value} {limit.unit})" if value is not None else ""
    how = (f" Raise it with ${limit.env} if you trust the source." if limit.env
           else " This bound is fixed: a real input never comes near it.")
    return cls(f"{_sentence_start(what)} is over the {limit.name} limit of {bound} {limit.unit}{size}; "
                         f"it was refused." + how)


def plain_int(text: str, digits: int = 20) -> int | None:
    """``text`` as a whole number when it is 1 to ``digits`` ASCII digits, else None. A header,
    a label or a variable checked with ``str.isdigit`` alone still crashed ``int()``: "²" is a
    digit to ``isdigit``, and ``int()`` refuses 4,300 digits and more (ValueError)."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_size(text: str) -> int | None:
    """``"500M"`` → 524288000: a byte count with an optional K/M/G/T suffix (powers of 1024),
    or None when it is not one."""
    m = re.match(r"^\s*([0-9]{1,20})\s*([KMGT]i?B?|B)?\s*$", text, re.IGNORECASE)
    if not m:
        return None
    unit = (m[2] or "B").upper()[:1]
    return int(m[1]) << {"B": 0, "K": 10, "M": 20, "G": 30, "T": 40}[unit]


# ---------------------------------------------------------------------------------------- JSON

class BadJSON(SandboxError, ValueError):
    """A JSON document the kit refuses: malformed, too deep, or with a number no 64-bit float
    holds. A ValueError too, so callers that report ``json.loads`` failures report these the same
    way. ``reason`` is the clause after "<document> is", e.g. "not valid JSON (…)"."""

    def __init__(self, reason: str, what: str = "the JSON document") -> None:
        self.reason, self.what = reason, what
        super().__init__(f"{_sentence_start(what)} is {reason}.")


_MAX_NUMBER_DIGITS = 309   # the widest integer a float64 holds (1.8e308), as Go decodes numbers


def nesting_depth_over(text: str, limit: int) -> bool:
    """True when arrays/objects in ``text`` nest deeper than ``limit`` (brackets inside strings
    do not count). A pre-scan: Python's json parser recurses once per level and dies with a
    RecursionError near 1000 levels, and later consumers (dumps, copies) recurse too."""
    if text.count("[") + text.count("{") <= limit:
        return False          # the common case: too few openers to be that deep
    depth, in_str, skip = 0, False, -1
    for m in re.finditer(r'[\[\]{}"\\]', text):   # (re caches it; compiled on first use)
        i = m.start()
        if i == skip:         # the character after a backslash inside a string
            continue
        c = text[i]
        if in_str:
            if c == "\\":
                skip = i + 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            if depth > limit:
                return True
        elif c in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise BadJSON(f"not valid JSON ({name} is not a number in JSON, RFC 8259)")


def _finite_float(text: str) -> float:
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise BadJSON(f"not valid JSON for this kit (the number {text[:30]}"
                      f"{'…' if len(text) > 30 else ''} is beyond what a 64-bit float holds)")
    return v


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_DIGITS + 1:
        raise BadJSON(f"not valid JSON for this kit (an integer of {len(text.lstrip('-'))} "
                      "digits is beyond what a 64-bit float holds)")
    return int(text)


def _lone_surrogate(v: Any) -> bool:
    if isinstance(v, str):
        return any("\ud800" <= c <= "\udfff" for c in v)
    if isinstance(v, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_lone_surrogate(x) for x in v)
    return False


def loads(data: bytes | bytearray | str, what: str = "the JSON document", *,
          limit: Limit | None = None, max_bytes: int | None = None,
          object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """``json.loads`` for untrusted text: at most ``limit``'s value (or ``max_bytes``) long,
    nested at most :data:`JSON_DEPTH` levels, UTF-8, numbers that fit a 64-bit float (what Go's
    encoding/json, and so actool and the upstream CNI plugins, accept), no NaN/Infinity.
    Raises :class:`InputTooLarge` for the size and :class:`BadJSON` for the rest, naming
    ``what``. A BadJSON raised by ``object_pairs_hook`` passes through as it is."""
    if limit is not None:
        bound = limit.value if max_bytes is None else max_bytes
        if len(data) > bound:
            raise too_large(limit, what, len(data), bound)
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadJSON(f"not valid JSON (byte {e.start} is not UTF-8, RFC 8259 §8.1)", what) from e
    depth = JSON_DEPTH.value
    if nesting_depth_over(data, depth):
        raise BadJSON(f"nested deeper than {depth} levels (the JSON_DEPTH limit; no real "
                      "document comes near it)", what)
    try:
        doc = json.loads(data, parse_float=_finite_float, parse_int=_bounded_int,
                         parse_constant=_no_constant, object_pairs_hook=object_pairs_hook)
        if re.search(r"\\u[dD][89a-fA-F]", data) and _lone_surrogate(doc):
            # "\ud800" is valid JSON syntax but no character (RFC 8259 §8.2): it cannot be
            # written out as UTF-8 again, so it is refused here rather than deep in a writer
            raise BadJSON("not valid JSON for this kit (a string holds a lone UTF-16 surrogate, "
                          "which is not a character)")
        return doc
    except BadJSON as e:
        if e.what == "the JSON document" and what != e.what:   # from a number hook
            raise type(e)(e.reason, what) from None
        raise
    except RecursionError as e:     # cannot happen below JSON_DEPTH; kept as a last guard
        raise BadJSON("nested too deeply to be parsed", what) from e
    except ValueError as e:
        raise BadJSON(f"not valid JSON ({e})", what) from e


# ---------------------------------------------------------------------------------------- time

class TookTooLong(SandboxError):
    """A download stalled, or went on past its deadline; the message names the limit."""


class Deadline:
    """The time limit of one whole exchange (every redirect hop, the headers, the body).

    A socket timeout only bounds each ``recv``: a server that sends one byte every few seconds
    never trips it, in the headers or in the body. ``watch(sock)`` arms a timer that shuts the
    socket down when the time is up, which ends any read blocked on it; ``check()`` then raises
    :class:`TookTooLong`. Use as a context manager (the timer is cancelled on exit)."""

    def __init__(self, limit: Limit, what: str, seconds: float | None = None) -> None:
        import time
        self.limit, self.what = limit, what
        self.seconds = float(limit.value if seconds is None else seconds)
        self._clock = time.monotonic
        self.end = self._clock() + self.seconds
        self.fired = False
        self._timer: Any = None

    def remaining(self) -> float:
        return max(0.0, self.end - self._clock())

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down when the deadline passes (a new call replaces the old watch)."""
        import threading
        self.cancel()
        self._timer = threading.Timer(self.remaining(), self._fire, (sock,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, sock: Any) -> None:
        import socket
        self.fired = True
        try:     # the plain socket's shutdown: an SSLSocket's would drop its TLS state under a reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def connection_class(self, base: Any) -> Any:
        """``base`` (http.client's HTTP or HTTPS connection class) made to hand its socket to
        this deadline once connected: a server that drips its headers is cut off too."""
        deadline = self

        class Watched(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)
        return Watched

    def expired(self) -> bool:
        return self.fired or self._clock() >= self.end

    def error(self, got: int | None = None) -> TookTooLong:
        how = (f" Raise it with ${self.limit.env} (or the command's --deadline) if the link is "
               "just slow." if self.limit.env else "")
        have = f" after {got} bytes" if got is not None else ""
        return TookTooLong(f"{_sentence_start(self.what)} took longer than {self.seconds:g} s "
                           f"(the {self.limit.name} limit) and was stopped{have}; the server is too "
                           "slow or drips its answer." + how)

    def check(self, got: int | None = None) -> None:
        if self.expired():
            raise self.error(got)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __enter__(self) -> "Deadline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class TimedRequests:
    """Mixin for the kit's HTTP request handlers (before ``BaseHTTPRequestHandler`` in the
    bases): each read and write waits at most ``stall_limit`` (default ``request_limit``) and a
    request, from its first byte, must arrive within ``request_limit`` (:class:`Deadline`): a
    client that connects and stops sending, or drips its request a byte at a time, would hold
    its thread (or a one-at-a-time server) for ever. ``arm()`` starts a request's deadline
    again (a kept-alive connection's next request); a handler that answers with a long body
    cancels it first. Used by ``sandbox serve``, the pod's metadata service and the CNM
    driver; http.server itself is imported by the server, not here."""

    request_limit: Limit
    request_what = "a request"
    stall_limit: Limit | None = None

    def setup(self) -> None:
        self.timeout = (self.stall_limit or self.request_limit).value
        super().setup()                                 # type: ignore[misc]
        self.arm()

    def arm(self) -> None:
        self.deadline = Deadline(self.request_limit, self.request_what)
        self.deadline.watch(self.connection)            # type: ignore[attr-defined]

    def finish(self) -> None:
        self.deadline.cancel()
        try:
            super().finish()                            # type: ignore[misc]
        except OSError:          # the client went away, or the deadline shut the socket
            pass


class CountedRequests:
    """Mixin for socketserver's threading servers (before ``ThreadingHTTPServer``): at most
    ``slots`` (a ``threading.BoundedSemaphore``) requests are served at once, a thread each; the
    serving loop waits for a free slot and further connections wait in the listen backlog, so
    connections opened by the thousand do not start threads by the thousand. ``stopping()``
    ends the wait when the server is being stopped."""

    slots: Any

    def stopping(self) -> bool:
        return False

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self.slots.acquire(timeout=0.1):
            if self.stopping():
                self.shutdown_request(request)          # type: ignore[attr-defined]
                return
        try:
            super().process_request(request, client_address)    # type: ignore[misc]
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)     # type: ignore[misc]
        finally:
            self.slots.release()


def stalled(what: str, seconds: float) -> TookTooLong:
    """The error for a read that got nothing for ``seconds`` (the socket timeout)."""
    return TookTooLong(f"{_sentence_start(what)} stalled: no data for {seconds:g} s (the "
                       f"STALL_SECONDS limit); the server or the network stopped. Try again, or raise "
                       f"${STALL_SECONDS.env} for a very slow link.")


def copy_limited(read1: Callable[[int], bytes], write: Callable[[bytes], Any], *, limit: Limit,
                 what: str, deadline: Deadline, max_bytes: int | None = None,
                 stall: float | None = None, chunk: int = 1 << 16) -> int:
    """Copy a response body from ``read1`` (one ``recv`` per call, e.g. HTTPResponse.read1) to
    ``write`` until EOF: at most ``max_bytes`` (default ``limit``'s value), within ``deadline``,
    and a read that times out is a stall. Returns the bytes copied."""
    bound = limit.value if max_bytes is None else max_bytes
    got = 0
    while True:
        deadline.check(got)
        try:
            data = read1(chunk)
        except TimeoutError as e:
            if deadline.expired():
                raise deadline.error(got) from e
            raise stalled(what, stall if stall is not None else STALL_SECONDS.value) from e
        except Exception as e:   # a reset, an IncompleteRead, a TLS error...
            if deadline.expired():   # ... caused by our own watchdog shutting the socket down
                raise deadline.error(got) from e
            raise
        if not data:
            if deadline.fired:       # shut down mid-body: an early EOF, not the end
                raise deadline.error(got)
            return got
        got += len(data)
        if got > bound:
            raise too_large(limit, what, None, bound)
        write(data)


# ---------------------------------------------------------------------------------------- shapes
# What Go's typed json.Unmarshal enforces (upstream CNI plugins, registries, skopeo): a spec is a
# type (str, bool, int, float), ``dict``/``list`` (any object/array), {key: spec} (an object whose
# listed keys have those shapes; others are free) or [spec] (an array of them). null counts as
# absent, as in Go.

_SHAPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
                list: "an array", dict: "an object"}


def jtype(v: Any) -> str:
    """The JSON type of a decoded value, in words."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an array" if isinstance(v, list) else "an object"


def _spec_name(spec: Any) -> str:
    return ("an object" if isinstance(spec, dict) else "an array" if isinstance(spec, list)
            else _SHAPE_NAMES[spec])


def shape_problem(value: Any, spec: Any, where: str) -> str | None:
    """``"<where> must be <type>, not <type>"`` for the first part of ``value`` whose JSON type
    is not ``spec``'s, or None."""
    if value is None:
        return None
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where} must be an object, not {jtype(value)}"
        for k, sub in spec.items():
            problem = shape_problem(value.get(k), sub, f"{where}.{k}" if where else k)
            if problem:
                return problem
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where} must be an array, not {jtype(value)}"
        for i, x in enumerate(value):
            # null inside an array is not "absent": the readers would meet a None
            problem = (f"{where}[{i}] must be {_spec_name(spec[0])}, not null" if x is None
                       else shape_problem(x, spec[0], f"{where}[{i}]"))
            if problem:
                return problem
        return None
    if spec is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, spec)
    return None if ok else f"{where} must be {_SHAPE_NAMES[spec]}, not {jtype(value)}"


def read_at_most(f: Any, limit: Limit, what: str, bound: int | None = None) -> bytes:
    """Read a whole stream or file object, refusing it when it holds more than the limit."""
    bound = limit.value if bound is None else bound
    data = f.read(bound + 1)
    if len(data) > bound:
        raise too_large(limit, what, None, bound)
    return data


def open_regular(path: str | os.PathLike[str], what: str | None = None) -> Any:
    """``path`` opened for reading (binary) if it is a regular file, else a SandboxError. The
    open itself never waits: a FIFO is opened non-blocking (a plain open waits for a writer
    for ever) and refused, like a device (/dev/zero never ends)."""
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):      # what open() says for a directory (callers catch it)
            raise IsADirectoryError(21, os.strerror(21), str(path))
        if not stat.S_ISREG(mode):
            raise SandboxError(f"{what or path} is not a regular file; give the path of a file.")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_file(path: str | os.PathLike[str], what: str, fix: str,
               error: type[SandboxError] = SandboxError) -> None:
    """The one check of a file the user named before it is read: a regular file (links
    followed), else ``error`` saying what is there instead — nothing, a directory, or a device
    or FIFO (which "does not exist" misnamed) — and ``fix``, what to give instead."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        state = "does not exist"
    except OSError as e:
        state = f"cannot be read ({e.strerror.lower() if e.strerror else e})"
    else:
        if stat.S_ISREG(mode):
            return
        state = "is a directory" if stat.S_ISDIR(mode) else "is not a regular file (a device or a FIFO)"
    raise error(f"{what} {os.fspath(path)} {state}; {fix}.")


def read_file(path: str | os.PathLike[str], limit: Limit, what: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` (a FIFO or /dev/zero is refused too,
    without waiting: :func:`open_regular`)."""
    what = what or str(path)
    with open_regular(path, what) as f:
        return read_at_most(f, limit, what)


def human(limit: Limit) -> str:
    """A limit's default as people write it: ``1 MiB``, ``20 s``, ``64 levels``."""
    n = limit.default
    if limit.unit == "bytes":
        for size, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
            if n >= size and n % size == 0:
                return f"{n // size} {name}"
        return f"{n} bytes"
    if limit.unit == "seconds":
        return f"{n} s"
    return f"{n:,} {limit.unit}"


def markdown_table() -> str:
    """The table docs/security.md §Limits holds (a test compares them)."""
    rows = ["| limit | default | override | what it bounds |", "|---|---|---|---|"]
    for lim in LIMITS:
        env = f"`{lim.env}`" if lim.env else "fixed"
        rows.append(f"| `{lim.name}` | {human(lim)} | {env} | {lim.what} |")
    return "\n".join(rows)
