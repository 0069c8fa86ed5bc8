"""The lab catalogue: built offline from Debian's busybox-static; its images validate with both
validators, carry the package's own busybox, and their programs really run."""
from __future__ import annotations

import hashlib
import shutil
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sandbox._sys import platform
from sandbox.image import aci, catalog
from sandbox.image.store import Store

NAMES = ["example.com/busybox", "example.com/worker-base", "example.com/reduce-worker",
         "example.com/worker-backup", "example.com/reduce-worker-register"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("catalog")
    return catalog.build(out, allow_download=False, cache_dir=out / "no-cache", progress=False)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_catalog_has_the_seed_images(built):
    assert list(built) == NAMES
    arch = platform.host().appc
    for name, path in built.items():
        m = aci.read_manifest(path)
        assert m.name == name
        assert m.labels["os"] == "linux" and m.labels["arch"] == arch
        if name != "example.com/busybox":
            assert m.labels["version"] == "1.0.0"
            assert m.dependencies[0].image_name == "example.com/busybox"


def test_every_image_validates_with_both_validators(built, actool):
    for path in built.values():
        assert aci.validate(path) == []
        p = subprocess.run([actool, "validate", str(path)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


def test_dependencies_pin_the_busybox_id(built):
    bb_id = aci.image_id(built["example.com/busybox"])
    for name in NAMES[1:]:
        deps = aci.read_manifest(built[name]).dependencies
        assert deps[0].image_id == bb_id
        assert deps[0].labels["version"] == aci.read_manifest(built[NAMES[0]]).labels["version"]
    rw = aci.read_manifest(built["example.com/reduce-worker"])
    assert [d.image_name for d in rw.dependencies] == ["example.com/busybox", "example.com/worker-base"]
    assert rw.dependencies[1].image_id is None     # by name + labels only
    assert rw.app.ports[0].port == 8080
    assert rw.app.mount_points[0].path == "/var/lib/reduce"


def test_busybox_is_debians_and_has_every_applet(built, tmp_path):
    dest = tmp_path / "bb"
    aci.extract_rootfs(built["example.com/busybox"], dest)
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "busybox-static"],
                             capture_output=True, text=True).stdout
    assert aci.read_manifest(built[NAMES[0]]).labels["version"] == catalog.upstream_version(version)
    assert sha(dest / "bin/busybox") == sha(Path("/bin/busybox"))   # same package version
    applets = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True,
                             text=True).stdout.split()
    links = {str(p.relative_to(dest)) for p in dest.rglob("*")
             if p.is_symlink() and os.readlink(p) == "/bin/busybox"}
    assert links == set(applets) - {"bin/busybox"}
    assert (dest / "usr/share/doc/busybox-static/copyright").is_file()
    assert (dest / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_backup_whitelist_names_files_the_render_provides(built, tmp_path):
    dest = tmp_path / "all"
    for name in ("example.com/busybox", "example.com/worker-base", "example.com/worker-backup"):
        aci.extract_rootfs(built[name], dest)
    wl = aci.read_manifest(built["example.com/worker-backup"]).path_whitelist
    assert wl and all(os.path.lexists(dest / p.lstrip("/")) for p in wl)


def test_catalog_is_reproducible(built, tmp_path):
    again = catalog.build(tmp_path, allow_download=False, cache_dir=tmp_path / "c", progress=False)
    for name in NAMES:
        assert again[name].read_bytes() == built[name].read_bytes()


def test_read_ar_agrees_with_ar(tmp_path):
    debs = sorted(Path("/var/cache/apt/archives").glob("busybox-static_*.deb"))
    if not debs:
        # make one the Debian way from the installed files
        pkg = tmp_path / "pkg"
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "bin").mkdir()
        subprocess.run(["cp", "/bin/busybox", pkg / "bin/busybox"], check=True)
        (pkg / "DEBIAN/control").write_text(
            "Package: busybox-static\nVersion: 1:1.0-1\nArchitecture: all\n"
            "Maintainer: lab <lab@example.com>\nDescription: test\n")
        subprocess.run(["dpkg-deb", "-Zxz", "--build", pkg, tmp_path / "bb.deb"], check=True,
                       capture_output=True)
        debs = [tmp_path / "bb.deb"]
    names = [n for n, _ in catalog.read_ar(debs[0])]
    ar = subprocess.run(["ar", "t", str(debs[0])], capture_output=True, text=True)
    if ar.returncode == 0:
        assert names == ar.stdout.split()
    assert names[0] == "debian-binary" and any(n.startswith("data.tar") for n in names)
    # the builder's rootfs holds exactly what dpkg-deb unpacks
    ours = tmp_path / "ours"
    catalog.busybox_layout(ours, catalog.BusyboxSource(
        "deb", catalog._deb_field(debs[0], "Version"), debs[0]), platform.host().appc)
    ref = tmp_path / "ref"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(ref)], check=True)
    for p in ref.rglob("*"):
        if p.is_file() and not p.is_symlink():
            q = ours / "rootfs" / p.relative_to(ref)
            assert sha(q) == sha(p), p


