"""The Vagrantfile: Vagrant's own verdict (`vagrant validate`, Debian's vagrant + vagrant-libvirt, no
hypervisor needed) and the values the workshop relies on (issue 9, teaching.md §3.5)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
VAGRANTFILE = TOP / "Vagrantfile"
DUMP = Path(__file__).with_name("vagrantfile_dump.rb")

needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None,
                                   reason="Debian's vagrant is not installed (provision/packages/vm.txt)")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # A private VAGRANT_HOME and dotfile dir: nothing is left in ~/.vagrant.d or the repo.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "VAGRANT_"))}
    env.update(VAGRANT_HOME=str(tmp_path / "vagrant.d"), VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1", **extra)
    return env


def _validate(tmp_path: Path, vagrantfile_dir: Path = TOP, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", "validate"], cwd=vagrantfile_dir, env=_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=120)


def _dump(tmp_path: Path, **extra: str) -> dict:
    r = subprocess.run(["ruby", str(DUMP), str(VAGRANTFILE)], env=_env(tmp_path, **extra),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["vm"]


@needs_vagrant
@pytest.mark.parametrize("driver", ["kvm", "qemu"])
def test_vagrant_validate_accepts_the_vagrantfile(tmp_path: Path, driver: str) -> None:
    r = _validate(tmp_path, LAB_LIBVIRT_DRIVER=driver)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout
    assert (tmp_path / "dot" / "lab-token").exists()  # machine state went to the private dir


@needs_vagrant
def test_vagrant_validate_checks_our_libvirt_block(tmp_path: Path) -> None:
    # Proof the check has teeth: a typo in the libvirt provider block is refused by vagrant-libvirt.
    broken = tmp_path / "broken"
    shutil.copytree(TOP / "provision", broken / "provision")
    text = VAGRANTFILE.read_text()
    assert "lv.memory = MEMORY_MB" in text
    (broken / "Vagrantfile").write_text(text.replace("lv.memory = MEMORY_MB", "lv.memroy = MEMORY_MB"))
    r = _validate(tmp_path, broken)
    assert r.returncode != 0
    assert "memroy" in r.stdout + r.stderr


@needs_vagrant
@pytest.mark.parametrize("var,value,message", [
    ("LAB_LIBVIRT_DRIVER", "xen", "LAB_LIBVIRT_DRIVER must be 'kvm' or 'qemu'"),
    ("LAB_EXTRA_CA_DIR", "/nonexistent/sbx-ca", "is not a directory"),
])
def test_bad_knobs_get_a_sentence(tmp_path: Path, var: str, value: str, message: str) -> None:
    r = _validate(tmp_path, **{var: value})
    assert r.returncode != 0
    assert message in r.stdout + r.stderr


def test_box_resources_port_and_sync(tmp_path: Path) -> None:
    vm = _dump(tmp_path)
    assert vm["box"] == "debian/bookworm64"
    assert re.fullmatch(r"12\.\d{8}\.\d+", vm["box_version"]), "pin the box version (box rot)"
    for name in ("libvirt", "virtualbox"):
        assert vm["providers"][name]["cpus"] == 2 and vm["providers"][name]["memory"] == 4096, name
    assert vm["providers"]["libvirt"]["driver"] == "kvm"
    [port] = [n for n in vm["networks"] if n["type"] == "forwarded_port"]
    assert (port["guest"], port["host"], port["host_ip"]) == (8888, 8888, "127.0.0.1")
    [sync] = vm["synced_folders"]
    assert (sync["src"], sync["dst"], sync["type"]) == (".", "/vagrant", "rsync")
    assert ".venv/" in sync["rsync__exclude"] and "build/" in sync["rsync__exclude"]


def test_overrides_local_box_tcg_and_extra_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    ca.mkdir()
    vm = _dump(tmp_path, LAB_BOX="lab/bookworm64-local", LAB_BOX_VERSION="", LAB_LIBVIRT_DRIVER="qemu",
               LAB_HOST_PORT="18888", LAB_EXTRA_CA_DIR=str(ca))
    assert vm["box"] == "lab/bookworm64-local" and "box_version" not in vm
    lv = vm["providers"]["libvirt"]
    assert (lv["driver"], lv["cpu_mode"], lv["cpu_model"]) == ("qemu", "custom", "qemu64")
    assert [n["host"] for n in vm["networks"]] == [18888]
    names = [p["name"] for p in vm["provisioners"]]
    # the CA must be trusted before the bootstrap downloads anything
    assert names == ["extra-ca-files", "extra-ca", "bootstrap", "jupyterlab"]
    assert vm["provisioners"][0]["source"] == str(ca)


def test_same_bootstrap_and_token_printed(tmp_path: Path) -> None:
    vm = _dump(tmp_path)
    boot = next(p for p in vm["provisioners"] if p["name"] == "bootstrap")
    assert "bash provision/bootstrap.sh" in boot["inline"]
    jl = next(p for p in vm["provisioners"] if p["name"] == "jupyterlab")
    token = (tmp_path / "dot" / "lab-token").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    assert (tmp_path / "dot" / "lab-token").stat().st_mode & 0o077 == 0
    assert jl["env"]["LAB_TOKEN"] == token
    assert f"http://127.0.0.1:8888/lab?token={token}" in vm["post_up_message"]
    assert _dump(tmp_path)["provisioners"][-1]["env"]["LAB_TOKEN"] == token  # stable across runs
