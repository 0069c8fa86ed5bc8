"""The Vagrantfile: Vagrant's own verdict (`vagrant validate`, Debian's vagrant + vagrant-libvirt, no
hypervisor needed) and the values the workshop relies on (issues 9 and 19, teaching.md §3.5): the
box chosen per host architecture and provider, the knobs, the arm64 machine."""
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


def _run_dump(tmp_path: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    # DUMP_MACHINE / DUMP_SYSNAME stand in for the host's uname; argv for Vagrant's command line.
    return subprocess.run(["ruby", str(DUMP), str(VAGRANTFILE), *argv], env=_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=60)


def _dump(tmp_path: Path, *argv: str, **extra: str) -> dict:
    r = _run_dump(tmp_path, *argv, **extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["vm"]


def _box_for(vm: dict, provider: str) -> tuple[str, str | None]:
    """The (box, version) Vagrant uses with this provider: the provider's override wins."""
    over = vm["providers"][provider].get("override", {}).get("vm", {})
    box = over.get("box", vm["box"])
    version = over["box_version"] if "box_version" in over else vm.get("box_version")
    return box, version


def _add_fake_box(tmp_path: Path, name: str) -> None:
    # What `vagrant box add --name NAME file.box` leaves in VAGRANT_HOME (the Vagrantfile looks there).
    d = tmp_path / "vagrant.d" / "boxes" / name.replace("/", "-VAGRANTSLASH-") / "0" / "libvirt"
    d.mkdir(parents=True)
    (d / "metadata.json").write_text('{"provider": "libvirt"}')


HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
# Every machine this host can run: its own arch with KVM or TCG, the other one emulated (TCG).
VALIDATE_CASES = [(HOST_ARCH, "kvm"), (HOST_ARCH, "qemu")] + [
    (a, "qemu") for a in ("amd64", "arm64") if a != HOST_ARCH]


@needs_vagrant
@pytest.mark.parametrize("arch,driver", VALIDATE_CASES, ids=[f"{a}-{d}" for a, d in VALIDATE_CASES])
def test_vagrant_validate_accepts_the_vagrantfile(tmp_path: Path, arch: str, driver: str) -> None:
    # vagrant-libvirt checks the libvirt block, the arm64 machine's settings included.
    r = _validate(tmp_path, LAB_ARCH=arch, LAB_LIBVIRT_DRIVER=driver)
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
@pytest.mark.parametrize("knobs,message", [
    ({"LAB_LIBVIRT_DRIVER": "xen"}, "LAB_LIBVIRT_DRIVER must be 'kvm' or 'qemu'"),
    ({"LAB_EXTRA_CA_DIR": "/nonexistent/sbx-ca"}, "is not a directory"),
    ({"LAB_ARCH": "sparc"}, "LAB_ARCH must be 'amd64' or 'arm64', not 'sparc'"),
    ({"LAB_HOST_PORT": "88x8"}, "LAB_HOST_PORT must be a port number"),
    ({"LAB_HOST_PORT": "70000"}, "LAB_HOST_PORT must be a port number"),
    ({"LAB_ARCH": {"amd64": "arm64", "arm64": "amd64"}.get(HOST_ARCH, "arm64"), "LAB_LIBVIRT_DRIVER": "kvm"},
     "can only be emulated: add LAB_LIBVIRT_DRIVER=qemu"),
], ids=["driver", "ca-dir", "arch", "port-text", "port-range", "foreign-arch-kvm"])
def test_bad_knobs_get_a_sentence(tmp_path: Path, knobs: dict[str, str], message: str) -> None:
    r = _validate(tmp_path, **knobs)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert message in out
    assert "Traceback" not in out and ".rb:" not in out  # one sentence, not a Ruby backtrace


def test_box_resources_port_and_sync(tmp_path: Path) -> None:
    vm = _dump(tmp_path, DUMP_MACHINE="x86_64")
    assert vm["box"] == "debian/bookworm64"
    assert re.fullmatch(r"12\.\d{8}\.\d+", vm["box_version"]), "pin the box version (box rot)"
    assert _box_for(vm, "libvirt") == _box_for(vm, "virtualbox")  # no lab box added: the stock one
    assert vm["hostname"] == "container-standards-lab"
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
    _add_fake_box(tmp_path, "lab/bookworm-amd64")   # LAB_BOX still wins over an added lab box
    vm = _dump(tmp_path, DUMP_MACHINE="x86_64", LAB_BOX="sbx/other-box", LAB_LIBVIRT_DRIVER="qemu",
               LAB_HOST_PORT="18888", LAB_EXTRA_CA_DIR=str(ca))
    assert vm["box"] == "sbx/other-box" and "box_version" not in vm
    assert _box_for(vm, "libvirt") == _box_for(vm, "virtualbox") == ("sbx/other-box", None)
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


# ---------------------------------------------------------------- the box per architecture

@pytest.mark.parametrize("sysname,machine,arch", [
    ("Linux", "x86_64", "amd64"), ("Linux", "aarch64", "arm64"),
    ("Darwin", "arm64", "arm64"),            # Apple silicon, Vagrant built for arm64
    ("Darwin", "x86_64", "amd64"),           # an Intel Mac (sysctl hw.optional.arm64 is not 1)
])
def test_the_guest_architecture_is_the_hosts(tmp_path: Path, sysname: str, machine: str, arch: str) -> None:
    vm = _dump(tmp_path, DUMP_SYSNAME=sysname, DUMP_MACHINE=machine)
    lv = vm["providers"]["libvirt"]
    if arch == "amd64":
        assert _box_for(vm, "virtualbox") == ("debian/bookworm64", vm["box_version"])
        assert "machine_arch" not in lv
    else:
        # VirtualBox on Apple silicon: bento's arm64 build; libvirt on aarch64: only the lab box exists
        assert _box_for(vm, "virtualbox") == ("bento/debian-12", None)
        assert _box_for(vm, "libvirt") == ("lab/bookworm-arm64", None)
        assert (lv["machine_arch"], lv["machine_type"]) == ("aarch64", "virt")
        assert lv["loader"].endswith("/QEMU_EFI.fd") and "nvram" not in lv  # no per-machine NVRAM file
        assert lv["features"] == [] and lv["graphics_type"] == "none"
        assert lv["inputs"] == [{"type": "keyboard", "bus": "virtio"}]      # virt has no PS/2
        assert lv["cpu_mode"] == "host-passthrough"                         # KVM on an arm64 host


def test_unknown_host_architecture_names_the_knob(tmp_path: Path) -> None:
    r = _run_dump(tmp_path, DUMP_MACHINE="riscv64")
    assert r.returncode != 0
    assert "(riscv64) has no lab box: set LAB_ARCH=amd64 or arm64" in r.stderr
    vm = _dump(tmp_path, DUMP_MACHINE="riscv64", LAB_ARCH="amd64", LAB_LIBVIRT_DRIVER="qemu")
    assert vm["box"] == "debian/bookworm64"


def test_emulated_arm64_uses_tcg_max_cpu(tmp_path: Path) -> None:
    vm = _dump(tmp_path, DUMP_MACHINE="x86_64", LAB_ARCH="arm64", LAB_LIBVIRT_DRIVER="qemu")
    lv = vm["providers"]["libvirt"]
    assert (lv["driver"], lv["cpu_mode"], lv["cpu_model"]) == ("qemu", "custom", "max")
    assert lv["machine_arch"] == "aarch64"


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_an_added_lab_box_is_used_with_libvirt(tmp_path: Path, arch: str) -> None:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
    _add_fake_box(tmp_path, f"lab/bookworm-{arch}")
    vm = _dump(tmp_path, DUMP_MACHINE=machine)
    # the lab box (built by `make vm-box`, any version) for libvirt; VirtualBox keeps the stock box
    assert _box_for(vm, "libvirt") == (f"lab/bookworm-{arch}", None)
    assert _box_for(vm, "virtualbox")[0] == {"amd64": "debian/bookworm64", "arm64": "bento/debian-12"}[arch]


def test_arm64_libvirt_without_the_lab_box_says_how_to_build_it(tmp_path: Path) -> None:
    r = _run_dump(tmp_path, "up", "--provider=libvirt", DUMP_MACHINE="aarch64")
    assert r.returncode != 0
    assert "sudo make vm-box ARCH=arm64" in r.stderr and "vagrant box add --name lab/bookworm-arm64" in r.stderr
    # other commands (status, destroy...) and VirtualBox are not refused
    _dump(tmp_path, "status", DUMP_MACHINE="aarch64")
    _dump(tmp_path, "up", "--provider=virtualbox", DUMP_MACHINE="aarch64")
    _add_fake_box(tmp_path, "lab/bookworm-arm64")
    _dump(tmp_path, "up", "--provider=libvirt", DUMP_MACHINE="aarch64")


@pytest.mark.parametrize("version,expect", [("2.3.4", None), ("2.4.1", "arm64")])
def test_box_architecture_only_where_vagrant_knows_it(tmp_path: Path, version: str, expect: str | None) -> None:
    # Vagrant >= 2.4 keeps boxes per architecture; 2.3 (Debian 12's) would reject the setting.
    vm = _dump(tmp_path, DUMP_MACHINE="aarch64", DUMP_VAGRANT_VERSION=version)
    assert vm.get("box_architecture") == expect
