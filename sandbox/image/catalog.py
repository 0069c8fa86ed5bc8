"""The lab's image catalogue, built offline from Debian's busybox-static (never downloaded from
anywhere but Debian's own archive).

``example.com/busybox`` is made deb2aci-style (seed slide 30): the ``.deb`` is an ``ar`` archive;
its ``data.tar.*`` member becomes the image's rootfs, and every applet busybox offers gets a
symlink (``/bin/sh -> /bin/busybox``...). The other images are the seed's example pod apps, small
shell programs running on that busybox:

* ``example.com/worker-base`` - shared pieces of the workers (a log helper); depends on busybox.
* ``example.com/reduce-worker`` - serves HTTP on 127.0.0.1:8080 (busybox httpd, port declared in
  ``app.ports``), "reduces" its input every few seconds (count and sum), writes the result under
  the ``results`` mountPoint and accepts registrations at ``/cgi-bin/register?worker=NAME``.
* ``example.com/worker-backup`` - copies the ``results`` volume into the ``backup`` volume
  periodically, keeping the newest few copies. It has a ``pathWhitelist`` (only the files it
  needs survive rendering).
* ``example.com/reduce-worker-register`` - registers with the reduce-worker over HTTP, then exits
  0 (1 if nobody answers).

Each app image depends on busybox (pinned by image ID) and on worker-base (by name and labels
only), so rendering shows a DAG in which busybox appears twice. All file times are fixed, so
the same busybox package always gives the same image IDs.
"""
from __future__ import annotations

import datetime as _dt
import glob
import gzip
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sandbox import config
from sandbox._sys import platform
from sandbox.errors import SandboxError
from sandbox.image import aci
from sandbox.steps import Steps, record

VERSION = "1.0.0"
AC_VERSION = "0.8.11"
APP_EPOCH = 1459468800          # 2016-04-01T00:00:00Z: the app images' fixed file time
PACKAGE = "busybox-static"

class CatalogError(SandboxError):
    """The catalogue could not be built."""


def upstream_version(debian_version: str) -> str:
    """``1:1.35.0-4+deb12u1+b1`` -> ``1.35.0`` (drop the epoch and the Debian revision)."""
    v = debian_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


# ---------------------------------------------------------------------------- the .deb

@dataclass
class BusyboxSource:
    """Where the busybox files come from."""

    how: str                  # "deb" or "installed"
    version: str              # the Debian version, e.g. 1:1.35.0-4+deb12u1+b1
    deb: Path | None = None   # the .deb file (how == "deb")


