"""Which keys may sign which image names: rkt's trust store, with whole-segment prefixes.

Layout (rkt pkg/keystore, Documentation/signing-and-verification-guide.md)::

    $SANDBOX_DIR/trustedkeys/root.d/<fingerprint>                  trusted for every name
    $SANDBOX_DIR/trustedkeys/prefix.d/<prefix>/<fingerprint>       trusted for names under <prefix>
    /usr/lib/sandbox/trustedkeys/{root.d,prefix.d}                 read-only "system" keys

Each file holds one armored certificate and is named by its lowercase 40-hex v4 fingerprint.
An *empty* local file named like a system key masks that key. For image ``a.com/x/y`` the
keyring is root.d plus prefix.d ``a.com``, ``a.com/x`` and ``a.com/x/y`` — whole path segments
only. (rkt compares strings, so its key for ``a.com/fo`` also signs ``a.com/foo``; ours does not.)

The keyring prefix is the image's *manifest name*, never the URL it came from (rkt
image/validator.go).

A key is *one* key wherever it is filed: adding a copy of a key the store already holds merges
the two (:func:`sandbox.trust.pgp.merge`, what ``gpg --import`` does to a keyring), so an old
copy fetched before its owner revoked it cannot silently un-revoke it; and a keyring that meets
two files of the same key merges them too. (rkt overwrote the file with the bytes it was given.)
Public API::

    TrustStore(root=None, system_root=None)
    .add(prefix, key_bytes, root=False) -> Path       .remove(fingerprint, prefix=None, root=False)
    .list() -> list[TrustedKey]                        .keyring_for(image_name) -> list[PublicKey]
    .has_key_for(image_name) -> bool                   .check_signer(signature, image_name) -> str
    .verify_image(aci_path, signature_path=None, image_name=None) -> pgp.Verification
    .verdict(aci_path) -> str   ("ACCEPTED: …" / "REFUSED (KeyRevoked): …", never raises)
    fetch_key(file_or_https_url, insecure_allow_http=False) -> bytes;  describe(cert) -> str
"""
from __future__ import annotations

import os
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sandbox import bounded
from sandbox.config import sandbox_dir
from sandbox.errors import SandboxError
from sandbox.steps import Steps, record, snapshotting
from sandbox.trust import pgp

DEFAULT_SYSTEM_DIR = "/usr/lib/sandbox/trustedkeys"
_FPR = re.compile(r"^[0-9a-f]{40}$")
# ACIdentifier segments (appc types.md): lower-case alphanumerics and -._~ ; no empty segments.
_PREFIX = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")


class TrustError(SandboxError):
    """The trust store cannot do what was asked (bad prefix, broken file, no such key)."""


class UntrustedSigner(pgp.UnknownSigner):
    """The signature's key is not trusted for this image name; the message says how to fix it."""


@dataclass(frozen=True)
class TrustedKey:
    scope: str                # "root" or "prefix"
    prefix: str | None
    fingerprint: str
    path: Path
    origin: str               # "local" or "system"
    uids: tuple[str, ...]
    masked: bool = False      # an empty local file hiding a system key
    problem: str | None = None  # why the key cannot sign now (revoked, expired…), else None


def prefixes_of(name: str) -> list[str]:
    """``a.com/x/y`` → ``["a.com", "a.com/x", "a.com/x/y"]``: whole path segments only."""
    parts = [p for p in name.strip("/").split("/") if p]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def check_prefix(prefix: str) -> str:
    p = prefix.strip()
    if "://" in p:
        raise TrustError(f"The prefix {prefix!r} looks like a URL; give an image name prefix such as example.com/app.")
    p = p.strip("/")
    if not p or not _PREFIX.match(p) or any(s in (".", "..") for s in p.split("/")):
        raise TrustError(f"The prefix {prefix!r} is not an image name prefix; use lower-case segments "
                         "like example.com/app.")
    return p


