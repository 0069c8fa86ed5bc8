"""OCI export/import/bundle, judged by the real tools: skopeo, umoci and runc."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from sandbox import oci
from sandbox.config import tool_path
from sandbox.image import aci
from sandbox.image.store import Store
from sandbox.render import treestore

pytestmark = pytest.mark.root   # extraction keeps owners; runc needs root


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}): {p.stderr}"
    return p


@pytest.fixture
def cat(lab_state: Path) -> Store:
    """The lab catalogue in a private store (tests/conftest.py)."""
    return Store()


def index_of(rootfs: Path) -> list[str]:
    return treestore.tree_index(rootfs)


def test_export_is_accepted_by_skopeo_and_umoci(cat: Store, tmp_path: Path) -> None:
    e = oci.export_image(cat, "example.com/reduce-worker:1.0.0", tmp_path / "layout")
    tree = treestore.render_image(cat, "example.com/reduce-worker:1.0.0")
    # one layer per image of the override order that contributed files
    assert [l["image"] for l in e.layers] == [l["name"] for l in tree.trace().layers
                                              if any(h.final == l["index"] for h in
                                                     tree.trace().final_paths().values())]
    info = json.loads(run("skopeo", "inspect", f"oci:{e.layout}:{e.tag}").stdout)
    assert info["Layers"] == [l["digest"] for l in e.layers]
    assert info["Labels"][oci.APPC_NAME] == "example.com/reduce-worker"
    cfg = json.loads(run("skopeo", "inspect", "--config", f"oci:{e.layout}:{e.tag}").stdout)
    assert cfg["rootfs"]["diff_ids"] == [l["diff_id"] for l in e.layers]
    # skopeo re-hashes every blob while copying: a wrong digest fails here
    run("skopeo", "copy", f"oci:{e.layout}:{e.tag}", f"dir:{tmp_path / 'dirout'}")
    assert {p.name for p in (tmp_path / "dirout").iterdir()} >= {
        l["digest"].split(":")[1] for l in e.layers}
    # umoci applies the layers: the result is exactly our rendered tree
    run("umoci", "unpack", "--image", f"{e.layout}:{e.tag}", tmp_path / "bundle")
    assert index_of(tmp_path / "bundle" / "rootfs") == index_of(tree.rootfs)


def test_round_trip_keeps_rootfs_and_app(cat: Store, tmp_path: Path) -> None:
    ref = "example.com/worker-backup:1.0.0"
    e = oci.export_image(cat, ref, tmp_path / "layout")
    imp = oci.import_layout(f"{e.layout}:{e.tag}", tmp_path / "back.aci")
    assert aci.validate(imp.aci) == []
    actool = tool_path("actool")
    assert actool is not None, "provision/build-tools.sh builds actool"
    run(actool, "validate", imp.aci)
    aci.extract_rootfs(imp.aci, tmp_path / "back-rootfs")
    tree = treestore.render_image(cat, ref)
    assert index_of(tmp_path / "back-rootfs") == index_of(tree.rootfs)
    before = cat.get(ref).manifest.raw["app"]
    after = json.loads(json.dumps(imp.manifest))["app"]
    for key in ("exec", "user", "group", "workingDirectory", "environment", "mountPoints"):
        assert after.get(key) == before.get(key), key
    assert imp.manifest["name"] == "example.com/worker-backup"
    assert {l["name"]: l["value"] for l in imp.manifest["labels"]}["version"] == "1.0.0"


def test_import_what_umoci_wrote_with_whiteouts(cat: Store, tmp_path: Path) -> None:
    """umoci repack records a deleted file as a .wh. whiteout; our import must honour it and
    give the same tree umoci itself unpacks."""
    e = oci.export_image(cat, "example.com/busybox", tmp_path / "layout", tag="base")
    b = tmp_path / "work"
    run("umoci", "unpack", "--image", f"{e.layout}:base", b)
    rootfs = b / "rootfs"
    (rootfs / "etc" / "added-by-umoci").write_text("hello\n")
    os.unlink(rootfs / "bin" / "ls")
    shutil.rmtree(rootfs / "home", ignore_errors=True)
    run("umoci", "repack", "--image", f"{e.layout}:changed", b)
    manifest_desc = oci.Layout(e.layout).resolve("changed")
    m = json.loads(oci.Layout(e.layout).read_blob(manifest_desc))
    top = oci.Layout(e.layout).read_blob(m["layers"][-1])
    names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(top))).getnames()
    assert any(n.endswith(".wh.ls") for n in names), names     # umoci wrote a whiteout
    imp = oci.import_layout(f"{e.layout}:changed", tmp_path / "changed.aci",
                            name="example.com/busybox-changed")
    aci.extract_rootfs(imp.aci, tmp_path / "ours")
    run("umoci", "unpack", "--image", f"{e.layout}:changed", tmp_path / "theirs")
    assert not (tmp_path / "ours" / "bin" / "ls").exists()
    assert (tmp_path / "ours" / "etc" / "added-by-umoci").read_text() == "hello\n"
    assert index_of(tmp_path / "ours") == index_of(tmp_path / "theirs" / "rootfs")


def test_import_what_skopeo_copied(cat: Store, tmp_path: Path) -> None:
    e = oci.export_image(cat, "example.com/reduce-worker-register:1.0.0", tmp_path / "layout")
    run("skopeo", "copy", f"oci:{e.layout}:{e.tag}", f"oci:{tmp_path / 'copied'}:v1")
    imp = oci.import_layout(f"{tmp_path / 'copied'}:v1", tmp_path / "x.aci")
    assert aci.validate(imp.aci) == []
    assert imp.manifest["name"] == "example.com/reduce-worker-register"


def test_opaque_whiteout_hides_lower_content(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "old").write_text("lower")
    (root / "d" / "sub" / "deep").write_text("lower")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in (("d/.wh..wh..opq", b""), ("d/new", b"upper")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        counts = oci.apply_layer(t, root)
    assert counts["opaque"] == 1
    assert sorted(os.listdir(root / "d")) == ["new"]


def test_layer_with_traversal_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("../escape")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t, pytest.raises(oci.OciError, match="refused"):
        oci.apply_layer(t, root)
    assert not (tmp_path / "escape").exists()


def test_corrupt_blob_is_detected(cat: Store, tmp_path: Path) -> None:
    e = oci.export_image(cat, "example.com/busybox", tmp_path / "layout", tag="t")
    blob = oci.Layout(e.layout).blob_path(e.layers[0]["digest"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(oci.OciError, match="corrupt"):
        oci.import_layout(f"{e.layout}:t", tmp_path / "x.aci")


def runc_run(bundle: Path, name: str) -> subprocess.CompletedProcess:
    """``runc run`` of the bundle as container ``name``, deleted afterwards whatever happens."""
    try:
        return run("runc", "run", "--bundle", bundle, name, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        subprocess.run(["runc", "delete", "-f", name], capture_output=True)


def test_bundle_runs_under_runc(cat: Store, tmp_path: Path) -> None:
    out = oci.make_bundle(cat, "example.com/busybox", tmp_path / "bundle")
    cfg = json.loads((out / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/sh", "-c", "echo from-runc; echo $AC_APP_NAME; hostname; id -u"]
    (out / "config.json").write_text(json.dumps(cfg))
    p = runc_run(out, f"sbx-oci-{os.getpid()}")
    assert p.stdout.split() == ["from-runc", "busybox", "busybox", "0"]


def test_bundle_runs_the_apps_own_exec(cat: Store, tmp_path: Path) -> None:
    """The seed app's exec/env/cwd come through: its script runs and sees its environment."""
    out = oci.make_bundle(cat, "example.com/reduce-worker:1.0.0", tmp_path / "bundle")
    cfg = json.loads((out / "config.json").read_text())
    app = cat.get("example.com/reduce-worker:1.0.0").manifest.raw["app"]
    assert cfg["process"]["args"] == app["exec"]
    assert cfg["process"]["cwd"] == app.get("workingDirectory", "/")
    for e in app.get("environment", []):
        assert f"{e['name']}={e['value']}" in cfg["process"]["env"]
    cfg["process"]["args"] = ["/bin/sh", "-c", "echo $REDUCE_PORT; pwd"]
    (out / "config.json").write_text(json.dumps(cfg))
    p = runc_run(out, f"sbx-oci-{os.getpid()}-app")
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert p.stdout.split() == [env["REDUCE_PORT"], app.get("workingDirectory", "/")]


def test_cli_export_import_bundle(cat: Store, tmp_path: Path, run_cli) -> None:
    rc, out, err = run_cli("oci", "export", "example.com/busybox", tmp_path / "l")
    assert rc == 0, err
    rc, out, err = run_cli("oci", "import", f"{tmp_path / 'l'}:1.35.0", "--name", "example.com/bb2")
    assert rc == 0, err
    assert cat.get("example.com/bb2").name == "example.com/bb2"
    rc, out, err = run_cli("oci", "import", tmp_path / "nope")
    assert rc == 1 and "not an OCI image layout" in err and "Traceback" not in err
