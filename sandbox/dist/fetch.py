"""Fetching an image: from an app string, a URL or a local file into the store, verified.

The order is rkt's (rkt/image/namefetcher.go, Documentation/image-fetching-behavior.md):

1. **Discover** (:mod:`sandbox.dist.discovery`) the ACI and ``.aci.asc`` URLs for ``name`` + labels
   (``os`` / ``arch`` default to this machine); take the first http(s) endpoint.
2. **Signature first.** Download the small ``.aci.asc`` and check that its signer is a key
   trusted for the name (:meth:`sandbox.trust.truststore.TrustStore.check_signer`). If not, stop *before*
   the big download and say which ``sandbox trust --prefix ...`` would fix it.
3. **Download** the ACI (progress bar on stderr).
4. **Verify** the signature over the ACI bytes exactly as served (compressed or not).
5. **Check identity** (discovery.md §Validation): the manifest's name must equal the request and
   every requested label must be present with the same value
   (``requested value for label "version": "2.0" differs from fetched aci label value: "1.2.0"``).
   Labels the user did not ask for - including the machine's os/arch defaults - only have to
   match when the manifest has them.
6. **Import** into the store (:meth:`sandbox.image.store.Store.import_aci`), marked ``latest`` when no
   version was requested.

``--insecure-options`` (rkt/flag/secflags.go): ``image`` skips signature checks, ``http`` allows
plain HTTP, ``tls`` skips certificate checks, ``pubkey`` allows keys over insecure transport
(this kit never trusts keys by itself, so it only affects hints); ``all-fetch`` is all four.

HTTP responses are cached under ``$SANDBOX_DIR/cache/http`` (:class:`HttpCache`): a response
with ``Cache-Control: max-age=N`` is reused for N seconds without asking; after that, or with
only an ``ETag``, the next request carries ``If-None-Match`` and a ``304`` reuses the stored body.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from sandbox import bounded
from sandbox.dist import discovery as disc
from sandbox.config import sandbox_dir
from sandbox.dist.discovery import App, Discovery, Transport, TransportError
from sandbox.errors import SandboxError, UsageError
from sandbox.steps import Steps, record

class FetchError(SandboxError):
    """A download failed or an image was refused."""


class ImageMismatch(FetchError):
    """The fetched manifest's name or labels differ from what was requested."""


# --------------------------------------------------------------------------------------------
# --insecure-options
# --------------------------------------------------------------------------------------------

FETCH_OPTIONS = ("image", "tls", "http", "pubkey")
RUN_OPTIONS = ("capabilities", "paths", "seccomp")
_GROUPS = {"all-fetch": FETCH_OPTIONS, "all-run": RUN_OPTIONS, "all": FETCH_OPTIONS + RUN_OPTIONS,
           "ondisk": (), "none": ()}


@dataclass(frozen=True)
class InsecureOptions:
    """The relaxations a user asked for (rkt's ``--insecure-options``)."""

    image: bool = False     # skip signature verification
    tls: bool = False       # skip TLS certificate checks
    http: bool = False      # allow plain HTTP
    pubkey: bool = False    # allow fetching public keys insecurely
    run: frozenset[str] = frozenset()   # capabilities/paths/seccomp: for `run`, not fetch

    @classmethod
    def parse(cls, value: "str | Iterable[str] | InsecureOptions | None") -> "InsecureOptions":
        """``"image,http"`` or ``["tls"]`` -> options; ``all-fetch`` = image+tls+http+pubkey."""
        if isinstance(value, InsecureOptions):
            return value
        if value is None:
            return cls()
        items = value.split(",") if isinstance(value, str) else list(value)
        chosen: set[str] = set()
        for raw in items:
            item = raw.strip().lower()
            if not item:
                continue
            if item in _GROUPS:
                chosen.update(_GROUPS[item])
            elif item in FETCH_OPTIONS or item in RUN_OPTIONS:
                chosen.add(item)
            else:
                valid = ", ".join(FETCH_OPTIONS + RUN_OPTIONS + tuple(_GROUPS))
                raise UsageError(f"Unknown insecure option {item!r}; choose from: {valid}.")
        return cls(image="image" in chosen, tls="tls" in chosen, http="http" in chosen,
                   pubkey="pubkey" in chosen, run=frozenset(chosen & set(RUN_OPTIONS)))

    def __str__(self) -> str:
        on = [n for n in FETCH_OPTIONS if getattr(self, n)] + sorted(self.run)
        return ",".join(on) or "none"

    def transport(self, ca_file: str | None = None) -> Transport:
        return Transport(allow_http=self.http, insecure_tls=self.tls, ca_file=ca_file)


