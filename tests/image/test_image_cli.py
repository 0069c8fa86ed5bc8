"""The `sandbox image` CLI: the contract's commands, and user mistakes without tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.image import aci

from .conftest import sha512sum_uncompressed


def test_build_id_validate_import_list_roundtrip(run_cli, sandbox_dir, make_layout, tmp_path):
    layout = make_layout()
    out = tmp_path / "a.aci"
    rc, stdout, _ = run_cli("image", "build", layout, out, "--compression", "xz", "--owner-root")
    assert rc == 0
    iid = stdout.strip()
    assert iid == sha512sum_uncompressed(out, "xz")
    assert run_cli("image", "id", out)[1].strip() == iid
    assert run_cli("image", "id", out, "--short")[1].strip() == aci.short_id(iid)
    rc, stdout, _ = run_cli("image", "validate", out, layout, layout / "manifest")
    assert rc == 0 and stdout.count(": valid\n") == 3
    rc, stdout, _ = run_cli("image", "import", out)
    assert rc == 0 and aci.short_id(iid) in stdout
    rc, stdout, _ = run_cli("image", "list", "--json")
    listed = json.loads(stdout)
    assert [i["id"] for i in listed] == [iid] and listed[0]["name"] == "example.com/hello"
    rc, stdout, _ = run_cli("image", "list")
    assert aci.short_id(iid) in stdout and "example.com/hello" in stdout
    rc, stdout, _ = run_cli("image", "cat-manifest", "example.com/hello:1.0.0")
    assert json.loads(stdout)["name"] == "example.com/hello"
    rc, stdout, _ = run_cli("image", "extract", iid[:12], tmp_path / "x")
    assert rc == 0 and (tmp_path / "x/etc/hello").read_bytes() == b"hello\n"
    rc, _, _ = run_cli("image", "export", iid, tmp_path / "back.aci")
    assert (tmp_path / "back.aci").read_bytes() == out.read_bytes()
    assert run_cli("image", "verify", iid)[0] == 0
    assert run_cli("image", "gc")[0] == 0
    assert run_cli("image", "rm", iid)[0] == 0
    assert json.loads(run_cli("image", "list", "--json")[1]) == []


def test_global_dir_option_sets_the_store(run_cli, make_layout, tmp_path, monkeypatch):
    monkeypatch.delenv("SANDBOX_DIR", raising=False)
    out = tmp_path / "a.aci"
    aci.build(make_layout(), out)
    state = tmp_path / "elsewhere"
    assert run_cli("--dir", state, "image", "import", out)[0] == 0
    assert len(list((state / "images/blobs/sha512").iterdir())) == 1


def test_validate_prints_one_line_per_problem(run_cli, write_tar, good_manifest):
    p = write_tar("bad.aci", [{"name": "rootfs/a", "data": b"1"}, {"name": "README", "data": b"x"}],
                  manifest=good_manifest)
    rc, stdout, stderr = run_cli("image", "validate", p)
    lines = stderr.strip().splitlines()
    # one `sandbox: PATH: problem` line per problem, then what to do
    assert rc == 1 and stdout == "" and len(lines) == len(aci.validate(p)) + 1 >= 3
    assert all(line.startswith(f"sandbox: {p}: ") for line in lines[:-1])
    assert lines[-1].startswith("sandbox: 1 of 1 path(s) are not valid") and "fix" in lines[-1]


@pytest.mark.parametrize("argv,needle", [
    (["image", "id", "/nonexistent.aci"], "does not exist"),
    (["image", "import", "/etc/passwd"], "not a valid ACI"),
    (["image", "cat-manifest", "example.com/none"], "no image in the store"),
    (["image", "rm", "sha512-00"], "no image in the store"),
    (["image", "extract", "sha512-z", "/tmp/sbx-never"], "not an image ID prefix"),
    (["image", "build", "/nonexistent-layout", "/tmp/sbx-never.aci"], "not a directory"),
    (["image", "cat-manifest", "a,name=x"], "'name' is the image name, not a label"),
])
def test_user_mistakes_are_one_sentence(run_cli, sandbox_dir, argv, needle):
    rc, stdout, stderr = run_cli(*argv)
    assert rc != 0
    assert needle in stderr and "Traceback" not in stderr
    assert stderr.startswith("sandbox: ") and len(stderr.strip().splitlines()) == 1


def test_errors_in_a_real_process_have_no_traceback(sandbox_dir, tmp_path, make_layout):
    layout = make_layout()
    out = tmp_path / "a.aci"
    aci.build(layout, out)
    env = {**os.environ, "SANDBOX_DIR": str(sandbox_dir)}
    for argv in (["image", "build", str(layout), str(out)],        # exists, no --overwrite
                 ["image", "build", str(layout), str(tmp_path / "nodir" / "x.aci")],
                 ["image", "get-nothing"],
                 ["image", "import", str(tmp_path)]):
        p = subprocess.run([sys.executable, "-m", "sandbox", *argv], capture_output=True, text=True,
                           env=env)
        assert p.returncode != 0, argv
        assert "Traceback" not in p.stderr, p.stderr


def test_ambiguous_ref_lists_matches(run_cli, sandbox_dir, make_layout, tmp_path):
    from sandbox.image.store import Store
    st = Store()
    seen = {}
    for i in range(400):
        out = tmp_path / f"{i}.aci"
        aci.build(make_layout(name=f"example.com/n{i}"), out, compression="none")
        img = st.import_aci(out)
        if img.id[:9] in seen:
            break
        seen[img.id[:9]] = img
    rc, _, stderr = run_cli("image", "cat-manifest", img.id[:9])
    assert rc == 1 and "matches 2 images" in stderr
    assert aci.short_id(img.id) in stderr and aci.short_id(seen[img.id[:9]].id) in stderr


def test_verify_reports_corruption_with_exit_1(run_cli, sandbox_dir, make_layout, tmp_path):
    out = tmp_path / "a.aci"
    aci.build(make_layout(files={"f": os.urandom(4000)}), out, compression="none")
    run_cli("image", "import", out)
    blob = next((sandbox_dir / "images/blobs/sha512").iterdir())
    data = bytearray(blob.read_bytes())
    data[2000] ^= 0xFF
    blob.write_bytes(bytes(data))
    rc, stdout, _ = run_cli("image", "verify")
    assert rc == 1 and "corrupt" in stdout


def test_steps_flag_prints_what_was_done(run_cli, sandbox_dir, make_layout, tmp_path):
    out = tmp_path / "a.aci"
    rc, stdout, stderr = run_cli("image", "build", make_layout(), out, "--steps")
    assert rc == 0 and "write    rootfs/etc/hello" in stderr and stdout.startswith("sha512-")
    rc, _, stderr = run_cli("image", "import", out, "--steps")
    assert rc == 0 and "hash" in stderr and "index.json" in stderr
