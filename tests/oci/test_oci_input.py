"""OCI layouts from untrusted hands: every malformed index, manifest or config is an OciError
with one sentence, and a layer is uncompressed as a stream (it used to be gunzipped whole in
memory: 64 MiB of zeros, 64 KiB of gzip, took 64 MiB and more). Layouts here are written by
hand, byte by byte, so the reader is what is tested."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.oci import appc
from sandbox.oci.layout import MT_CONFIG, MT_INDEX, MT_LAYER_GZIP, MT_MANIFEST, OciError


class Hand:
    """An OCI layout written by hand: blobs, then index.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def json(self, doc: Any, media_type: str) -> dict[str, Any]:
        return self.blob(doc if isinstance(doc, bytes) else json.dumps(doc).encode(), media_type)

    def index(self, doc: Any) -> None:
        (self.root / "index.json").write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())

    def image(self, config: Any = None, layers: list[bytes] | None = None,
              manifest_extra: dict[str, Any] | None = None) -> None:
        config = config if config is not None else {
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"org.appc.image.name": "example.com/hand"}, "Cmd": ["/x"]},
            "rootfs": {"type": "layers", "diff_ids": []}}
        descs = []
        for raw in layers or []:
            if isinstance(config, dict):
                config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(raw).hexdigest())
            descs.append(self.blob(gzip.compress(raw, 1), MT_LAYER_GZIP))
        cdesc = self.json(config, MT_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc, "layers": descs,
                    **(manifest_extra or {})}
        mdesc = self.json(manifest, MT_MANIFEST)
        self.index({"schemaVersion": 2, "manifests": [mdesc]})


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def hand(tmp_path: Path) -> Hand:
    return Hand(tmp_path / "layout")


def do_import(hand: Hand, tmp_path: Path) -> Any:
    return appc.import_layout(str(hand.root), tmp_path / "out.aci")


def test_a_good_hand_made_layout_imports(hand: Hand, tmp_path: Path) -> None:
    hand.image(layers=[tar_of({"hello": b"hi\n"})])
    assert do_import(hand, tmp_path).manifest["name"] == "example.com/hand"


@pytest.mark.parametrize("index", [b"[" * 100_000, b"[1]", b'{"manifests": 5}',
                                   b'{"manifests": [5]}', b'{"manifests": [{"digest": 5}]}',
                                   b'{"manifests": [{"digest": "sha256:../../x", "size": 1}]}',
                                   b'{"manifests": [{"digest": "sha256:' + b"0" * 64 + b'"}]}',
                                   b'{"manifests": []}', b"\xff", b'{"manifests": [{"size": 1e999}]}'],
                         ids=["deep", "array", "manifests-number", "descriptor-number",
                              "digest-number", "digest-climbs", "no-size", "empty", "not-utf8",
                              "1e999"])
