"""Every case of the hostile-archive corpus (tests/security/make_corpus.py) through every pipeline
that writes an image's files on the host side: ACI extraction, rendering (in memory, and through
the image store + tree store), OCI import, and prepare/run of a pod. Each gets the verdict the
corpus gives it; a refusal is one of the kit's own errors (a sentence, never a traceback); and
after every case the HOST is as it was: the canary directory the hostile links point at keeps
its entries, modes, owners and contents, and nothing appears beside it."""
from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import stat
import tarfile
from pathlib import Path

import pytest

from sandbox import oci, render
from sandbox.errors import SandboxError
from sandbox.image import aci
from sandbox.image.manifest import ImageManifest

from . import make_corpus

IS_ROOT = os.geteuid() == 0


# ------------------------------------------------------------------------------ the canary


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """host/canary: what every hostile link points at. Nothing may change below host/."""
    h = tmp_path_factory.mktemp("host")
    c = h / "canary"
    (c / "b").mkdir(parents=True)
    (c / "keep").write_text("original\n")
    (c / "passwd").write_text("canaryuser:x:4242:4242::/:/bin/sh\n")
    os.chmod(c, 0o750)
    os.chmod(c / "b", 0o750)
    os.chmod(c / "keep", 0o640)
    if IS_ROOT:
        os.chown(c / "keep", 4343, 4343)
    return h


def snapshot(h: Path) -> list[tuple]:
    out = []
    for dirpath, dirnames, filenames in os.walk(h):
        for n in [".", *dirnames, *filenames]:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            body = (Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else
                    os.readlink(p) if stat.S_ISLNK(st.st_mode) else b"")
            out.append((os.path.relpath(p, h), stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                        st.st_uid, st.st_gid, body))
    return sorted(out)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, host: Path) -> tuple[Path, dict]:
    """The corpus as the script writes it, pointing at this module's canary."""
    out = tmp_path_factory.mktemp("corpus")
    listing = make_corpus.write(out, str(host / "canary"))
    assert json.loads((out / "cases.json").read_text()) == listing
    return out, {c["name"]: c for c in listing}


ARCHIVE_CASES = [c["name"] for c in make_corpus.CASES]
POD_CASES = [c["name"] for c in make_corpus.POD_CASES]
EXTRA = {c["name"]: c for c in make_corpus.CASES}


@pytest.fixture
def guard(host: Path):
    """The host check around one case."""
    before = snapshot(host)
    yield
    assert snapshot(host) == before, "the case changed the host (the canary directory)"


def outcome(fn) -> str:
    """``refused`` when ``fn`` raises one of the kit's errors (with a one-sentence message),
    ``ok`` when it returns. Anything else fails the test: it would be a traceback."""
    try:
        fn()
    except SandboxError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "Traceback" not in msg, msg
        return "refused"
    return "ok"


def lstat_in(tree: Path, rel: str) -> os.stat_result | None:
    """lstat of ``rel`` below ``tree`` with no link followed on the way (a checker that
    followed the image's links would look at the host): None when it is not there."""
    cur = tree
    parts = [p for p in rel.split("/") if p]
    for i, part in enumerate(parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return None
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return None
    return st


def check_tree(tree: Path, expect: dict[str, str], case: str) -> None:
    for rel, want in expect.items():
        st = lstat_in(tree, rel)
        if want == "absent":
            assert st is None, (case, rel)
            continue
        assert st is not None, (case, rel, want)
        if want.startswith("symlink:"):
            assert stat.S_ISLNK(st.st_mode) and os.readlink(tree / rel) == want[len("symlink:"):], \
                (case, rel)
        else:
            kind = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "fifo": stat.S_ISFIFO}[want]
            assert kind(st.st_mode), (case, rel, want)
    for rel in EXTRA.get(case, {}).get("no_xattrs", []):
        names = os.listxattr(tree / rel, follow_symlinks=False)
        assert not [n for n in names if n.startswith(("trusted.", "security."))], (case, names)


# ------------------------------------------------------------------------------ pipelines


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_aci_extraction(corpus, guard, tmp_path: Path, case: str) -> None:
    """``aci.extract_rootfs`` of each archive in turn into one directory (a later archive finds
    the earlier ones' files there)."""
    out_dir, cases = corpus
    c = cases[case]
    dest = tmp_path / "out"

    def run() -> None:
        for i in range(c["archives"]):
            aci.extract_rootfs(out_dir / case / f"image-{i}.aci", dest)

    assert outcome(run) == c["verdict"]["aci"]
    if c["verdict"]["aci"] == "ok":
        check_tree(dest, c["expect"]["aci"], case)


