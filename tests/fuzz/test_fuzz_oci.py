"""OCI layouts: mutated and random index.json, image manifests and configs (and the
descriptors between them) through `sandbox oci import`'s reader: only the kit's errors."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sandbox.oci import appc
from sandbox.oci.layout import MT_CONFIG, MT_INDEX, MT_LAYER_GZIP, MT_MANIFEST, Layout

from .conftest import budget
from .kit import JSON, mutated_json, only_kit_errors


def layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in (("etc/hello", b"hi\n"), ("etc/.wh.gone", b"")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


LAYER = layer()
LAYER_GZ = gzip.compress(LAYER, 1, mtime=0)
CONFIG = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
          "config": {"Labels": {"org.appc.image.name": "example.com/fuzz", "appc.label.version": "1",
                                "appc.app.ports": '[{"name": "http", "protocol": "tcp", "port": 80}]'},
                     "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"], "Env": ["A=b"],
                     "User": "1000:1000", "WorkingDir": "/", "ExposedPorts": {"80/tcp": {}},
                     "Volumes": {"/data": {}}},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(LAYER).hexdigest()]},
          "history": [{"created_by": "fuzz"}]}


def blob(root: Path, data: bytes, mt: str) -> dict[str, Any]:
    d = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / d).write_bytes(data)
    return {"mediaType": mt, "digest": "sha256:" + d, "size": len(data)}


def write_layout(root: Path, config: bytes, manifest: Any, index: Any) -> None:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    cdesc = blob(root, config, MT_CONFIG)
    ldesc = blob(root, LAYER_GZ, MT_LAYER_GZIP)
    if callable(manifest):
        manifest = manifest(cdesc, ldesc)
    mdesc = blob(root, manifest, MT_MANIFEST)
    if callable(index):
        index = index(mdesc)
    (root / "index.json").write_bytes(index)


def base_manifest(cdesc: dict, ldesc: dict) -> dict:
    return {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc, "layers": [ldesc]}


def base_index(mdesc: dict) -> dict:
    return {"schemaVersion": 2, "mediaType": MT_INDEX,
            "manifests": [{**mdesc, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}


def import_it(config: bytes, manifest: Any, index: Any) -> None:
    d = Path(tempfile.mkdtemp(prefix="sbx-fuzz-oci-"))
    try:
        write_layout(d / "layout", config, manifest, index)
        only_kit_errors(appc.import_layout, str(d / "layout"), d / "out.aci",
                        show=(config, manifest if not callable(manifest) else "(base)",
                              index if not callable(index) else "(base)"))
        only_kit_errors(Layout(d / "layout").tags)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_base_layout_imports() -> None:
    d = Path(tempfile.mkdtemp(prefix="sbx-fuzz-oci-"))
    try:
        write_layout(d / "l", json.dumps(CONFIG).encode(),
                     lambda c, l: json.dumps(base_manifest(c, l)).encode(),
                     lambda m: json.dumps(base_index(m)).encode())
        assert appc.import_layout(str(d / "l"), d / "o.aci").manifest["name"] == "example.com/fuzz"
    finally:
        shutil.rmtree(d)


@budget(60)
@given(mutated_json(CONFIG))
def test_mutated_configs(config: bytes) -> None:
    import_it(config, lambda c, l: json.dumps(base_manifest(c, l)).encode(),
              lambda m: json.dumps(base_index(m)).encode())


@budget(50)
@given(st.data())
def test_mutated_manifests(data: st.DataObject) -> None:
    def manifest(c: dict, l: dict) -> bytes:
        return data.draw(mutated_json(base_manifest(c, l)))
    import_it(json.dumps(CONFIG).encode(), manifest, lambda m: json.dumps(base_index(m)).encode())


@budget(50)
@given(st.data())
def test_mutated_indexes(data: st.DataObject) -> None:
    def index(m: dict) -> bytes:
        return data.draw(mutated_json(base_index(m)))
    import_it(json.dumps(CONFIG).encode(), lambda c, l: json.dumps(base_manifest(c, l)).encode(), index)


@budget(30)
@given(JSON, JSON)
def test_random_documents(config: Any, index: Any) -> None:
    import_it(json.dumps(config).encode(), lambda c, l: json.dumps(base_manifest(c, l)).encode(),
              json.dumps(index).encode())