def test_bad_index_json_is_an_oci_error(hand: Hand, tmp_path: Path, index: bytes) -> None:
    hand.index(index)
    with pytest.raises(OciError) as e:
        do_import(hand, tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("extra, why", [
    ({"config": 5}, "config must be an object"),
    ({"layers": "x"}, "layers must be an array"),
    ({"layers": [{"digest": "sha256:" + "1" * 64, "size": 3}]}, "lacks blob"),
], ids=["config", "layers", "missing-layer"])
def test_bad_manifests_are_oci_errors(hand: Hand, tmp_path: Path, extra: dict, why: str) -> None:
    hand.image(manifest_extra=extra)
    with pytest.raises(OciError, match=why):
        do_import(hand, tmp_path)


@pytest.mark.parametrize("config, why", [
    ({"config": {"Labels": {"org.appc.image.name": "example.com/hand"},
                 "ExposedPorts": {"abc/tcp": {}}}, "rootfs": {"diff_ids": []}}, "not PORT/PROTOCOL"),
    ({"config": {"Labels": {"org.appc.image.name": "example.com/hand", "x.y": 5}},
      "rootfs": {"diff_ids": []}}, "not a string"),
    ({"config": {"Labels": {"org.appc.image.name": "example.com/hand",
                            "appc.app.ports": "[" * 1000}}, "rootfs": {"diff_ids": []}}, "nested"),
    ({"config": {"Cmd": "ls"}, "rootfs": {"diff_ids": []}}, "Cmd must be an array"),
    ({"config": {"Labels": {"org.appc.image.name": "example.com/hand"}}, "architecture": 64,
      "rootfs": {"diff_ids": []}}, "architecture must be a string"),
    ({"config": {"Labels": {"org.appc.image.name": "example.com/hand"}},
      "rootfs": {"diff_ids": "sha256:x"}}, "diff_ids must be an array"),
    (["not", "an", "object"], "not a JSON object"),
], ids=["port", "label-number", "label-json-deep", "cmd-string", "arch-number", "diff-ids",
        "array"])
def test_bad_configs_are_oci_errors(hand: Hand, tmp_path: Path, config: Any, why: str) -> None:
    hand.image(config=config)
    with pytest.raises(SandboxError, match=why):
        do_import(hand, tmp_path)


def test_a_config_blob_over_the_limit_is_refused_before_it_is_read(hand: Hand, tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("SANDBOX_MAX_OCI_JSON_BYTES", "64K")
    hand.image(config={"config": {"Labels": {"org.appc.image.name": "example.com/hand"},
                                  "Env": ["X=" + "x" * 100_000]}, "rootfs": {"diff_ids": []}})
    with pytest.raises(bounded.InputTooLarge, match="SANDBOX_MAX_OCI_JSON_BYTES"):
        do_import(hand, tmp_path)


def test_a_layer_is_uncompressed_as_a_stream(hand: Hand, tmp_path: Path) -> None:
    big = tar_of({"zeros": bytes(64 << 20)})
    hand.image(layers=[big])
    del big
    tracemalloc.start()
    try:
        imp = do_import(hand, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert imp.layers[0]["entries"] == 1
    assert peak < 24 << 20, f"the import held {peak >> 20} MiB for a 64 MiB layer"


def test_a_layer_that_is_not_gzip_or_tar_is_an_oci_error(hand: Hand, tmp_path: Path) -> None:
    hand.image()
    layer = hand.blob(b"\x1f\x8b\x08\x00" + b"\xff" * 100, MT_LAYER_GZIP)
    hand.image(manifest_extra={"layers": [layer]})
    with pytest.raises(OciError, match="not valid gzip"):
        do_import(hand, tmp_path)
    zstd = hand.blob(b"\x28\xb5\x2f\xfd" + b"\x00" * 20, MT_LAYER_GZIP)
    hand.image(manifest_extra={"layers": [zstd]})
    with pytest.raises(OciError, match="zstd"):
        do_import(hand, tmp_path)


def test_a_nested_index_without_manifests_is_an_oci_error(hand: Hand, tmp_path: Path) -> None:
    nested = hand.json({"schemaVersion": 2, "manifests": []}, MT_INDEX)
    hand.index({"schemaVersion": 2, "manifests": [nested]})
    with pytest.raises(OciError, match="lists no manifest"):
        do_import(hand, tmp_path)


# -- files of the layout that are not regular files (a second attacker's variants): the import
# used to wait for ever on a FIFO index.json, and to hash a blob linked to /dev/zero for ever

def _in_thread(fn: Any, fifo: Path | None = None, seconds: float = 60) -> Any:
    """fn's result or exception; a call still running after ``seconds`` is the failure (a
    daemon thread: a hang of the code before the fix cannot hold the session; a reader left
    waiting on ``fifo`` is let go)."""
    import os
    import threading
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as e:      # noqa: BLE001 - handed to the test
            out.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if not out and fifo is not None:
        try:                        # a writer that closes at once: the reader sees EOF
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert out, f"still running after {seconds} s (waiting on a FIFO, or reading for ever)"
    return out[0]


def _layer_blob(hand: Hand) -> Path:
    index = json.loads((hand.root / "index.json").read_text())
    blobs = hand.root / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    return blobs / manifest["layers"][0]["digest"][7:]


@pytest.mark.serial
def test_a_fifo_index_json_is_refused_without_waiting(hand: Hand, tmp_path: Path) -> None:
    import os
    os.mkfifo(hand.root / "index.json")
    got = _in_thread(lambda: do_import(hand, tmp_path), hand.root / "index.json")
    assert isinstance(got, SandboxError) and "not a regular file" in str(got), got


@pytest.mark.serial
@pytest.mark.parametrize("what", ["dev-zero", "fifo"])
def test_a_layer_blob_that_never_ends_is_refused(hand: Hand, tmp_path: Path, what: str) -> None:
    import os
    hand.image(layers=[tar_of({"hello": b"hi\n"})])
    layer = _layer_blob(hand)
    layer.unlink()
    if what == "dev-zero":
        layer.symlink_to("/dev/zero")
    else:
        os.mkfifo(layer)
    got = _in_thread(lambda: do_import(hand, tmp_path), layer if what == "fifo" else None)
    assert isinstance(got, OciError) and "not a regular file" in str(got), got


def test_a_blob_longer_than_its_descriptor_is_read_no_further(hand: Hand, tmp_path: Path,
                                                               monkeypatch) -> None:
    """The descriptor's size bounds the read: a blob with 64 MiB more than it says is found
    corrupt after one byte more, not after hashing all of it."""
    from sandbox.oci import layout as layout_mod
    hand.image(layers=[tar_of({"hello": b"hi\n"})])
    layer = _layer_blob(hand)
    with open(layer, "ab") as f:
        f.truncate(layer.stat().st_size + (64 << 20))     # sparse: costs no disk
    hashed = [0]

    class Counting:
        def __init__(self, algo: str) -> None:
            self.h = hashlib.new(algo)

        def update(self, b: bytes) -> None:
            hashed[0] += len(b)
            self.h.update(b)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    class Shim:
        new = Counting
    monkeypatch.setattr(layout_mod, "hashlib", Shim)
    with pytest.raises(OciError, match="corrupt"):
        do_import(hand, tmp_path)
    assert hashed[0] < (4 << 20), hashed[0]


def test_a_layer_is_gunzipped_within_image_bytes(hand: Hand, tmp_path: Path, monkeypatch) -> None:
    """A layer's tar is bounded as an image's tar is: it used to be gunzipped to disk up to the
    free space of the temporary directory (gzip is about 1000:1 on zeros)."""
    monkeypatch.setenv("SANDBOX_MAX_IMAGE_BYTES", "1M")
    # zeros after the tar's end: nothing the extractor reads, all of it gunzipped to disk
    hand.image(layers=[tar_of({"hello": b"hi\n"}) + bytes(3 << 20)])
    with pytest.raises(bounded.InputTooLarge, match="IMAGE_BYTES"):
        do_import(hand, tmp_path)
    monkeypatch.setenv("SANDBOX_MAX_IMAGE_BYTES", "8M")
    assert do_import(hand, tmp_path).manifest["name"] == "example.com/hand"