class TrustStore:
    """rkt's trust store layout, a local (writable) directory over a read-only system one."""

    def __init__(self, root: str | os.PathLike | None = None,
                 system_root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else sandbox_dir() / "trustedkeys"
        self.system_root = Path(system_root if system_root is not None
                                else os.environ.get("SANDBOX_SYSTEM_TRUSTEDKEYS", DEFAULT_SYSTEM_DIR))

    # -- paths
    def _dir(self, base: Path, prefix: str | None) -> Path:
        return base / "root.d" if prefix is None else base / "prefix.d" / prefix

    # -- changing
    def add(self, prefix: str | None, key_bytes: bytes, *, root: bool = False,
            steps: Steps | None = None) -> Path:
        """Trust the one certificate in ``key_bytes`` for names under ``prefix`` (or all, ``root``)."""
        if root and prefix:
            raise TrustError("Choose either a prefix or --root, not both.")
        if not root and not prefix:
            raise TrustError("Refusing implicit unbounded trust: give --prefix NAME, or --root to trust "
                             "the key for every image.")
        prefix = None if root else check_prefix(prefix)
        refuse_secret(key_bytes)
        certs = pgp.read_keys(key_bytes)
        if len(certs) != 1:
            raise TrustError(f"The key file holds {len(certs)} certificates; trust them one file at a time.")
        cert = certs[0]
        # The copies this store already holds of the same key (anywhere, system ones too): the
        # new copy is merged into them, never put in their place (a revocation stays).
        copies = [(p, c) for p, c in self._copies(cert.fingerprint)]
        merged = pgp.merge(cert, *(c for _, c in copies)) if copies else cert
        st = merged.status()[0]
        if st.kind == "invalid":           # expired or revoked keys may be stored (and are refused on use)
            raise TrustError(f"Not trusting it: {st.problem}")
        d = self._dir(self.root, prefix)
        d.mkdir(parents=True, exist_ok=True, mode=0o755)
        path = d / cert.fingerprint
        if copies:
            kept = _revocations(merged) - _revocations(cert)
            record(steps, "merge", cert.fingerprint, copies=[str(p) for p, _ in copies],
                   **({"kept": f"{len(kept)} revocation(s) the new copy lacks"} if kept else {}))
            data = merged.armored()
        else:    # rkt keeps the armored key as it was given
            data = bytes(key_bytes) if pgp.is_armored(key_bytes) else cert.armored()
        targets = [path] + [p for p, _ in copies if p != path and self._is_local(p)]
        for target in targets:            # one key, one state: every local copy gets the union
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            tmp.chmod(0o644)
            tmp.replace(target)
            record(steps, "write", str(target), fingerprint=cert.fingerprint,
                   prefix=(prefix or "(root)") if target == path else "(existing copy, merged)")
        return path

    def _is_local(self, path: Path) -> bool:
        return path.is_relative_to(self.root)

    def _copies(self, fingerprint: str) -> list[tuple[Path, pgp.PublicKey]]:
        """Every non-empty file of this key in the store (system first, then local)."""
        out = []
        for base, origin in ((self.system_root, "system"), (self.root, "local")):
            for _scope, _prefix, path, _origin in self._entries(base, origin):
                if path.name == fingerprint:
                    data = path.read_bytes()
                    if data:
                        out.append((path, self._load(path, data)))
        return out

    def remove(self, fingerprint: str, prefix: str | None = None, *, root: bool = False,
               steps: Steps | None = None) -> list[Path]:
        """Stop trusting a key: delete local files; mask a system key with an empty local file.

        Without ``prefix`` and ``root`` it is removed from every place it is trusted."""
        fpr = fingerprint.replace(" ", "").lower()
        if not _FPR.match(fpr):
            raise TrustError(f"{fingerprint!r} is not a 40-hex-digit fingerprint; see `sandbox trust --list`.")
        changed = []
        for k in self.list():
            if k.fingerprint != fpr or k.masked:
                continue
            if root and k.scope != "root":
                continue
            if prefix is not None and (k.scope != "prefix" or k.prefix != check_prefix(prefix)):
                continue
            if k.origin == "local":
                k.path.unlink()
                record(steps, "remove", str(k.path))
                changed.append(k.path)
                self._prune(k.path.parent)
            else:
                mask = self._dir(self.root, k.prefix) / fpr
                mask.parent.mkdir(parents=True, exist_ok=True)
                mask.write_bytes(b"")
                record(steps, "write", str(mask), note="empty file masks the system key")
                changed.append(mask)
        if not changed:
            where = f" for prefix {prefix}" if prefix else (" in root.d" if root else "")
            raise TrustError(f"Key {fpr} is not trusted{where}; see `sandbox trust --list`.")
        return changed

    def _prune(self, d: Path) -> None:
        """Remove directories left empty by a removal, up to the store's root."""
        while d.is_relative_to(self.root):
            try:
                d.rmdir()
            except OSError:
                return
            if d == self.root:
                return
            d = d.parent

    # -- reading
    def _entries(self, base: Path, origin: str):
        for scope_dir, scope in ((base / "root.d", "root"), (base / "prefix.d", "prefix")):
            if not scope_dir.is_dir():
                continue
            for path in sorted(scope_dir.rglob("*")):
                if not path.is_file() or path.name.endswith(".tmp"):
                    continue
                prefix = None if scope == "root" else str(path.parent.relative_to(scope_dir))
                yield scope, prefix, path, origin

    def list(self) -> list[TrustedKey]:
        out = []
        for base, origin in ((self.system_root, "system"), (self.root, "local")):
            for scope, prefix, path, origin in self._entries(base, origin):
                data = path.read_bytes()
                if not data:
                    out.append(TrustedKey(scope, prefix, path.name, path, origin, (), masked=True))
                    continue
                cert = self._load(path, data)
                out.append(TrustedKey(scope, prefix, cert.fingerprint, path, origin, tuple(cert.uids),
                                      problem=cert.status()[0].problem))
        return out

    def _load(self, path: Path, data: bytes) -> pgp.PublicKey:
        try:
            cert = pgp.read_keys(data)[0]
        except pgp.SignatureError as e:
            raise TrustError(f"The trusted key file {path} is unreadable ({e.message}); remove it.") from e
        if cert.fingerprint != path.name:
            raise TrustError(f"The trusted key file {path} holds key {cert.fingerprint}, not the one its "
                             "name says; remove it and trust the key again.")
        return cert

    def keyring_for(self, image_name: str, steps: Steps | None = None, *,
                    _path: dict[str, Any] | None = None) -> list[pgp.PublicKey]:
        """root.d, then each whole-segment prefix of ``image_name``; system first, local after
        (so an empty local file masks the system key of the same fingerprint).

        ``_path`` (verify_image, for a stepper): each directory looked in is added to it and
        recorded with it as the state (kind ``trust``)."""
        dirs = [None] + prefixes_of(image_name)
        ring: dict[str, pgp.PublicKey] = {}
        for prefix in dirs:
            for base in (self.system_root, self.root):
                d = self._dir(base, prefix)
                if _path is not None and (base == self.root or d.is_dir()):
                    files = sorted(p.name for p in d.iterdir() if p.is_file() and _FPR.match(p.name)) \
                        if d.is_dir() else []
                    _path["dirs"].append({"label": str(d.relative_to(base)), "path": str(d),
                                          "exists": d.is_dir(), "keys": files,
                                          "system": base == self.system_root})
                    record(steps, "check", str(d), prefix=prefix or "(root: every name)",
                           exists=d.is_dir(), keys=len(files), after=_state(_path))
                if not d.is_dir():
                    continue
                for path in sorted(p for p in d.iterdir() if p.is_file() and _FPR.match(p.name)):
                    data = path.read_bytes()
                    if not data:
                        ring.pop(path.name, None)
                        record(steps, "check", str(path), note="empty file: masks the system key")
                        continue
                    cert = self._load(path, data)
                    # two files of one key (say root.d and a prefix): one key, both files' packets
                    ring[path.name] = pgp.merge(ring[path.name], cert) if path.name in ring else cert
                    record(steps, "read", str(path), prefix=prefix or "(root)")
        return list(ring.values())

    def has_key_for(self, image_name: str) -> bool:
        """Cheap: is any key trusted for this name (a root key or a whole-segment prefix)?"""
        return bool(self.keyring_for(image_name))

    def _fix_hint(self, image_name: str, fpr: str | None) -> str:
        return (f"If you trust it, run `sandbox trust --prefix {image_name} KEYFILE` with the key"
                + (f" {pgp.group_fingerprint(fpr)}" if fpr else "") + " after checking its fingerprint.")

    def check_signer(self, signature: bytes | str, image_name: str, steps: Steps | None = None) -> str:
        """Fail fast, before a big download: raise :class:`UntrustedSigner` unless the signature's
        issuer is a key trusted for ``image_name``. Returns the issuer's fingerprint or key ID.
        (rkt's checkIdentity does the same by verifying against an empty body.)"""
        sig = pgp.read_signature(signature)
        ring = self.keyring_for(image_name, steps)
        issuer = sig.issuer_fingerprint or sig.issuer_key_id or ""
        for cert in ring:
            k = cert.find(issuer) if issuer else None
            if k is not None:
                record(steps, "check", "signer trusted", ok=True, key=k.fingerprint, name=image_name)
                return k.fingerprint
        record(steps, "check", "signer trusted", ok=False, issuer=issuer, name=image_name)
        raise self._untrusted(image_name, issuer, ring)

    def _untrusted(self, image_name: str, issuer: str, ring: list[pgp.PublicKey]) -> UntrustedSigner:
        shown = issuer.upper() or "of unknown ID"
        why = "no key is trusted for that name" if not ring else "it is not among the keys trusted for that name"
        return UntrustedSigner(f"The image {image_name} is signed by key {shown}, but {why}.",
                               key_id=issuer[-16:], fingerprint=issuer if len(issuer) == 40 else None,
                               hint=self._fix_hint(image_name, issuer if len(issuer) == 40 else None))

    def verify(self, data_or_path: pgp.Source, signature: bytes | str, image_name: str,
               steps: Steps | None = None) -> pgp.Verification:
        """Verify against the keyring for ``image_name``; an unknown signer becomes UntrustedSigner."""
        ring = self.keyring_for(image_name, steps)
        try:
            return pgp.verify(data_or_path, signature, ring, steps)
        except pgp.UnknownSigner as e:
            raise self._untrusted(image_name, e.fingerprint or e.key_id, ring) from e

    def verify_image(self, aci_path: str | os.PathLike, signature_path: str | os.PathLike | None = None,
                     image_name: str | None = None, steps: Steps | None = None, *,
                     progress: bool = False) -> pgp.Verification:
        """Verify ``ACI`` with its detached signature (default: ``ACI.asc``, as rkt looks for it),
        for the image's manifest name (read from the archive when not given)."""
        aci_path = Path(aci_path)
        sig_path = Path(signature_path) if signature_path else signature_path_for(aci_path)
        if not sig_path.exists():
            raise pgp.SignatureError(f"No signature found at {sig_path}; sign the image with "
                                     f"`sandbox sign {aci_path} --key SECRET.asc` or pass --signature.")
        signature = bounded.read_file(sig_path, bounded.KEY_FILE_BYTES, f"the signature {sig_path}")
        path: dict[str, Any] | None = None
        if snapshotting(steps):             # a stepper asked: the walk through the trust store
            try:
                sig = pgp.read_signature(signature)
                signer = sig.issuer_fingerprint or sig.issuer_key_id or ""
            except pgp.SignatureError:
                signer = ""
            path = {"kind": "trust", "name": image_name, "signer": signer, "dirs": [],
                    "verdict": None}
        record(steps, "read", str(sig_path), role="signature", after=_state(path))
        unreadable: Exception | None = None
        if image_name is None:
            try:
                image_name = image_name_of(aci_path)
            except TrustError:
                raise
            except Exception as e:          # a damaged archive: its name cannot be read
                unreadable = e
            if path is not None:
                path["name"] = image_name
                record(steps, "read", f"{aci_path.name}: manifest name", name=image_name,
                       note="not authenticated yet: the bytes are checked first",
                       after=_state(path))
        # The name inside the archive is not yet authenticated, so first check the bytes against
        # every trusted key: a changed archive is "does not match", whatever name it now shows.
        try:
            v = pgp.verify(aci_path, signature, self.all_keys(), steps, progress=progress)
        except pgp.UnknownSigner as e:
            issuer = e.fingerprint or e.key_id
            if unreadable is not None:
                raise UntrustedSigner(f"{e.message.rstrip('.')}, and the image's manifest is unreadable.",
                                      key_id=e.key_id, fingerprint=e.fingerprint) from e
            ring = self.keyring_for(image_name, steps if path is not None else None, _path=path)
            if path is not None:
                path["verdict"] = False
                record(steps, "check", "signer trusted for name", ok=False, name=image_name,
                       after=_state(path))
            raise self._untrusted(image_name, issuer, ring) from e
        except pgp.SignatureError:
            if path is not None:
                path["verdict"] = False
                record(steps, "check", "refused before the trust store", ok=False,
                       after=_state(path))
            raise
        if unreadable is not None:
            raise TrustError(f"The signature matches, but the image's manifest cannot be read ({unreadable}).")
        if path is not None:
            path["signer"] = v.primary_fingerprint
        if v.primary_fingerprint not in {c.fingerprint for c in self.keyring_for(image_name, steps, _path=path)}:
            if path is not None:
                path["verdict"] = False
            record(steps, "check", "signer trusted for name", ok=False, name=image_name,
                   after=_state(path))
            raise UntrustedSigner(
                f"The image {image_name} is signed by key {v.primary_fingerprint.upper()}, which is trusted "
                "for other names but not for this one.", fingerprint=v.primary_fingerprint,
                key_id=v.primary_fingerprint[-16:], hint=self._fix_hint(image_name, v.primary_fingerprint))
        if path is not None:
            path["verdict"] = True
        record(steps, "check", "signer trusted for name", ok=True, name=image_name,
               key=v.primary_fingerprint, after=_state(path))
        return v

    def verdict(self, aci_path: str | os.PathLike, signature_path: str | os.PathLike | None = None) -> str:
        """What :meth:`verify_image` decides, as one line that never raises: ``ACCEPTED: …``
        (with any note, e.g. a key retired after it signed) or ``REFUSED (WhyError): …``."""
        try:
            v = self.verify_image(aci_path, signature_path)
        except SandboxError as e:
            return f"REFUSED ({type(e).__name__}): {e}"
        except OSError as e:
            return f"REFUSED: {e.strerror or e}"
        return (f"ACCEPTED: {Path(aci_path).name} is signed by {', '.join(v.uids) or '?'} "
                f"(key {pgp.group_fingerprint(v.primary_fingerprint)}), trusted for its name"
                + "".join(f"; note: {n}" for n in v.notes))

    def all_keys(self) -> list[pgp.PublicKey]:
        """Every key trusted for any name (masks applied)."""
        names = {k.prefix for k in self.list() if k.scope == "prefix"}
        ring: dict[str, pgp.PublicKey] = {}
        for n in sorted(names) or [""]:
            for c in self.keyring_for(n):
                ring[c.fingerprint] = pgp.merge(ring[c.fingerprint], c) if c.fingerprint in ring else c
        return list(ring.values())


def _revocations(cert: pgp.PublicKey) -> set[bytes]:
    """The bodies of every revocation signature a certificate carries (key, subkey, user ID)."""
    sigs = list(cert.direct_sigs) + [s for sk in cert.subkeys for s in sk.sigs]
    sigs += [s for u in cert.user_ids for s in u.sigs]
    return {s.body for s in sigs if s.sig_type in (0x20, 0x28, 0x30)}


def _state(path: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of the walk so far (each step keeps its own)."""
    if path is None:
        return None
    return {**path, "dirs": [dict(d) for d in path["dirs"]]}


def signature_path_for(aci_path: str | os.PathLike) -> Path:
    """rkt: ``strings.TrimSuffix(path, ".aci") + ".aci.asc"``."""
    s = str(aci_path)
    return Path((s[:-4] if s.endswith(".aci") else s) + ".aci.asc")


def image_name_of(aci_path: str | os.PathLike) -> str:
    """The manifest name inside an ACI (via sandbox.image.aci)."""
    try:
        from sandbox.image import aci
    except ImportError as e:
        raise TrustError("Reading the image name needs sandbox.image.aci, which is not available; pass the name.") from e
    return aci.read_manifest(aci_path).name


def refuse_secret(key_bytes: bytes, source: str = "the key file") -> None:
    """Refuse key data that holds a secret key: trusting needs only the public part, and the
    store keeps the file as given (rkt's layout, readable by every user), so a secret key put
    there would be handed to anyone who can read it."""
    if pgp.holds_secret_key(key_bytes):
        raise TrustError(f"{source} holds a SECRET key, which must not be copied into the trust "
                         "store; give the public key file instead (`sandbox key gen` wrote it "
                         "beside it as NAME.public.asc).")


def fetch_key(source: str, *, insecure_allow_http: bool = False, ca_file: str | None = None,
              timeout: float | None = None) -> bytes:
    """A key from a local file or an https URL (http only when explicitly allowed): at most
    KEY_FILE_BYTES, a URL within SMALL_DOWNLOAD_SECONDS in all and ``timeout`` (default
    STALL_SECONDS) per read (sandbox.bounded)."""
    try:
        u = urlparse(source)
    except ValueError as e:
        raise TrustError(f"{source[:200]!r} is neither a key file nor a valid URL ({e}).") from e
    if u.scheme in ("http", "https"):
        if u.scheme == "http" and not insecure_allow_http:
            raise TrustError(f"Refusing to fetch a key over plain http ({source}); use https, or pass "
                               "--insecure-allow-http if you really mean it.")
        return _get_key(source, ca_file, timeout)
    if u.scheme and len(u.scheme) > 1:
        raise TrustError(f"Keys can come from a file or an https URL, not {u.scheme}:.")
    bounded.check_file(source, "The key file", "check the path, or make a key pair with "
                       "`sandbox key gen --uid NAME --out DIR`", TrustError)
    return bounded.read_file(source, bounded.KEY_FILE_BYTES, f"the key file {source}")


def _get_key(url: str, ca_file: str | None, timeout: float | None) -> bytes:
    """GET a key with urllib (redirects followed), its connections watched by a deadline."""
    import http.client
    stall = float(timeout if timeout is not None else bounded.STALL_SECONDS.value)
    with bounded.Deadline(bounded.SMALL_DOWNLOAD_SECONDS, f"fetching the key {url}") as clock:
        plain = clock.connection_class(http.client.HTTPConnection)
        tls = clock.connection_class(http.client.HTTPSConnection)
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None

        class Plain(urllib.request.HTTPHandler):
            def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(plain, req)

        class Secure(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(tls, req, context=ctx)

        opener = urllib.request.build_opener(Plain(), Secure(context=ctx))
        parts: list[bytes] = []
        try:
            with opener.open(url, timeout=stall) as r:
                bounded.copy_limited(r.read1, parts.append, limit=bounded.KEY_FILE_BYTES,
                                     what=f"the key at {url}", deadline=clock, stall=stall)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
            if clock.expired():
                raise clock.error() from e
            raise TrustError(f"Could not fetch the key from {url} ({getattr(e, 'reason', e)}).") from e
    return b"".join(parts)


def describe(cert: pgp.PublicKey) -> str:
    lines = [f"  fingerprint: {pgp.group_fingerprint(cert.fingerprint)}  ({cert.primary.algo_name})"]
    lines += [f"  user ID:     {u}" for u in cert.uids]
    for sk in cert.subkeys:
        lines.append(f"  subkey:      {pgp.group_fingerprint(sk.fingerprint)}  ({sk.key.algo_name})")
    for st in cert.status():
        if st.problem:
            lines.append(f"  WARNING:     {st.problem}")
    return "\n".join(lines)
