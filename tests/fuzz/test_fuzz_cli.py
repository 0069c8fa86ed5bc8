"""The `sandbox` command with hostile files: every command that reads a file the user names
(an image, a manifest, a layout, a key, a signature, a network configuration, an OCI layout)
answers with exit 0, 1 or 2 and at most one line on stderr, never a traceback. Run in-process
with a private state directory; nothing here touches the network or the machine."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, note
from hypothesis import strategies as st

from sandbox.cli import main
from sandbox.trust import pgp

from .conftest import budget
from .kit import JSON, byte_mutation, mutated_json, shown
from .test_fuzz_manifest import IMAGE, POD
from .test_fuzz_oci import write_layout
from .test_fuzz_pgp import SAMPLES
from .test_fuzz_tar import BASE

CONF = {"cniVersion": "1.0.0", "name": "sbxsifuzz",
        "plugins": [{"type": "bridge", "bridge": "sbxsifz0", "ipam": {"type": "host-local",
                                                                     "subnet": "10.94.0.0/24"}}]}


def contents() -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_json(IMAGE), mutated_json(POD), mutated_json(CONF),
                     st.sampled_from(sorted(SAMPLES)).flatmap(lambda n: byte_mutation(SAMPLES[n])),
                     st.sampled_from([pgp.armor(SAMPLES["rsa-sig"]), pgp.armor(SAMPLES["ed-public"],
                                                                               "PUBLIC KEY BLOCK")]).flatmap(byte_mutation),
                     byte_mutation(BASE), JSON.map(lambda d: json.dumps(d).encode()),
                     st.binary(max_size=200))


def sandbox(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as e:            # argparse
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


@budget(25)
@given(contents())
def test_commands_that_read_files(data: bytes) -> None:
    d = Path(tempfile.mkdtemp(prefix="sbx-fuzz-cli-"))
    saved = {k: os.environ.get(k) for k in ("SANDBOX_DIR", "SANDBOX_SYSTEM_TRUSTEDKEYS")}
    try:
        os.environ["SANDBOX_DIR"] = str(d / "state")
        os.environ["SANDBOX_SYSTEM_TRUSTEDKEYS"] = str(d / "system-trust")
        f = d / "thing.aci"
        f.write_bytes(data)
        (d / "thing.aci.asc").write_bytes(data)
        conf = d / "conf"
        conf.mkdir()
        (conf / "10-fuzz.conflist").write_bytes(data)
        (d / "layout").mkdir()
        (d / "layout" / "index.json").write_bytes(data)
        write_layout(d / "oci", data, lambda c, l: data, lambda m: data)
        runs = [("image", "validate", f), ("image", "id", f), ("image", "import", f),
                ("inspect-signature", f), ("verify", f, "--keyring", f, "--signature", f),
                ("trust", "--prefix", "example.com/x", "--yes", f),
                ("fetch", f, "--insecure-options", "image"), ("fetch", f),
                ("net", "list", "--conf-dir", conf), ("oci", "import", d / "layout", "--name", "x.com/y"),
                ("oci", "import", d / "oci", "--name", "x.com/y"), ("image", "gc"), ("image", "list")]
        for argv in runs:
            args = [str(a) for a in argv]
            note(f"sandbox {' '.join(args)} with {shown(data)}")
            rc, out, err = sandbox(*args)
            assert rc in (0, 1, 2), (args, rc, err)
            assert "Traceback" not in err + out, err
            if rc and err.strip():        # a refusal: one sentence (validate reports on stdout)
                lines = [l for l in err.splitlines() if l.strip()]
                assert lines[-1].startswith(("sandbox: ", "usage:", "sandbox ")), err
            elif rc:
                assert out.strip(), (args, "failed without saying why")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(d, ignore_errors=True)