class MemSource:
    """The corpus's ACIs as an in-memory image source: render.render sees the hostile archive
    itself, not what the image store's import checks would leave of it."""

    def __init__(self, paths: list[Path]) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, ImageManifest] = {}
        for p in paths:
            data = p.read_bytes()
            i = "sha512-" + hashlib.sha512(data).hexdigest()
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                m = t.extractfile("manifest").read()
            self.blobs[i] = data
            self.manifests[i] = ImageManifest.from_json(m)

    def find(self, name: str, labels: dict | None = None) -> list[str]:
        return [i for i, m in self.manifests.items() if m.name == name]

    def manifest(self, image_id: str) -> ImageManifest:
        return self.manifests[image_id]

    def open_tar(self, image_id: str) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(self.blobs[image_id]))


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_render(corpus, guard, tmp_path: Path, case: str) -> None:
    """The last image rendered with the others as its dependency chain (the first archive is
    the deepest dependency)."""
    out_dir, cases = corpus
    c = cases[case]
    mem = MemSource([out_dir / case / f"image-{i}.aci" for i in range(c["archives"])])
    top = mem.find(f"{make_corpus.NAME}-{c['archives'] - 1}")[0]
    dest = tmp_path / "out"
    assert outcome(lambda: render.render(render.resolve(mem, top), dest, mem.open_tar)) == \
        c["verdict"]["render"]
    if c["verdict"]["render"] == "ok":
        check_tree(dest, c["expect"]["render"], case)


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_store_and_tree_store(corpus, guard, sandbox_dir: Path, case: str) -> None:
    """What `sandbox fetch`/`import` + `image render` do: import each archive into the store (its
    checks may refuse first), render the top one into the tree store."""
    from sandbox.image.store import Store
    from sandbox.render import treestore
    out_dir, cases = corpus
    c = cases[case]
    tree: list = []

    def run() -> None:
        store = Store()
        for i in range(c["archives"]):
            store.import_aci(out_dir / case / f"image-{i}.aci")
        tree.append(treestore.render_image(store, f"{make_corpus.NAME}-{c['archives'] - 1}"))

    assert outcome(run) == c["verdict"]["render"]
    if tree:
        check_tree(tree[0].rootfs, c["expect"]["render"], case)
        assert stat.S_IMODE(os.stat(sandbox_dir / "trees").st_mode) == 0o700


def oci_layout(layers: list[bytes], dest: Path) -> Path:
    """An OCI image layout around these (uncompressed) layers, written by hand."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes, media_type: str) -> dict:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{h}", "size": len(data)}

    descs = [put(layer, "application/vnd.oci.image.layer.v1.tar") for layer in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
              "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}
    cdesc = put(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cdesc, "layers": descs}
    mdesc = put(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": "t"}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return dest


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_oci_import(corpus, guard, tmp_path: Path, case: str) -> None:
    """`sandbox oci import`: the layers applied in order (whiteouts included) into one ACI."""
    out_dir, cases = corpus
    c = cases[case]
    layout = oci_layout([(out_dir / case / f"layer-{i}.tar").read_bytes()
                         for i in range(c["archives"])], tmp_path / "layout")
    made = tmp_path / "imported.aci"
    assert outcome(lambda: oci.import_layout(f"{layout}:t", made, name="example.com/imported")) \
        == c["verdict"]["oci"]
    if c["verdict"]["oci"] == "ok":
        aci.extract_rootfs(made, tmp_path / "rootfs", keep_setid=True)
        check_tree(tmp_path / "rootfs", c["expect"]["oci"], case)


# ------------------------------------------------------------------------------ pods


def _in_child(fn, timeout: int = 60) -> dict:
    """``fn()`` in a forked child with a memory cap and a deadline (the old code read
    /dev/zero until memory ran out and blocked on FIFOs forever): its result as a dict."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        res: dict = {"error": "died"}
        try:
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
            signal.alarm(timeout)
            res = {"ok": fn()}
        except SandboxError as e:
            res = {"refused": str(e)}
        except BaseException as e:  # noqa: BLE001
            res = {"error": f"{type(e).__name__}: {e}"}
        finally:
            os.write(w, json.dumps(res).encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"error": "the child was killed (memory or time)"}


@pytest.mark.root
@pytest.mark.parametrize("case", POD_CASES)
def test_pod(corpus, guard, lab_state: Path, case: str) -> None:
    """Prepare (the user lookup, the mount plan) and run the pod (stage1's mounts, /etc/hosts,
    /proc, /sys and /dev before pivot_root); the app checks what it sees."""
    from sandbox.image.store import Store
    from sandbox.pod import stage0 as pod
    out_dir, cases = corpus
    c = cases[case]
    store = Store()
    store.import_aci(out_dir / case / "image-0.aci")
    name = f"{make_corpus.NAME}-{case}"
    checks = " && ".join(f"test {'-d' if k == 'dir' else '-f'} '{p}'"
                         for p, k in c["in_tree"].items()) or "true"
    res = _in_child(lambda: pod.prepare(store, [name], net=["none"],
                                        exec_={0: ["/bin/sh", "-c", checks]}).uuid)
    assert "error" not in res, res
    if c["verdict"]["pod"] == "refused":
        assert "refused" in res, res
        assert "\n" not in res["refused"]
        return
    uuid = res["ok"]
    try:
        code = pod.run_prepared(uuid)
        st = pod.status(uuid)
        app = st["apps"][0]
        if c["verdict"]["pod"] == "ok":
            assert code == 0, (st, pod.logs(uuid))
        else:
            assert code != 0 and app.get("error"), st
            assert "\n" not in app["error"]
    finally:
        pod.remove(uuid)