def read_ar(path: str | os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """The members of an ``ar`` archive (a .deb is one: debian-binary, control.tar.*, data.tar.*)."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise CatalogError(f"{path} is not an ar archive, so not a .deb.")
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                return
            name = hdr[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(hdr[48:58].decode("ascii").strip())
            data = f.read(size)
            if size % 2:
                f.read(1)   # members are 2-byte aligned
            yield name, data


def _deb_field(deb: Path, name: str) -> str:
    for member, data in read_ar(deb):
        if member.startswith("control.tar"):
            with tarfile.open(fileobj=io.BytesIO(_decompress_member(member, data, deb))) as t:
                for m in t:
                    if m.name.lstrip("./") == "control":
                        f = t.extractfile(m)
                        for line in (f.read().decode() if f else "").splitlines():
                            if line.startswith(name + ":"):
                                return line.split(":", 1)[1].strip()
    raise CatalogError(f"{deb} has no {name} field in its control file.")


def _decompress_member(member: str, data: bytes, deb: Path) -> bytes:
    if member.endswith(".xz"):
        return lzma.decompress(data)
    if member.endswith(".gz"):
        return gzip.decompress(data)
    if member.endswith(".tar"):
        return data
    if member.endswith(".zst") and shutil.which("zstd"):
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    raise CatalogError(f"{deb}: the member {member} uses a compression this builder cannot read.")


def find_busybox(cache_dir: Path, *, allow_download: bool = True,
                 steps: Steps | None = None, log=print) -> BusyboxSource:
    """Find Debian's busybox-static for this machine's architecture: a cached .deb, apt's archive
    cache, ``apt-get download`` (from Debian's archive) or, when offline, the installed package's
    files."""
    arch = platform.host().debian
    # A cache can hold other architectures' packages (an instructor's USB stick, a box built for
    # arm64 on an amd64 machine): only this machine's can run here.
    pattern = f"{PACKAGE}_*_{arch}.deb"

    def usable(where: Path) -> Path | None:
        for deb in sorted(glob.glob(str(where / pattern)), reverse=True):
            if _deb_field(Path(deb), "Architecture") == arch:
                return Path(deb)
            log(f"skipping {deb}: its control file names another architecture")
        return None

    for where in (cache_dir, Path("/var/cache/apt/archives")):
        deb = usable(where)
        if deb:
            record(steps, "read", str(deb), source="cached .deb", architecture=arch)
            log(f"using {deb}")
            return BusyboxSource("deb", _deb_field(deb, "Version"), deb)
    if allow_download and shutil.which("apt-get"):
        cache_dir.mkdir(parents=True, exist_ok=True)
        log(f"apt-get download {PACKAGE} (from Debian's archive) into {cache_dir}")
        try:
            p = subprocess.run(["apt-get", "download", PACKAGE], cwd=cache_dir,
                               capture_output=True, text=True, timeout=180)
            record(steps, "exec", f"apt-get download {PACKAGE}", rc=p.returncode)
        except (subprocess.TimeoutExpired, OSError) as e:
            log(f"apt-get download failed ({e})")
        deb = usable(cache_dir)
        if deb:
            return BusyboxSource("deb", _deb_field(deb, "Version"), deb)
    q = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                       capture_output=True, text=True)
    if q.returncode != 0 or not q.stdout.strip():
        raise CatalogError(f"Debian's {PACKAGE} is neither cached nor installed.",
                           hint=f"Run `apt-get install {PACKAGE}` (provision/bootstrap.sh does).")
    record(steps, "exec", f"dpkg-query -W {PACKAGE}", version=q.stdout.strip())
    log(f"no .deb available: using the installed {PACKAGE} {q.stdout.strip()}")
    return BusyboxSource("installed", q.stdout.strip())


def _unpack_deb(deb: Path, rootfs: Path, steps: Steps | None) -> int:
    """Write the .deb's data.tar into rootfs (regular files, dirs and symlinks; safe names only)."""
    n = 0
    for member, data in read_ar(deb):
        if not member.startswith("data.tar"):
            continue
        raw = _decompress_member(member, data, deb)
        record(steps, "read", f"{deb.name}:{member}", bytes=len(data), uncompressed=len(raw))
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            for m in t:
                name = aci.normalize_entry(m.name)
                if name is None:
                    continue      # "./" itself, or an unsafe name
                dst = rootfs / name
                if m.isdir():
                    dst.mkdir(parents=True, exist_ok=True)
                elif m.isreg():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    f = t.extractfile(m)
                    dst.write_bytes(f.read() if f else b"")
                elif m.issym():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(m.linkname, dst)
                else:
                    continue
                if not m.issym():
                    os.chmod(dst, m.mode & 0o777)
                os.utime(dst, (m.mtime, m.mtime), follow_symlinks=False)
                n += 1
        return n
    raise CatalogError(f"{deb} has no data.tar member; is it really a .deb?")


def _copy_installed(rootfs: Path, steps: Steps | None) -> int:
    q = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True, check=True)
    n = 0
    for line in q.stdout.splitlines():
        src = Path(line)
        if line in ("/.", "") or not src.exists():
            continue
        dst = rootfs / line.lstrip("/")
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            dst.mkdir(parents=True, exist_ok=True)
        elif stat.S_ISREG(st.st_mode):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            continue
        os.chmod(dst, stat.S_IMODE(st.st_mode) & 0o777)
        os.utime(dst, (st.st_mtime, st.st_mtime))
        n += 1
    record(steps, "read", f"dpkg -L {PACKAGE}", files=n)
    return n


# ---------------------------------------------------------------------------- layouts

def _write(rootfs: Path, rel: str, content: str, mode: int = 0o644) -> None:
    p = rootfs / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(content)
    os.chmod(p, mode)


def _fix_times(layout: Path, epoch: int) -> None:
    """Every file, dir and symlink gets one fixed time: the same inputs give the same bytes."""
    for dirpath, dirnames, filenames in os.walk(layout):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (epoch, epoch), follow_symlinks=False)
    os.utime(layout, (epoch, epoch))


def _rfc3339(epoch: int) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(version: str, arch: str) -> list[dict[str, str]]:
    return [{"name": "version", "value": version}, {"name": "os", "value": "linux"},
            {"name": "arch", "value": arch}]