def _installed_as_deb(tmp_path: Path, version: str) -> Path:
    """The installed busybox-static re-packed with dpkg-deb (files copied with their times)."""
    pkg = tmp_path / "repack"
    (pkg / "DEBIAN").mkdir(parents=True)
    listed = subprocess.run(["dpkg", "-L", "busybox-static"], capture_output=True, text=True,
                            check=True).stdout.split()
    for line in listed:
        src = Path(line)
        if line == "/." or src.is_symlink() or not src.exists():
            continue
        dst = pkg / line.lstrip("/")
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-p", str(src), str(dst)], check=True)
    (pkg / "DEBIAN/control").write_text(
        f"Package: busybox-static\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: lab <lab@example.com>\nDescription: repacked for a test\n")
    deb = tmp_path / "repacked.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(pkg), str(deb)],
                   check=True, capture_output=True)
    return deb


def _fake_deb(path: Path, version: str, arch: str) -> Path:
    """A .deb made by binutils' ar and tar: just a control file (what find_busybox reads)."""
    work = path.parent / (path.name + ".d")
    work.mkdir()
    (work / "control").write_text(f"Package: busybox-static\nVersion: {version}\nArchitecture: {arch}\n")
    (work / "debian-binary").write_text("2.0\n")
    subprocess.run(["tar", "-C", str(work), "-czf", str(work / "control.tar.gz"), "./control"], check=True)
    subprocess.run(["ar", "rc", str(path), "debian-binary", "control.tar.gz"], cwd=work, check=True)
    return path


@pytest.mark.parametrize("machine,debian", [("x86_64", "amd64"), ("aarch64", "arm64")])
def test_cached_debs_of_another_architecture_are_not_used(tmp_path, monkeypatch, machine, debian):
    # One cache for two architectures (a USB stick for mixed laptops): each machine takes its own.
    cache = tmp_path / "debs"
    cache.mkdir()
    _fake_deb(cache / "busybox-static_1%3a1.35.0-4+b3_amd64.deb", "1:1.35.0-4+b3", "amd64")
    _fake_deb(cache / "busybox-static_1%3a1.35.0-4+b4_arm64.deb", "1:1.35.0-4+b4", "arm64")
    # named arm64 but built for another architecture: its control file wins
    _fake_deb(cache / "busybox-static_1%3a1.99-1_arm64.deb", "1:1.99-1", "armhf")
    monkeypatch.setattr(platform, "machine", lambda: machine)
    logs: list[str] = []
    src = catalog.find_busybox(cache, allow_download=False, log=logs.append)
    assert src.how == "deb" and src.deb is not None and src.deb.name.endswith(f"_{debian}.deb")
    assert src.version == {"amd64": "1:1.35.0-4+b3", "arm64": "1:1.35.0-4+b4"}[debian]
    assert any("1.99-1_arm64.deb" in m and "another architecture" in m for m in logs) == (debian == "arm64")


