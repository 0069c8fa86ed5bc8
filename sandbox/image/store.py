"""The image store: ACIs kept by content address (appc aci.md §Image ID; rkt's CAS).

Layout under ``$SANDBOX_DIR/images``::

    blobs/sha512/<128 hex>   the ACI exactly as imported (any compression); its name IS its ID
    index.json               id -> name, labels, manifest, size, import time, compression
    .lock                    flock(2): shared for readers, exclusive for writers
    tmp/                     files being imported (renamed into blobs/ when complete)

Every write goes to a temporary file first and is renamed into place, so a crash or a concurrent
reader never sees half a blob or half an index.

Lookups (rkt store semantics):

* by ID: the full ``sha512-<128 hex>``, or any prefix with at least 2 hex digits (rkt's store key,
  ``sha512-`` + 64 hex, is one); two or more matches is an error that lists them.
* by app string ``name[:version][,label=value...]`` (appc discovery/parse.go): the name must be
  equal and every given label equal. ``version`` is a label like any other, and ``:latest`` means
  the label ``version=latest`` (or an image imported with ``latest=True``, as rkt marks images
  fetched without a version) - not "the newest". Without a version, images marked latest win,
  then the one imported last.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sandbox import config
from sandbox.errors import SandboxError
from sandbox.image import aci as _aci
from sandbox.image.aci import InvalidImage
from sandbox.image.manifest import ImageManifest
from sandbox.image.types import parse_app
from sandbox.steps import Steps, record

__all__ = ["Store", "Image", "ImageNotFound", "AmbiguousImageRef", "InvalidImage",
           "parse_app_string"]

_ID_PREFIX_RE = re.compile(r"^sha512-[0-9a-f]{2,128}$")
MIN_PREFIX_HEX = 2   # rkt ResolveKey needs at least 2 hex digits


class ImageNotFound(SandboxError):
    """No image in the store matches the reference."""


class AmbiguousImageRef(SandboxError):
    """An ID prefix matches several images; ``matches`` lists their IDs."""

    def __init__(self, ref: str, matches: list["Image"]) -> None:
        self.matches = [m.id for m in matches]
        listing = ", ".join(f"{_aci.short_id(m.id)} ({m.app_string})" for m in matches)
        super().__init__(f"'{ref}' matches {len(matches)} images: {listing}.",
                         hint="Give more hex digits of the ID.")


@dataclass
class Image:
    """One image in the store."""

    id: str
    name: str
    labels: dict[str, str]
    manifest: ImageManifest
    size: int                      # bytes of the stored ACI file
    imported_at: str               # RFC3339, UTC
    path: Path                     # the stored ACI
    compression: str = "none"
    latest: bool = False

    @property
    def short_id(self) -> str:
        return _aci.short_id(self.id)

    @property
    def version(self) -> str | None:
        return self.labels.get("version")

    @property
    def app_string(self) -> str:
        """``name[:version][,label=value...]`` for this image."""
        s = self.name + (f":{self.version}" if self.version else "")
        return s + "".join(f",{k}={v}" for k, v in self.labels.items() if k != "version")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "labels": self.labels, "size": self.size,
                "imported_at": self.imported_at, "compression": self.compression,
                "latest": self.latest, "path": str(self.path)}

    def _repr_html_(self) -> str:
        import html
        e = html.escape
        labels = ", ".join(f"{e(k)}={e(v)}" for k, v in self.labels.items()) or "&ndash;"
        deps = "".join(f"<li><code>{e(d.image_name)}</code>"
                       + (f" <small>{e(_aci.short_id(d.image_id))}</small>"
                          if d.image_id and d.image_id.startswith("sha512-") else "")
                       + "</li>" for d in self.manifest.dependencies) or "<li>none</li>"
        return (f"<div class='sandbox-image'><b>{e(self.name)}</b> <small>{labels}</small><br>"
                f"<code title='{e(self.id)}'>{e(self.short_id)}</code> &middot; {self.size:,} bytes "
                f"&middot; {e(self.compression)} &middot; imported {e(self.imported_at)}"
                f"<br>dependencies:<ul>{deps}</ul></div>")


def parse_app_string(app: str) -> tuple[str, dict[str, str]]:
    """``example.com/app:1.0,os=linux`` -> (``example.com/app``, {version: 1.0, os: linux}).

    The format is discovery's (discovery.md; :func:`sandbox.image.types.parse_app`)."""
    a = parse_app(app)
    return a.name, dict(a.labels)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# Same probe as pod/stage0._is_locked (a pod directory, LOCK_SH, O_DIRECTORY); this one is a