def busybox_layout(layout: Path, source: BusyboxSource, arch: str,
                   steps: Steps | None = None) -> dict:
    """The example.com/busybox layout (deb2aci): data.tar as rootfs + applet symlinks."""
    rootfs = layout / "rootfs"
    rootfs.mkdir(parents=True)
    if source.how == "deb" and source.deb is not None:
        n = _unpack_deb(source.deb, rootfs, steps)
    else:
        n = _copy_installed(rootfs, steps)
    bb = rootfs / "bin" / "busybox"
    if not bb.is_file():
        raise CatalogError(f"the {PACKAGE} files have no /bin/busybox.")
    epoch = int(bb.stat().st_mtime)
    p = subprocess.run([str(bb), "--list-full"], capture_output=True, text=True)
    if p.returncode != 0:
        raise CatalogError(f"{bb} --list-full failed: {p.stderr.strip()}")
    record(steps, "exec", "busybox --list-full", applets=len(p.stdout.split()))
    links = 0
    for rel in sorted(p.stdout.split()):
        if rel == "bin/busybox":
            continue
        dst = rootfs / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists() and not dst.is_symlink():
            os.symlink("/bin/busybox", dst)
            links += 1
    record(steps, "write", "rootfs applet symlinks", count=links)
    for d in ("proc", "sys", "dev", "run", "root", "var/tmp", "home", "etc"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").mkdir(exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    os.chmod(rootfs / "root", 0o700)
    _write(rootfs, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                 "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    _write(rootfs, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    _write(rootfs, "etc/os-release", f'NAME="example.com/busybox"\nVERSION="{upstream_version(source.version)}"\n'
                                     f'ID=busybox\nBUSYBOX_DEBIAN_VERSION="{source.version}"\n')
    manifest = {
        "acKind": "ImageManifest", "acVersion": AC_VERSION, "name": "example.com/busybox",
        "labels": _labels(upstream_version(source.version), arch),
        "app": {"exec": ["/bin/sh"], "user": "0", "group": "0", "workingDirectory": "/"},
        "annotations": [
            {"name": "created", "value": _rfc3339(epoch)},
            {"name": "homepage", "value": "https://busybox.net/"},
            {"name": "debian-package", "value": f"{PACKAGE} {source.version}"},
        ],
    }
    (layout / "manifest").write_text(json.dumps(manifest, indent=2) + "\n")
    _fix_times(layout, epoch)
    record(steps, "write", str(layout), files=n, applet_links=links)
    return manifest


COMMON_SH = """\
# Shared helpers of the example.com worker images; the run scripts source this file.
log() {
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ${AC_APP_NAME:-worker}: $*"
}
"""

REDUCE_RUN = """\
#!/bin/sh
# reduce-worker: every REDUCE_INTERVAL seconds, "reduce" the input (count and sum its numbers)
# into /var/lib/reduce (the "results" mountPoint), and serve results and registrations over
# HTTP on 127.0.0.1:$REDUCE_PORT with busybox httpd.
. /usr/lib/worker/common.sh
data=/var/lib/reduce
port=${REDUCE_PORT:-8080}
mkdir -p "$data"
httpd -f -p "127.0.0.1:$port" -h /srv/reduce-worker &
httpd_pid=$!
trap 'kill "$httpd_pid" 2>/dev/null; log "stopped"; exit 0' TERM INT
sleep 1
if ! kill -0 "$httpd_pid" 2>/dev/null; then
    log "httpd could not listen on 127.0.0.1:$port"
    exit 1
fi
log "serving http://127.0.0.1:$port/ (httpd pid $httpd_pid)"
round=0
while :; do
    round=$((round + 1))
    set -- $(awk '{ n++; s += $1 } END { print n + 0, s + 0 }' /etc/reduce-worker/input)
    echo "round=$round count=$1 sum=$2 at=$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$data/result.tmp"
    mv "$data/result.tmp" "$data/result"
    echo "round=$round count=$1 sum=$2" >> "$data/history"
    log "round $round: count=$1 sum=$2"
    if [ "${REDUCE_ROUNDS:-0}" -gt 0 ] && [ "$round" -ge "${REDUCE_ROUNDS:-0}" ]; then
        log "done after $round rounds; still serving"
        wait "$httpd_pid"
        exit 0
    fi
    sleep "${REDUCE_INTERVAL:-5}" &
    wait $!
done
"""

REGISTER_CGI = """\
#!/bin/sh
# GET /cgi-bin/register?worker=NAME - remembers NAME in /var/lib/reduce/registered
name=$(echo "$QUERY_STRING" | sed -n 's/.*worker=\\([A-Za-z0-9._-]*\\).*/\\1/p')
if [ -z "$name" ]; then
    printf 'HTTP/1.0 400 Bad Request\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
    echo "say who you are: /cgi-bin/register?worker=NAME"
    exit 0
fi
echo "$name $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> /var/lib/reduce/registered
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "registered $name"
"""

RESULT_CGI = """\
#!/bin/sh
# GET /cgi-bin/result - the latest reduction
printf 'Content-Type: text/plain\\r\\n\\r\\n'
cat /var/lib/reduce/result 2>/dev/null || echo "no result yet"
"""

INDEX_HTML = """\
<!doctype html>
<title>reduce-worker</title>
<h1>example.com/reduce-worker</h1>
<ul>
<li><a href="/cgi-bin/result">/cgi-bin/result</a> - the latest reduction</li>
<li>/cgi-bin/register?worker=NAME - register a worker</li>
</ul>
"""

BACKUP_RUN = """\
#!/bin/sh
# worker-backup: every BACKUP_INTERVAL seconds, copy /var/lib/reduce (the "results" volume)
# into /var/backup/reduce-<time> (the "backup" volume), keeping the newest BACKUP_KEEP copies.
. /usr/lib/worker/common.sh
src=/var/lib/reduce
dst=/var/backup
keep=${BACKUP_KEEP:-3}
trap 'log "stopped"; exit 0' TERM INT
while :; do
    if [ -e "$src/result" ]; then
        snap="$dst/reduce-$(date -u +%Y%m%dT%H%M%SZ)"
        mkdir -p "$snap" && cp -a "$src/." "$snap/" && log "backed up $src to $snap"
        ls -1d "$dst"/reduce-* | awk -v k="$keep" '{ a[NR] = $0 } END { for (i = 1; i <= NR - k; i++) print a[i] }' |
            while read -r old; do rm -rf "$old"; done
    else
        log "nothing to back up yet ($src/result does not exist)"
    fi
    [ -n "$BACKUP_ONCE" ] && exit 0
    sleep "${BACKUP_INTERVAL:-10}" &
    wait $!
done
"""

REGISTER_RUN = """\
#!/bin/sh
# reduce-worker-register: tell the reduce-worker we exist, then exit 0 (1 if it never answers).
. /usr/lib/worker/common.sh
url=${REDUCE_WORKER_URL:-http://127.0.0.1:8080}
me=${WORKER_NAME:-$(hostname)}
tries=${REGISTER_TRIES:-30}
i=0
while [ "$i" -lt "$tries" ]; do
    i=$((i + 1))
    if out=$(wget -q -O - "$url/cgi-bin/register?worker=$me" 2>/dev/null); then
        log "$out (attempt $i)"
        exit 0
    fi
    sleep 1
done
log "could not register at $url after $tries attempts"
exit 1
"""

# worker-backup keeps only what it runs: its script, the helpers, and these busybox applets.
BACKUP_WHITELIST = [
    "/bin/busybox", "/bin/sh", "/bin/cp", "/bin/mkdir", "/bin/date", "/bin/sleep", "/bin/ls",
    "/bin/rm", "/usr/bin/awk", "/etc/passwd", "/etc/group",
    "/usr/lib/worker/common.sh", "/opt/worker-backup/run",
]


def _dep(name: str, arch: str, version: str, image_id: str | None = None) -> dict:
    d: dict = {"imageName": name, "labels": _labels(version, arch)}
    if image_id:
        d["imageID"] = image_id
    return d


def _app_manifest(name: str, arch: str, deps: list[dict], app: dict | None,
                  description: str, **extra: object) -> dict:
    m: dict = {"acKind": "ImageManifest", "acVersion": AC_VERSION, "name": name,
               "labels": _labels(VERSION, arch)}
    if app is not None:
        m["app"] = app
    m["dependencies"] = deps
    m.update(extra)
    m["annotations"] = [{"name": "created", "value": _rfc3339(APP_EPOCH)},
                        {"name": "description", "value": description}]
    return m


def _app_layout(layout: Path, manifest: dict, files: dict[str, tuple[str, int]],
                dirs: list[str] = ()) -> None:
    rootfs = layout / "rootfs"
    rootfs.mkdir(parents=True)
    for rel, (content, mode) in files.items():
        _write(rootfs, rel, content, mode)
    for d in dirs:
        (rootfs / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (layout / "manifest").write_text(json.dumps(manifest, indent=2) + "\n")
    _fix_times(layout, APP_EPOCH)


def _run_app(script: str, env: dict[str, str], mounts: list[dict], ports: list[dict] | None = None,
             handlers: list[dict] | None = None) -> dict:
    a: dict = {"exec": ["/bin/sh", script], "user": "0", "group": "0", "workingDirectory": "/",
               "environment": [{"name": k, "value": v} for k, v in env.items()]}
    if handlers:
        a["eventHandlers"] = handlers
    if mounts:
        a["mountPoints"] = mounts
    if ports:
        a["ports"] = ports
    return a


# ---------------------------------------------------------------------------- build

def build(out_dir: str | os.PathLike[str], *, import_to=None, steps: Steps | None = None,
          cache_dir: str | os.PathLike[str] | None = None, allow_download: bool = True,
          compression: str = "gzip", progress: bool = True) -> dict[str, Path]:
    """Build the catalogue's ACIs into ``out_dir``; return {image name: .aci path}.

    ``import_to`` (a :class:`sandbox.image.store.Store`) also imports each image. The busybox files
    come from Debian only (see :func:`find_busybox`); ``cache_dir`` (default
    ``$SANDBOX_DIR/cache/debs``) keeps a downloaded .deb.
    """
    # Long on purpose: the catalogue itself, one image a paragraph in dependency order (slide 13).
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CatalogError(f"cannot create {out} ({e.strerror}).") from e
    cache = Path(cache_dir) if cache_dir else config.sandbox_dir() / "cache" / "debs"

    from sandbox._progress import tqdm_class
    bar = tqdm_class()(total=5, desc="catalog", unit="image", disable=not progress, file=sys.stderr)

    def log(msg: str) -> None:
        if progress:
            bar.write(f"catalog: {msg}", file=sys.stderr)

    try:
        arch = platform.host().appc
    except platform.UnknownArch as e:
        raise CatalogError(f"{e} The catalogue is built for this machine's architecture.") from e
    result: dict[str, Path] = {}
    ids: dict[str, str] = {}
    work = Path(tempfile.mkdtemp(prefix="sbx-catalog-"))
    try:
        def finish(name: str, layout: Path, version: str) -> str:
            fn = out / f"{name.split('/')[-1]}-{version}-linux-{arch}.aci"
            iid = aci.build(layout, fn, compression=compression, owner_root=True,
                            overwrite=True, steps=steps)
            result[name] = fn
            ids[name] = iid
            log(f"{name}:{version}  {aci.short_id(iid)}  -> {fn}")
            if import_to is not None:
                import_to.import_aci(fn, steps=steps)
                log(f"imported {name} into {import_to.root}")
            bar.update(1)
            return iid

        src = find_busybox(cache, allow_download=allow_download, steps=steps, log=log)
        bb_version = upstream_version(src.version)
        busybox_layout(work / "busybox", src, arch, steps)
        bb_id = finish("example.com/busybox", work / "busybox", bb_version)
        bb_dep = _dep("example.com/busybox", arch, bb_version, bb_id)

        base = _app_manifest("example.com/worker-base", arch, [bb_dep], None,
                             "shared helpers of the example.com workers")
        _app_layout(work / "base", base, {"/usr/lib/worker/common.sh": (COMMON_SH, 0o644)})
        finish("example.com/worker-base", work / "base", VERSION)
        base_dep = _dep("example.com/worker-base", arch, VERSION)   # by name + labels only

        results = {"name": "results", "path": "/var/lib/reduce", "readOnly": False}
        reduce = _app_manifest(
            "example.com/reduce-worker", arch, [bb_dep, base_dep],
            _run_app("/opt/reduce-worker/run",
                     {"REDUCE_PORT": "8080", "REDUCE_INTERVAL": "5"}, [results],
                     ports=[{"name": "http", "protocol": "tcp", "port": 8080}],
                     handlers=[{"name": "pre-start",
                                "exec": ["/bin/sh", "-c", "mkdir -p /var/lib/reduce"]}]),
            "reduces its input every few seconds and serves the result over HTTP on port 8080")
        _app_layout(work / "reduce", reduce, {
            "/opt/reduce-worker/run": (REDUCE_RUN, 0o755),
            "/etc/reduce-worker/input": ("".join(f"{n}\n" for n in (3, 1, 4, 1, 5, 9, 2, 6, 5, 3)), 0o644),
            "/srv/reduce-worker/index.html": (INDEX_HTML, 0o644),
            "/srv/reduce-worker/cgi-bin/register": (REGISTER_CGI, 0o755),
            "/srv/reduce-worker/cgi-bin/result": (RESULT_CGI, 0o755),
        }, dirs=["/var/lib/reduce"])
        finish("example.com/reduce-worker", work / "reduce", VERSION)

        backup = _app_manifest(
            "example.com/worker-backup", arch, [bb_dep, base_dep],
            _run_app("/opt/worker-backup/run", {"BACKUP_INTERVAL": "10", "BACKUP_KEEP": "3"},
                     [{"name": "results", "path": "/var/lib/reduce", "readOnly": True},
                      {"name": "backup", "path": "/var/backup", "readOnly": False}]),
            "copies the reduce-worker's results to a backup volume periodically",
            pathWhitelist=BACKUP_WHITELIST)
        _app_layout(work / "backup", backup, {"/opt/worker-backup/run": (BACKUP_RUN, 0o755)})
        finish("example.com/worker-backup", work / "backup", VERSION)

        register = _app_manifest(
            "example.com/reduce-worker-register", arch, [bb_dep, base_dep],
            _run_app("/opt/reduce-worker-register/run",
                     {"REDUCE_WORKER_URL": "http://127.0.0.1:8080", "REGISTER_TRIES": "30"}, []),
            "registers with the reduce-worker over HTTP, then exits")
        _app_layout(work / "register", register,
                    {"/opt/reduce-worker-register/run": (REGISTER_RUN, 0o755)})
        finish("example.com/reduce-worker-register", work / "register", VERSION)
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
    record(steps, "write", str(out), images=len(result))
    return result


# ---------------------------------------------------------------------------- slides 12 and 13

RUNTIME_APP = """\
import os
import sys

print("Hello, world!")
print(f"I am {sys.argv[0]}, run by {sys.executable} (Python {sys.version.split()[0]})")
print("my / holds:", " ".join(sorted(os.listdir("/"))))
"""

# The modules a CPython 3.11+ interpreter reads from disk to start (the rest of its start-up
# modules are frozen into the binary), and os.py, the landmark it finds its prefix by.
DEBIAN_PYTHON = "/usr/bin/python3"
PYTHON_START_FILES = ("encodings/__init__.py", "encodings/aliases.py", "encodings/utf_8.py", "os.py")


def shared_libraries(binary: str | os.PathLike[str], steps: Steps | None = None
                     ) -> list[tuple[str, Path]]:
    """(path the binary asks for, the file it resolves to) for each shared library and the
    dynamic loader, as ``ldd`` (Debian's libc-bin) reports them; empty for a static binary.
    An image that carries the binary must carry each file at the path asked for."""
    try:
        p = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise CatalogError(f"cannot list the libraries {binary} needs ({e}).",
                           hint="Install Debian's libc-bin (it provides ldd).") from e
    record(steps, "exec", f"ldd {binary}", rc=p.returncode)
    out = p.stdout if p.returncode == 0 else ""      # "not a dynamic executable": none
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
        if path.startswith("/"):
            libs.append((path, Path(os.path.realpath(path))))
    return libs


def _debian_packages(paths: list[str | Path]) -> dict[str, tuple[str, str]]:
    """{path: (package, version)} for files installed by Debian packages: one ``dpkg -S`` and
    one ``dpkg-query`` for all of them (with merged /usr a package may list either spelling)."""
    spellings = {str(p): list(dict.fromkeys([str(p), os.path.realpath(p)])) for p in paths}
    q = subprocess.run(["dpkg", "-S", *{c for cs in spellings.values() for c in cs}],
                       capture_output=True, text=True)
    owner: dict[str, str] = {}
    for line in q.stdout.splitlines():
        pkgs, sep, path = line.partition(": ")
        if sep:
            owner[path.strip()] = pkgs.split(",")[0].strip().split(":")[0]
    out: dict[str, tuple[str, str]] = {}
    for p, cands in spellings.items():
        pkg = next((owner[c] for c in cands if c in owner), None)
        if pkg is None:
            raise CatalogError(f"no Debian package owns {p}; the runtime images are built only "
                               "from installed Debian packages.")
        out[p] = (pkg, "")
    names = sorted({pkg for pkg, _ in out.values()})
    q = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *names],
                       capture_output=True, text=True)
    versions = dict(line.split(" ", 1) for line in q.stdout.splitlines() if " " in line)
    return {p: (pkg, versions.get(pkg, "")) for p, (pkg, _) in out.items()}