def test_installed_fallback_gives_the_same_image_as_the_deb(tmp_path):
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "busybox-static"],
                             capture_output=True, text=True).stdout
    arch = platform.host().appc
    m = catalog.busybox_layout(tmp_path / "inst", catalog.BusyboxSource("installed", version), arch)
    assert sha(tmp_path / "inst/rootfs/bin/busybox") == sha(Path("/bin/busybox"))
    assert os.readlink(tmp_path / "inst/rootfs/bin/sh") == "/bin/busybox"
    assert aci.validate(tmp_path / "inst") == []
    cached = [d for d in sorted(Path("/var/cache/apt/archives").glob("busybox-static_*.deb"))
              if catalog._deb_field(d, "Version") == version]
    deb = cached[0] if cached else _installed_as_deb(tmp_path, version)
    catalog.busybox_layout(tmp_path / "deb", catalog.BusyboxSource("deb", version, deb), arch)
    a = aci.build(tmp_path / "inst", tmp_path / "inst.aci")
    b = aci.build(tmp_path / "deb", tmp_path / "deb.aci")
    assert a == b, "the .deb and the installed files must give one image"
    assert m["annotations"][2]["value"] == f"busybox-static {version}"


def test_catalog_cli_builds_and_imports(run_cli, sandbox_dir, tmp_path):
    rc, out, _ = run_cli("catalog", "build", "--out", tmp_path / "cat", "--import", "--offline", "-q")
    assert rc == 0
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == NAMES
    assert sorted(i.name for i in Store().list()) == sorted(NAMES)
    assert Store().get("example.com/reduce-worker:1.0.0").manifest.app.ports[0].port == 8080


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.root
def test_the_apps_really_work(built, tmp_path):
    """reduce-worker serves and reduces, reduce-worker-register registers and exits 0,
    worker-backup copies the results. (A chroot over a hand-layered rootfs; pods do this
    properly with namespaces.)"""
    root = tmp_path / "rootfs"
    for name in NAMES:
        aci.extract_rootfs(built[name], root)
    os.mknod(root / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    port = _free_port()
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "AC_APP_NAME": "reduce-worker", "REDUCE_PORT": str(port), "REDUCE_INTERVAL": "1"}
    worker = subprocess.Popen(["chroot", str(root), "/bin/sh", "/opt/reduce-worker/run"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        reg = subprocess.run(["chroot", str(root), "/bin/sh", "/opt/reduce-worker-register/run"],
                             env={**env, "AC_APP_NAME": "register", "WORKER_NAME": "w7",
                                  "REDUCE_WORKER_URL": f"http://127.0.0.1:{port}",
                                  "REGISTER_TRIES": "20"},
                             capture_output=True, text=True, timeout=60)
        assert reg.returncode == 0, reg.stdout + reg.stderr
        assert "registered w7" in reg.stdout
        assert (root / "var/lib/reduce/registered").read_text().startswith("w7 ")
        deadline = time.time() + 10
        while not (root / "var/lib/reduce/result").exists() and time.time() < deadline:
            time.sleep(0.2)
        numbers = [int(x) for x in (root / "etc/reduce-worker/input").read_text().split()]
        assert f"count={len(numbers)} sum={sum(numbers)}" in (root / "var/lib/reduce/result").read_text()
        bk = subprocess.run(["chroot", str(root), "/bin/sh", "/opt/worker-backup/run"],
                            env={**env, "AC_APP_NAME": "backup", "BACKUP_ONCE": "1"},
                            capture_output=True, text=True, timeout=30)
        assert bk.returncode == 0, bk.stdout
        snaps = list((root / "var/backup").glob("reduce-*"))
        assert len(snaps) == 1 and (snaps[0] / "registered").read_text().startswith("w7 ")
    finally:
        with_pg = worker.pid
        try:
            os.killpg(with_pg, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(with_pg, signal.SIGKILL)
            worker.wait()
        deadline = time.time() + 10      # httpd goes with it (it may take a moment)
        while time.time() < deadline:
            try:
                os.killpg(with_pg, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(with_pg, signal.SIGKILL)
            pytest.fail("httpd outlived its reduce-worker")


# --------------------------------------------------------------------------- slides 12 and 13

RUNTIME = ["example.com/libc", "example.com/python-runtime", "example.com/hello-python"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict[str, Path]:
    return catalog.runtime_stack(tmp_path_factory.mktemp("runtime"))


def _dpkg_owner(path: str) -> str:
    """The package that owns ``path``, asked of dpkg directly (either /usr spelling)."""
    for p in (path, os.path.realpath(path)):
        q = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if q.returncode == 0:
            return q.stdout.split(":", 1)[0]
    raise AssertionError(f"dpkg knows no owner of {path}")


def test_runtime_stack_is_three_images_in_a_chain(stack, actool):
    assert list(stack) == RUNTIME
    libc, runtime, app = (aci.read_manifest(stack[n]) for n in RUNTIME)
    assert libc.dependencies == [] and [d.image_name for d in runtime.dependencies] == [RUNTIME[0]]
    assert runtime.dependencies[0].image_id == aci.image_id(stack[RUNTIME[0]])
    assert [d.image_name for d in app.dependencies] == [RUNTIME[1]]
    assert app.dependencies[0].image_id is None              # by name and labels
    assert app.app.exec == ["/usr/bin/python3", "/opt/app.py"]
    for path in stack.values():
        assert aci.validate(path) == []
        p = subprocess.run([actool, "validate", str(path)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


def test_runtime_images_hold_what_their_debian_packages_say(stack):
    """Each file comes from the package its image's annotation names (dpkg asked directly), the
    app image holds only the app, and the libc image only libc6's files."""
    python = os.path.realpath("/usr/bin/python3")
    files = {}
    for n in RUNTIME:
        with aci.open_tar(stack[n]) as t:
            files[n] = {m.name[len("rootfs"):] for m in t if m.isfile() and m.name.startswith("rootfs/")}
    assert files["example.com/hello-python"] == {"/opt/app.py"}
    assert python in files["example.com/python-runtime"]
    for name in RUNTIME[:2]:
        annotated = aci.read_manifest(stack[name]).annotations["debian-packages"]
        for f in files[name]:
            pkg = _dpkg_owner(f)
            assert f"{pkg}=" in annotated, (name, f, pkg)
            if name == "example.com/libc":
                assert pkg == "libc6"
    assert any(f.endswith("/libc.so.6") for f in files["example.com/libc"])


def test_runtime_stack_is_reproducible(stack, tmp_path):
    again = catalog.runtime_stack(tmp_path)
    assert [aci.image_id(p) for p in again.values()] == [aci.image_id(p) for p in stack.values()]


@pytest.mark.root
def test_the_python_app_runs_on_the_rendered_stack(stack, sandbox_dir):
    from sandbox import render
    from sandbox.render import treestore
    store = Store()
    for p in stack.values():
        store.import_aci(p)
    app = store.get("example.com/hello-python")
    assert render.resolve(store, app).order_names() == RUNTIME
    tree = treestore.render_image(store, app)
    trace = tree.trace()
    assert trace.owner("/opt/app.py") == "example.com/hello-python"
    assert trace.owner(os.path.realpath("/usr/bin/python3")) == "example.com/python-runtime"
    with treestore.clean_copy(tree, overlay=False) as copy:
        out = subprocess.run([shutil.which("chroot"), str(copy.path), *app.manifest.app.exec], env={},
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "Hello, world!"
    # what the app lists is what the three images put at the top of the tree, nothing else
    assert out.stdout.splitlines()[-1] == "my / holds: " + " ".join(sorted(os.listdir(tree.rootfs)))