# staged file that an image may not make us follow (O_NOFOLLOW) and must be free for gc (LOCK_EX).
def _in_use(p: Path) -> bool:
    """Does a running import hold ``p`` (an flock on it, see Store.stage)?"""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class Staged:
    """An image copied into the store's temporary directory (see :meth:`Store.stage`): check
    :attr:`path`, then :meth:`commit` it."""

    def __init__(self, store: "Store", path: Path, source: str) -> None:
        self.store, self.path, self.source = store, path, source

    def commit(self, *, latest: bool = False, steps: Steps | None = None) -> Image:
        """Hash, validate and store these bytes (the same ones that were checked)."""
        return self.store._commit(self.path, self.source, latest, steps)


class Store:
    """A content-addressed image store under ``root`` (default: ``$SANDBOX_DIR/images``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else config.sandbox_dir()
        self.dir = self.root / "images"
        self.blobs = self.dir / "blobs" / "sha512"
        self.tmp = self.dir / "tmp"
        self.index_path = self.dir / "index.json"

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ plumbing
    def _ensure(self) -> None:
        try:
            for d in (self.blobs, self.tmp):
                d.mkdir(parents=True, exist_ok=True)
        except PermissionError as e:
            raise SandboxError(f"cannot create the image store under {self.dir}: permission denied.",
                               hint="Run as root or point --dir / $SANDBOX_DIR somewhere writable.") from e

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """flock(2) on images/.lock: exclusive for writers, shared for readers."""
        lock = self.dir / ".lock"
        if exclusive:
            self._ensure()
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        else:
            try:
                fd = os.open(lock, os.O_RDONLY)
            except FileNotFoundError:   # nothing was ever written: nothing to lock
                yield
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self.index_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise SandboxError(f"the image index {self.index_path} is corrupt; "
                               "remove it and re-import your images.") from e

    def _write_index(self, idx: dict[str, dict[str, Any]]) -> None:
        tmp = self.tmp / f"index.{os.getpid()}.json"
        with open(tmp, "w") as f:
            json.dump(idx, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)

    def _image(self, iid: str, e: dict[str, Any]) -> Image:
        return Image(id=iid, name=e["name"], labels=dict(e.get("labels") or {}),
                     manifest=ImageManifest.from_json(e["manifest"]), size=e["size"],
                     imported_at=e["imported_at"], path=self.blobs / iid[len("sha512-"):],
                     compression=e.get("compression", "none"), latest=bool(e.get("latest")))

    # ------------------------------------------------------------------ writing
    def import_aci(self, path: str | os.PathLike[str], steps: Steps | None = None, *,
                   latest: bool = False) -> Image:
        """Validate, hash and store an ACI; importing the same image again is a no-op.

        ``latest`` marks the image as fetched without a version (rkt's "latest" flag).
        """
        with self.stage(path, steps=steps) as staged:
            return staged.commit(latest=latest, steps=steps)

    @contextlib.contextmanager
    def stage(self, path: str | os.PathLike[str], *, move: bool = False,
              steps: Steps | None = None) -> Iterator["Staged"]:
        """Copy ``path`` once into the store's temporary directory and hold it there: check
        that copy (verify its signature, read its manifest), then :meth:`Staged.commit` it. What
        is stored is the very bytes that were checked, whatever happens to ``path`` meanwhile.

        ``move``: ``path`` is the caller's own file (a download); it is renamed, not copied.
        The copy is flock(2)ed while staged, so :meth:`gc` leaves it alone; it is removed on
        exit unless committed."""
        src = Path(path)
        self._ensure()
        tmp = self.tmp / f"import.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)         # "in use": gc skips a locked temp file
            size = self._fill(fd, tmp, src, move)
            record(steps, "read", str(src), bytes=size, into=str(tmp))
            yield Staged(self, tmp, str(src))
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _fill(fd: int, tmp: Path, src: Path, move: bool) -> int:
        """Put the bytes of ``src`` into the temp file ``tmp`` (open as ``fd``), read once."""
        if move:
            # lock the file before it takes the temp name, so gc never sees it unlocked there
            mfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                fcntl.flock(mfd, fcntl.LOCK_EX)
                os.replace(src, tmp)
                os.dup2(mfd, fd, inheritable=False)   # fd now holds the moved file and its lock
                return os.fstat(fd).st_size
            except OSError as e:
                if e.errno != errno.EXDEV:      # another file system: copy it below
                    raise SandboxError(f"cannot move {src} into the store: {e.strerror or e}.") from e
            finally:
                os.close(mfd)
        try:   # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below)
            sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as e:
            raise SandboxError(f"{src} does not exist; give the path of an .aci file.") from e
        except IsADirectoryError as e:
            raise SandboxError(f"{src} is a directory; give the path of an .aci file.") from e
        except OSError as e:
            raise SandboxError(f"cannot read {src}: {e.strerror or e}.") from e
        try:
            st = os.fstat(sfd)
            if not stat.S_ISREG(st.st_mode):    # a FIFO would block, /dev/zero never ends
                raise SandboxError(f"{src} is not a regular file; give the path of an .aci file.")
            left = st.st_size                    # what the file held when opened, no more
            while left > 0:
                n = os.sendfile(fd, sfd, None, min(left, 1 << 30))
                if n == 0:
                    break                        # it shrank meanwhile: the checks will tell
                left -= n
            return st.st_size - left
        except OSError as e:
            raise SandboxError(f"cannot copy {src} into the store: {e.strerror or e}.") from e
        finally:
            os.close(sfd)

    def _commit(self, tmp: Path, source: str, latest: bool, steps: Steps | None) -> Image:
        ins = _aci.inspect(tmp, steps=steps)
        if ins.problems or ins.image_id is None or ins.manifest is None:
            raise InvalidImage(ins.problems or ["the manifest could not be read"], source)
        iid = ins.image_id
        with self._locked(exclusive=True):
            idx = self._read_index()
            blob = self.blobs / iid[len("sha512-"):]
            if iid in idx and blob.exists():
                record(steps, "check", iid, rule="already in the store (import is idempotent)")
                if latest and not idx[iid].get("latest"):
                    idx[iid]["latest"] = True
                    self._write_index(idx)
                return self._image(iid, idx[iid])
            os.chmod(tmp, 0o644)
            os.replace(tmp, blob)
            record(steps, "write", str(blob), bytes=blob.stat().st_size)
            m = ins.manifest
            idx[iid] = {"name": m.name, "labels": dict(m.labels), "size": blob.stat().st_size,
                        "imported_at": _now(), "compression": ins.compression,
                        "latest": latest, "manifest": json.loads(ins.manifest_bytes or b"{}")}
            self._write_index(idx)
            record(steps, "write", str(self.index_path), image_id=iid, name=m.name)
            return self._image(iid, idx[iid])

    def remove(self, ref: str, steps: Steps | None = None) -> Image:
        """Remove one image (by ID, ID prefix or app string) from the store; return it."""
        img = self.get(ref)
        with self._locked(exclusive=True):
            idx = self._read_index()
            idx.pop(img.id, None)
            self._write_index(idx)
            with contextlib.suppress(FileNotFoundError):
                img.path.unlink()
        record(steps, "write", str(img.path), removed=img.id)
        return img

    def gc(self, steps: Steps | None = None) -> list[str]:
        """Remove leftovers: temp files of finished imports, blobs no index entry names, and
        index entries whose blob is gone. Returns what was removed."""
        removed: list[str] = []
        if not self.dir.exists():
            return removed
        with self._locked(exclusive=True):
            idx = self._read_index()
            for p in sorted(self.tmp.iterdir()):
                if _in_use(p):
                    continue      # an import in progress holds it (Store.stage)
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(str(p))
            for p in sorted(self.blobs.iterdir()):
                if "sha512-" + p.name not in idx:
                    p.unlink()
                    removed.append(str(p))
            gone = [i for i in idx if not (self.blobs / i[len("sha512-"):]).exists()]
            for i in gone:
                del idx[i]
                removed.append(f"index entry {i}")
            if gone:
                self._write_index(idx)
        for r in removed:
            record(steps, "write", r, removed=True)
        record(steps, "check", str(self.dir), rule="garbage collection", removed=len(removed))
        return removed

    # ------------------------------------------------------------------ reading
    def list(self) -> list[Image]:
        """Every image, by name then import time."""
        with self._locked(exclusive=False):
            idx = self._read_index()
        imgs = [self._image(i, e) for i, e in idx.items()]
        return sorted(imgs, key=lambda im: (im.name, im.imported_at))

    def find(self, name: str, labels: dict[str, str] | None = None) -> list[Image]:
        """Images named ``name`` carrying every label in ``labels``; newest import first.

        ``version=latest`` matches the label value ``latest`` or an image imported as latest.
        """
        labels = labels or {}
        out = []
        for im in self.list():
            if im.name != name:
                continue
            ok = True
            for k, v in labels.items():
                if k == "version" and v == "latest" and im.latest:
                    continue
                if im.labels.get(k) != v:
                    ok = False
                    break
            if ok:
                out.append(im)
        return sorted(out, key=lambda im: im.imported_at, reverse=True)

    def get(self, ref: str, steps: Steps | None = None) -> Image:
        """The one image ``ref`` names: a full or prefix ID, or an app string."""
        ref = ref.strip()
        if ref.startswith("sha512-"):
            if not _ID_PREFIX_RE.match(ref):
                raise SandboxError(f"'{ref}' is not an image ID prefix; write sha512- followed by "
                                   f"at least {MIN_PREFIX_HEX} lowercase hex digits.")
            matches = [im for im in self.list() if im.id.startswith(ref)]
            record(steps, "check", ref, rule="ID prefix lookup", matches=len(matches))
            if not matches:
                raise ImageNotFound(f"no image in the store has an ID starting with {ref}.",
                                    hint="`sandbox image list` shows the stored images.")
            if len(matches) > 1:
                raise AmbiguousImageRef(ref, matches)
            return matches[0]
        name, labels = parse_app_string(ref)
        matches = self.find(name, labels)
        record(steps, "check", ref, rule="name + labels lookup", matches=len(matches))
        if not matches:
            what = name + ("" if not labels else " with " + ", ".join(
                f"{k}={v}" for k, v in labels.items()))
            stored = self.list()
            same = [im for im in stored if im.name == name]
            if same:        # the name is there: say which labels it has
                have = "; ".join(sorted({",".join(f"{k}={v}" for k, v in im.labels.items())
                                         for im in same}))
                close = f" The store has {name} with {have}."
            else:           # a typo in the name: the stored names close to it
                from sandbox.errors import did_you_mean
                close = did_you_mean(name, [im.name for im in stored])
            raise ImageNotFound(f"no image in the store is {what}.{close}",
                                hint="`sandbox image list` shows the stored images; import or fetch it first.")
        if "version" not in labels:
            latest = [m for m in matches if m.latest or m.labels.get("version") == "latest"]
            if latest:
                return latest[0]
        return matches[0]

    def aci_path(self, ref: str) -> Path:
        """The stored ACI file of an image."""
        return self.get(ref).path

    def manifest(self, ref: str) -> ImageManifest:
        return self.get(ref).manifest

    def verify(self, ref: str, steps: Steps | None = None) -> list[str]:
        """Re-hash the stored ACI and re-check it; [] when it is intact."""
        img = self.get(ref)
        if not img.path.exists():
            return [f"{img.short_id}: the stored file {img.path} is missing"]
        ins = _aci.inspect(img.path, steps=steps)
        probs = [f"{img.short_id}: {p}" for p in ins.problems]
        if ins.image_id != img.id:
            probs.append(f"{img.short_id}: the stored file hashes to "
                         f"{ins.image_id and _aci.short_id(ins.image_id)}, not to its ID; "
                         "it is corrupt (remove and re-import it)")
        record(steps, "check", img.id, rule="stored bytes hash to the ID", ok=not probs)
        return probs

    def extract(self, ref: str, dest: str | os.PathLike[str], steps: Steps | None = None,
                **kw: Any) -> _aci.ExtractResult:
        """Extract an image's rootfs (only) into ``dest`` (see :func:`sandbox.image.aci.extract_rootfs`)."""
        return _aci.extract_rootfs(self.get(ref).path, dest, steps=steps, **kw)

    def export(self, ref: str, out: str | os.PathLike[str], *, overwrite: bool = False,
               steps: Steps | None = None) -> Path:
        """Write the stored ACI (the same bytes that were imported) to ``out``."""
        img = self.get(ref)
        out = Path(out)
        if out.is_dir():
            out = out / (img.name.replace("/", "-") + (f"-{img.version}" if img.version else "")
                         + ".aci")
        if out.exists() and not overwrite:
            raise SandboxError(f"{out} already exists; pass --overwrite to replace it.")
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.copyfile(img.path, tmp)
        os.replace(tmp, out)
        record(steps, "write", str(out), image_id=img.id, bytes=out.stat().st_size)
        return out