def runtime_stack(out_dir: str | os.PathLike[str], *, import_to: Any = None,
                  steps: Steps | None = None, compression: str = "gzip") -> dict[str, Path]:
    """Slides 12 and 13 for real: *your* app on a runtime image on the C library, three ACIs
    built offline from Debian packages already installed (never downloaded):

    * ``example.com/libc`` — glibc (libc6): the dynamic loader, libc.so.6, libm.so.6;
    * ``example.com/python-runtime`` — ``/usr/bin/python3`` (python3.X-minimal), the other
      libraries it links (zlib, expat) and the few standard-library files Python reads to start;
      depends on ``example.com/libc``;
    * ``example.com/hello-python`` — only ``/opt/app.py`` and ``exec: python3 /opt/app.py``;
      depends on ``example.com/python-runtime``.

    Each image's ``debian-packages`` annotation names the packages (with versions) its files
    came from. Returns {image name: .aci path}; ``import_to`` imports them too.
    """
    # Long on purpose: slides 12-13 as a recipe, read top to bottom: find Debian's python and what
    # it links, then one image a paragraph (libc, python-runtime, hello-python).
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch = platform.host().appc
    # Debian's interpreter (not necessarily the one running this code: a venv may use another)
    python = Path(os.path.realpath(DEBIAN_PYTHON))
    major_minor = python.name.removeprefix("python")
    stdlib = Path("/usr/lib") / python.name
    if not python.is_file() or not (stdlib / "os.py").is_file():
        raise CatalogError(f"Debian's python3 is not installed ({DEBIAN_PYTHON}).",
                           hint="Install python3-minimal (provision/packages/base.txt has python3-venv).")
    libs = shared_libraries(python, steps)
    owners = _debian_packages([req for req, _ in libs] + [python, stdlib / "os.py"])
    py_pkg, std_pkg = owners[str(python)], owners[str(stdlib / "os.py")]
    libc_pkg = next((v for v in owners.values() if v[0] == "libc6"), None)
    if libc_pkg is None:
        raise CatalogError(f"{python} does not link Debian's libc6 (ldd lists "
                           f"{', '.join(r for r, _ in libs)}).")
    result: dict[str, Path] = {}
    work = Path(tempfile.mkdtemp(prefix="sbx-runtime-"))

    def copy(rootfs: Path, rel: str, src: Path, mode: int = 0o644) -> None:
        dst = rootfs / rel.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, mode)
        record(steps, "read", str(src), to=rel)

    def finish(name: str, version: str, layout: Path, deps: list[dict], app: dict | None,
               packages: list[tuple[str, str]], description: str) -> dict:
        m = {"acKind": "ImageManifest", "acVersion": AC_VERSION, "name": name,
             "labels": _labels(version, arch)}
        if app:
            m["app"] = app
        if deps:
            m["dependencies"] = deps
        m["annotations"] = [
            {"name": "created", "value": _rfc3339(APP_EPOCH)},
            {"name": "description", "value": description},
            *([{"name": "debian-packages",
                "value": " ".join(f"{p}={v}" for p, v in sorted(set(packages)))}] if packages else [])]
        (layout / "manifest").write_text(json.dumps(m, indent=2) + "\n")
        _fix_times(layout, APP_EPOCH)
        fn = out / f"{name.split('/')[-1]}-{version}-linux-{arch}.aci"
        iid = aci.build(layout, fn, compression=compression, owner_root=True, overwrite=True,
                        steps=steps)
        result[name] = fn
        if import_to is not None:
            import_to.import_aci(fn, steps=steps)
        return {"imageName": name, "imageID": iid, "labels": _labels(version, arch)}

    try:
        libc_version = upstream_version(libc_pkg[1])
        rootfs = work / "libc" / "rootfs"
        for req, real in libs:
            if owners[req][0] == "libc6":
                copy(rootfs, req, real, 0o755)
        libc_dep = finish("example.com/libc", libc_version, work / "libc", [], None, [libc_pkg],
                          "the GNU C library: the dynamic loader, libc and libm (Debian's libc6)")

        py_version = upstream_version(py_pkg[1])
        rootfs = work / "python" / "rootfs"
        copy(rootfs, f"/usr/bin/python{major_minor}", python, 0o755)
        os.symlink(f"python{major_minor}", rootfs / "usr" / "bin" / "python3")
        extra = [owners[req] for req, _ in libs if owners[req][0] != "libc6"]
        for req, real in libs:
            if owners[req][0] != "libc6":
                copy(rootfs, req, real, 0o644)
        for rel in PYTHON_START_FILES:
            copy(rootfs, f"/usr/lib/python{major_minor}/{rel}", stdlib / rel)
        (rootfs / "usr" / "lib" / f"python{major_minor}" / "lib-dynload").mkdir()
        py_dep = finish("example.com/python-runtime", py_version, work / "python", [libc_dep], None,
                        [py_pkg, std_pkg, *extra],
                        "a Python interpreter and only what it needs to start (Debian's python3)")

        layout = work / "app"
        _write(layout / "rootfs", "/opt/app.py", RUNTIME_APP)
        finish("example.com/hello-python", VERSION, layout,
               [{k: v for k, v in py_dep.items() if k != "imageID"}],   # by name and labels
               {"exec": ["/usr/bin/python3", "/opt/app.py"], "user": "0", "group": "0",
                "workingDirectory": "/"}, [],
               "your app: one Python file, nothing else; python-runtime provides the interpreter")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record(steps, "write", str(out), images=len(result))
    return result