# --------------------------------------------------------------------------------------------
# HTTP cache (ETag / Cache-Control: max-age)
# --------------------------------------------------------------------------------------------

@dataclass
class CacheEntry:
    url: str
    etag: str | None
    max_age: int | None
    stored_at: float
    size: int
    body: Path | None          # the cached body, or None when it lives in the image store
    image_id: str | None = None  # for ACIs: the stored image the body became (rkt's remote table)

    def fresh(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.max_age is not None and now < self.stored_at + self.max_age


def _cache_control(value: str | None) -> tuple[int | None, bool]:
    """(max-age, storable) from a Cache-Control header (RFC 9111 §5.2.2)."""
    if not value:
        return None, True
    directives = {d.strip().split("=", 1)[0].lower(): (d.split("=", 1)[1].strip('" ') if "=" in d else "")
                  for d in value.split(",") if d.strip()}
    storable = "no-store" not in directives
    max_age = None
    if "no-cache" in directives:
        max_age = 0
    elif bounded.plain_int(directives.get("max-age", "")) is not None:
        max_age = bounded.plain_int(directives["max-age"])
    return max_age, storable


class HttpCache:
    """Bodies of GET responses by URL, with their validators, under ``root``."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else sandbox_dir() / "cache" / "http"

    def _key(self, url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()

    def lookup(self, url: str) -> CacheEntry | None:
        meta = self.root / f"{self._key(url)}.json"
        body = self.root / f"{self._key(url)}.body"
        try:
            m = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        if m.get("url") != url:
            return None
        return CacheEntry(url, m.get("etag"), m.get("max_age"), float(m["stored_at"]),
                          int(m.get("size", 0)), body if body.is_file() else None, m.get("image_id"))

    def store(self, url: str, body_file: Path, etag: str | None, max_age: int | None) -> CacheEntry:
        """Move ``body_file`` into the cache (atomically) and write its metadata."""
        self.root.mkdir(parents=True, exist_ok=True)
        body = self.root / f"{self._key(url)}.body"
        os.replace(body_file, body)
        return self._write(CacheEntry(url, etag, max_age, time.time(), body.stat().st_size, body))

    def remember(self, url: str, etag: str | None, max_age: int | None, size: int,
                 image_id: str) -> CacheEntry:
        """Keep only the validators of an ACI; its body is the stored image ``image_id``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (self.root / f"{self._key(url)}.body").unlink()
        return self._write(CacheEntry(url, etag, max_age, time.time(), size, None, image_id))

    def touch(self, entry: CacheEntry, etag: str | None, max_age: int | None) -> CacheEntry:
        """Record a successful revalidation (a 304) now."""
        return self._write(CacheEntry(entry.url, etag or entry.etag, max_age, time.time(),
                                      entry.size, entry.body, entry.image_id))

    def _write(self, entry: CacheEntry) -> CacheEntry:
        key = self._key(entry.url)
        tmp = self.root / f".{key}.json.{os.getpid()}"
        tmp.write_text(json.dumps({"url": entry.url, "etag": entry.etag, "max_age": entry.max_age,
                                   "stored_at": entry.stored_at, "size": entry.size,
                                   "image_id": entry.image_id}))
        os.replace(tmp, self.root / f"{key}.json")
        return entry

    def clear(self) -> int:
        n = 0
        if self.root.is_dir():
            for p in self.root.iterdir():
                p.unlink()
                n += 1
        return n


@dataclass
class Download:
    url: str
    path: Path              # the body (in the cache, the image store, or the work directory)
    size: int
    cache: str              # "fresh" | "revalidated" | "stored" | "none"
    status: int
    etag: str | None = None
    max_age: int | None = None
    cacheable: bool = False
    image_id: str | None = None   # when the body is a stored image (from the cache)


def download(url: str, work: Path, transport: Transport, *, cache: HttpCache | None = None,
             keep_body: bool = True, resolve: "Callable[[str], Path | None] | None" = None,
             progress: bool = False, label: str | None = None, purpose: str = "",
             max_bytes: int | None = None, deadline: float | None = None, small: bool = False,
             steps: Steps | None = None) -> Download:
    """GET ``url`` into ``work``, or reuse the cache; raise :class:`FetchError` unless 200/304.

    ``keep_body=False`` (ACIs) keeps only the validators in the cache: the caller calls
    :meth:`HttpCache.remember` after importing, and ``resolve(image_id)`` finds the body later.
    Bounds (sandbox.bounded): an image may be ``max_bytes`` long (DOWNLOAD_BYTES) and the whole
    exchange takes at most ``deadline`` seconds (DOWNLOAD_SECONDS); a ``small`` document (a
    signature) has the small limits; every read waits at most the transport's stall time.
    """
    size_limit = bounded.SMALL_DOWNLOAD_BYTES if small else bounded.DOWNLOAD_BYTES
    time_limit = bounded.SMALL_DOWNLOAD_SECONDS if small else bounded.DOWNLOAD_SECONDS
    bound = size_limit.value if max_bytes is None else max_bytes
    entry = cache.lookup(url) if cache else None
    body = None
    if entry is not None:
        body = entry.body or (resolve(entry.image_id) if resolve and entry.image_id else None)
        if body is None or not body.is_file():
            entry, body = None, None
    if entry is not None and body is not None and entry.fresh():
        record(steps, "cache", url, result="fresh", age=f"{time.time() - entry.stored_at:.0f}s",
               max_age=entry.max_age, purpose=purpose)
        return Download(url, body, entry.size, "fresh", 200, entry.etag, entry.max_age, True,
                        entry.image_id)
    headers = {"If-None-Match": entry.etag} if entry and entry.etag else {}
    what = f"the {label or 'file'} at {url[:200]}"
    clock = bounded.Deadline(time_limit, f"downloading {what}", deadline)
    try:
        r = disc.open_url(url, transport, headers=headers, steps=steps, purpose=purpose,
                          deadline=clock)
    except TransportError as e:
        raise FetchError(e.message, hint=e.hint) from e
    with r:
        max_age, storable = _cache_control(r.header("Cache-Control"))
        etag = r.header("ETag")
        if r.status == 304 and entry is not None and body is not None and cache is not None:
            entry = cache.touch(entry, etag, max_age)
            record(steps, "cache", url, result="revalidated", etag=entry.etag, purpose=purpose)
            return Download(url, body, entry.size, "revalidated", 304, entry.etag, max_age, True,
                            entry.image_id)
        if r.status != 200:
            raise FetchError(f"GET {r.url} answered {r.status} {r._resp.reason}; "
                             f"the {label or 'file'} is not there.")
        if r.length is not None and r.length > bound:   # refused before a byte is read
            raise bounded.too_large(size_limit, what, r.length, bound)
        fd, tmp_name = tempfile.mkstemp(dir=work, prefix="dl-")
        tmp = Path(tmp_name)
        bar = _progress(r.length, label or Path(urlsplit(url).path).name, progress)
        got = [0]

        def write(chunk: bytes) -> None:
            out.write(chunk)
            got[0] += len(chunk)
            bar.update(len(chunk))

        try:
            with os.fdopen(fd, "wb") as out:
                size = r.copy_to(write, limit=size_limit, what=what, max_bytes=bound)
        except (OSError, http_errors()) as e:
            raise FetchError(f"Downloading {url} broke off after {got[0]} bytes ({e}); "
                             "try again.") from e
        finally:
            bar.close()
        if r.length is not None and size != r.length:
            raise FetchError(f"Downloading {url} stopped at {size} of {r.length} bytes; try again.")
    cacheable = bool(cache) and storable and bool(etag or (max_age or 0) > 0)
    if cache is not None and cacheable and keep_body:
        entry = cache.store(url, tmp, etag, max_age)
        record(steps, "cache", url, result="stored", etag=etag, max_age=max_age, purpose=purpose)
        return Download(url, entry.body or tmp, size, "stored", 200, etag, max_age, True)
    return Download(url, tmp, size, "none", 200, etag, max_age, cacheable)


def http_errors() -> type[Exception]:
    """http.client's base error (a body cut short is an IncompleteRead), imported when needed."""
    import http.client
    return http.client.HTTPException


def _progress(total: int | None, desc: str, enabled: bool):
    from sandbox._progress import tqdm_class
    return tqdm_class()(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, disable=not enabled, leave=False)


# --------------------------------------------------------------------------------------------
# Identity check (discovery.md §Validation)
# --------------------------------------------------------------------------------------------

def check_identity(manifest_name: str, manifest_labels: Mapping[str, str], name: str | None,
                   labels: Mapping[str, str], optional: Iterable[str] = (),
                   steps: Steps | None = None) -> None:
    """Refuse an image whose name or labels differ from the request.

    ``optional`` names requested labels that only have to match when present (the os/arch
    defaults this machine added, not ones the user typed)."""
    if name is not None and manifest_name != name:
        record(steps, "check", "manifest name", ok=False, requested=name, found=manifest_name)
        raise ImageMismatch(f'error when reading the app name: "{name}" expected but '
                            f'"{manifest_name}" found; the server published another image under that name.')
    optional = set(optional)
    for k, want in labels.items():
        have = manifest_labels.get(k)
        if have is None and k in optional:
            continue
        if have is None:
            record(steps, "check", f"label {k}", ok=False, requested=want, found=None)
            raise ImageMismatch(f'requested label "{k}" ({want!r}) is not in the fetched aci '
                                f'manifest of {manifest_name}.')
        if have != want:
            record(steps, "check", f"label {k}", ok=False, requested=want, found=have)
            raise ImageMismatch(f'requested value for label "{k}": "{want}" differs from fetched '
                                f'aci label value: "{have}".')
    record(steps, "check", "manifest name and labels", ok=True, name=manifest_name,
           labels=",".join(f"{k}={v}" for k, v in labels.items()))


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------

@dataclass
class FetchResult:
    """What a fetch did: the stored image plus the evidence."""

    image: object                        # sandbox.image.store.Image
    source: str                          # "discovery" | "url" | "file"
    aci_url: str
    asc_url: str | None
    discovery: Discovery | None = None
    verification: object | None = None   # sandbox.trust.pgp.Verification, None with insecure image
    downloads: list[Download] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.image.id  # type: ignore[attr-defined]


def _kind(ref: str) -> str:
    if re.match(r"^https?://", ref):
        return "url"
    if ref.startswith("file://") or ref.endswith(".aci") or os.path.isfile(ref):
        return "file"
    return "app"


def signature_url_for(aci_url: str) -> str:
    """rkt: ``strings.TrimSuffix(url, ".aci") + ".aci.asc"``."""
    return (aci_url[:-4] if aci_url.endswith(".aci") else aci_url) + ".aci.asc"


def _untrusted_hint(err: SandboxError, name: str, pubkeys: list[str],
                    ca_file: str | None) -> SandboxError:
    """Re-raise trust.UntrustedSigner with the discovered key URL in the fix."""
    if not pubkeys:
        return err
    url = pubkeys[0]
    extra = (" --insecure-allow-http" if url.startswith("http://") else "") + \
            (f" --ca-file {shlex.quote(ca_file)}" if ca_file and url.startswith("https://") else "")
    err.hint = (f"The publisher offers keys at {url}: check the fingerprint with the publisher, "
                f"then run `sandbox trust --prefix {name} {shlex.quote(url)}{extra}`.")
    return err


@dataclass(frozen=True)
class Bounds:
    """How big and how slow an image download may be (``sandbox fetch --max-size --deadline``);
    None = the limits in force (sandbox.bounded DOWNLOAD_BYTES, DOWNLOAD_SECONDS)."""

    max_bytes: int | None = None
    deadline: float | None = None


def fetch(ref: "str | App", labels: Mapping[str, str] | None = None, *,
          options: "InsecureOptions | str | Iterable[str] | None" = None,
          store: object | None = None, trust_store: object | None = None,
          discovery_port: int | None = None, ca_file: str | None = None,
          cache: "HttpCache | bool" = True, progress: bool | None = None,
          max_size: int | None = None, deadline: float | None = None,
          steps: Steps | None = None) -> FetchResult:
    """Fetch ``ref`` (app string / :class:`App`, ``https://...aci`` URL, or a local ``.aci``
    path) into the store and return what happened. Raises :class:`SandboxError` subclasses.

    ``max_size`` (bytes) and ``deadline`` (seconds for the whole image download) override
    DOWNLOAD_BYTES and DOWNLOAD_SECONDS (sandbox.bounded)."""
    if max_size is not None and max_size <= 0 or deadline is not None and deadline <= 0:
        raise UsageError("--max-size and --deadline must be positive.")
    bounds = Bounds(max_size, deadline)
    from sandbox.image.store import Store
    from sandbox.trust.truststore import TrustStore

    opts = InsecureOptions.parse(options)
    store = store if store is not None else Store()
    trust = trust_store if trust_store is not None else TrustStore()
    http_cache = cache if isinstance(cache, HttpCache) else (HttpCache() if cache else None)
    transport = opts.transport(ca_file)
    show = sys.stderr.isatty() if progress is None else progress

    kind = "app" if isinstance(ref, App) else _kind(ref)
    work_root = sandbox_dir() / "tmp"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fetch-", dir=work_root))
    try:
        if kind == "file":
            return _fetch_file(str(ref), labels or {}, opts, store, trust, steps)
        if kind == "url":
            return _fetch_url(str(ref), labels or {}, opts, store, trust, transport, http_cache,
                              work, show, bounds, steps)
        app = ref if isinstance(ref, App) else disc.parse_app(ref, labels)
        if isinstance(ref, App) and labels:
            app = app.with_labels(**labels)
        return _fetch_app(app, opts, store, trust, transport, http_cache, work, show,
                          discovery_port, ca_file, bounds, steps)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch_image(ref: "str | App", labels: Mapping[str, str] | None = None, **kwargs: object):
    """:func:`fetch` returning only the stored image (``sandbox.image.store.Image``); for callers
    such as rendering, which fetch a missing dependency by (name, labels)."""
    return fetch(ref, labels, **kwargs).image  # type: ignore[arg-type]


def _fetch_app(app: App, opts: InsecureOptions, store, trust, transport: Transport,
               cache: HttpCache | None, work: Path, show: bool, port: int | None,
               ca_file: str | None, bounds: Bounds, steps: Steps | None) -> FetchResult:
    requested = dict(app.labels)
    full = app.with_platform_defaults()
    defaults = [k for k in ("os", "arch") if k not in requested]
    record(steps, "parse", str(app), name=app.name, labels=dict(full.labels),
           defaults=",".join(defaults) or "none")
    d = disc.discover(full, transport=transport, port=port, steps=steps)
    endpoint = next((e for e in d.endpoints if urlsplit(e.aci).scheme in ("http", "https")), None)
    if endpoint is None:
        raise FetchError(f"Discovery for {app} found only endpoints this kit cannot download "
                         f"({', '.join(e.aci for e in d.endpoints)}); it speaks http(s) only.")
    record(steps, "choose", endpoint.aci, of=len(d.endpoints))
    result = FetchResult(None, "discovery", endpoint.aci, endpoint.asc, discovery=d)

    sig: bytes | None = None
    if opts.image:
        record(steps, "check", "signature", skipped="insecure-options=image")
    else:
        # 2. the small signature first; fail fast before the big download (rkt checkIdentity)
        dl = download(endpoint.asc, work, transport, cache=cache, label="signature",
                      purpose="signature", small=True, steps=steps)
        result.downloads.append(dl)
        sig = dl.path.read_bytes()
        pubkeys = d.public_keys
        if not pubkeys and not trust.has_key_for(app.name):
            with contextlib.suppress(SandboxError):
                pubkeys = disc.discover_public_keys(full, transport=transport, port=port).public_keys
        try:
            trust.check_signer(sig, app.name, steps=steps)
        except SandboxError as e:
            if e.__class__.__name__ == "UntrustedSigner":
                raise _untrusted_hint(e, app.name, pubkeys, ca_file) from e
            raise

    # 3. the image itself
    dl = download(endpoint.aci, work, transport, cache=cache, keep_body=False,
                  resolve=lambda iid: _stored_path(store, iid), progress=show, label=app.name,
                  purpose="image", max_bytes=bounds.max_bytes, deadline=bounds.deadline,
                  steps=steps)
    result.downloads.append(dl)
    _finish(result, dl, sig, app.name, dict(full.labels), defaults, store, trust,
            latest="version" not in requested, steps=steps)
    _remember(cache, dl, result, steps)
    return result


def _fetch_url(url: str, labels: Mapping[str, str], opts: InsecureOptions, store, trust,
               transport: Transport, cache: HttpCache | None, work: Path, show: bool,
               bounds: Bounds, steps: Steps | None) -> FetchResult:
    asc_url = signature_url_for(url)
    result = FetchResult(None, "url", url, None if opts.image else asc_url)
    sig = None
    if not opts.image:
        dl = download(asc_url, work, transport, cache=cache, label="signature",
                      purpose="signature", small=True, steps=steps)
        result.downloads.append(dl)
        sig = dl.path.read_bytes()
    dl = download(url, work, transport, cache=cache, keep_body=False,
                  resolve=lambda iid: _stored_path(store, iid), progress=show,
                  label=Path(urlsplit(url).path).name, purpose="image",
                  max_bytes=bounds.max_bytes, deadline=bounds.deadline, steps=steps)
    result.downloads.append(dl)
    _finish(result, dl, sig, None, dict(labels), [], store, trust, latest=False, steps=steps)
    _remember(cache, dl, result, steps)
    return result


def _fetch_file(ref: str, labels: Mapping[str, str], opts: InsecureOptions, store, trust,
                steps: Steps | None) -> FetchResult:
    path = Path(ref[len("file://"):] if ref.startswith("file://") else ref)
    bounded.check_file(path, "The image", "give the path of an .aci file, a URL, or an image "
                       "name to discover", FetchError)
    asc = Path(signature_url_for(str(path)))
    result = FetchResult(None, "file", str(path), None if opts.image else str(asc))
    sig = None
    if not opts.image:
        if not asc.is_file():
            raise FetchError(f"No signature beside {path} (looked for {asc}).",
                             hint=f"Sign it with `sandbox sign {path} --key SECRET.asc`, or pass "
                                  "--insecure-options=image to import it unverified.")
        sig = bounded.read_file(asc, bounded.KEY_FILE_BYTES, f"the signature {asc}")
        record(steps, "read", str(asc), role="signature", bytes=len(sig))
    return _finish(result, path, sig, None, dict(labels), [], store, trust, latest=False,
                   steps=steps)


def _finish(result: FetchResult, source: "Download | Path", sig: bytes | None, name: str | None,
            labels: dict[str, str], optional: list[str], store, trust, *, latest: bool,
            steps: Steps | None) -> FetchResult:
    """Steps 4-6 on ONE copy: the image is copied (or, when it is our own download, moved)
    into the store's temporary file once; the signature is verified over that copy, the
    manifest read from it, and that same copy is what the store keeps. A local file swapped
    after the check cannot be imported as verified."""
    from sandbox.image import aci
    own = isinstance(source, Download) and source.cache == "none"   # our fresh download
    path = source.path if isinstance(source, Download) else source
    with store.stage(path, move=own, steps=steps) as staged:
        manifest = None
        if name is None:
            # A file or URL: the keyring depends on the manifest name, so the manifest is read
            # first (as rkt's validator does); an unreadable archive is refused here.
            manifest = aci.read_manifest(staged.path, steps=steps)
        if sig is not None:
            # 4. the signature over the staged bytes, before anything else trusts them
            keyring_name = name or manifest.name  # type: ignore[union-attr]
            result.verification = trust.verify(staged.path, sig, keyring_name, steps=steps)
            record(steps, "verify", str(result.aci_url), ok=True,
                   signer=result.verification.signer_fingerprint)  # type: ignore[attr-defined]
        if manifest is None:
            manifest = aci.read_manifest(staged.path, steps=steps)
        # 5. identity: name and labels as requested
        check_identity(manifest.name, manifest.labels, name, labels, optional=optional, steps=steps)
        # 6. into the store: the very bytes verified above
        result.image = staged.commit(latest=latest, steps=steps)
    record(steps, "import", result.image.id, name=manifest.name)  # type: ignore[attr-defined]
    return result


def _stored_path(store, image_id: str) -> Path | None:
    try:
        return Path(store.get(image_id).path)
    except SandboxError:
        return None


def _remember(cache: HttpCache | None, dl: Download, result: FetchResult,
              steps: Steps | None) -> None:
    """After import: keep the ACI's validators, pointing at the stored image (no second copy)."""
    if cache is not None and dl.cacheable and dl.cache == "none":
        cache.remember(dl.url, dl.etag, dl.max_age, dl.size, result.id)
        record(steps, "cache", dl.url, result="stored", etag=dl.etag, max_age=dl.max_age,
               body=f"image {result.image.short_id}")  # type: ignore[attr-defined]