def small_image(out: str | os.PathLike[str], name: str, files: dict[str, str], *,
                version: str | None = "1.0.0", labels: dict[str, str] | None = None,
                dependencies: list[str] | tuple[str, ...] = (), path_whitelist: list[str] | None = None,
                epoch: int | None = APP_EPOCH, import_to: Any = None) -> Path:
    """A small teaching image: ``files`` ({path in the rootfs: text}) under ``name``, labelled
    ``version`` (and ``labels``), depending on each of ``dependencies`` by name (and the same
    version), with an optional ``pathWhitelist``; written to ``out`` (its layout beside it, in
    ``out``'s stem + ``.layout``). Fixed times (``epoch``) make it reproducible; ``import_to``
    imports it too. Returns the .aci path."""
    out = Path(out)
    layout = out.with_name(out.stem + ".layout")
    shutil.rmtree(layout, ignore_errors=True)
    (layout / "rootfs").mkdir(parents=True)
    for rel, text in files.items():
        _write(layout / "rootfs", rel, text, 0o755 if text.startswith("#!") else 0o644)
    lab = ([{"name": "version", "value": version}] if version else []) + [
        {"name": k, "value": v} for k, v in (labels or {}).items()]
    m: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": AC_VERSION, "name": name,
                         "labels": lab}
    if dependencies:
        m["dependencies"] = [{"imageName": d, **({"labels": [{"name": "version", "value": version}]}
                                                  if version else {})} for d in dependencies]
    if path_whitelist:
        m["pathWhitelist"] = list(path_whitelist)
    (layout / "manifest").write_text(json.dumps(m, indent=2))
    if epoch is not None:
        _fix_times(layout, epoch)
    aci.build(layout, out, overwrite=True)
    if import_to is not None:
        import_to.import_aci(out)
    return out


def tiny_image(store: Any, workdir: str | os.PathLike[str], name: str,
               deps: list[str] | tuple[str, ...] = ()) -> Any:
    """A teaching image ``example.com/NAME`` whose rootfs holds one file, ``/who`` = NAME, and
    which depends by name on ``example.com/DEP`` for each DEP (ace.md's worked examples are
    drawn with such images). Built into ``workdir`` and imported into ``store``."""
    from sandbox.image import aci
    layout = Path(workdir) / name
    (layout / "rootfs").mkdir(parents=True, exist_ok=True)
    (layout / "rootfs" / "who").write_text(name)
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": f"example.com/{name}",
        "dependencies": [{"imageName": f"example.com/{d}"} for d in deps]}))
    out = Path(workdir) / f"{name}.aci"
    aci.build(layout, out, overwrite=True)
    return store.import_aci(out)
