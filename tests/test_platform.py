"""The one platform table (sandbox._sys.platform) against independent sources: Debian's own
architecture names, appc's Go whitelist as Debian ships it, the kernel headers' syscall numbers."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sandbox._sys import platform
from sandbox.image import manifest
from sandbox.oci import appc_arch_to_oci, oci_arch_to_appc

APPC_LABELS_GO = Path("/usr/share/gocode/src/github.com/appc/spec/schema/types/labels.go")


def test_this_machine_is_in_the_table() -> None:
    row = platform.host()
    dpkg = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert row.debian == dpkg
    assert platform.appc_os_arch() == ("linux", row.appc)


def test_pivot_root_number_matches_the_kernel_headers() -> None:
    """x86_64's number from Debian's linux-libc-dev; the others are in the same table rows."""
    row = platform.host()
    hdr = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if row.appc != "amd64":
        hdr = Path("/usr/include/asm-generic/unistd.h")
    nr = re.search(r"#define __NR_pivot_root\s+(\d+)", hdr.read_text())
    assert nr and int(nr[1]) == row.pivot_root
    i386 = Path("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
    if i386.exists():
        assert int(re.search(r"#define __NR_pivot_root\s+(\d+)", i386.read_text())[1]) \
            == platform.by_appc("i386").pivot_root
    generic = re.search(r"#define __NR_pivot_root\s+(\d+)",
                        Path("/usr/include/asm-generic/unistd.h").read_text())
    assert int(generic[1]) == platform.by_appc("aarch64").pivot_root


def test_linux_whitelist_is_appc_go_valid_os_arch() -> None:
    """The kit extends aci.md's whitelist exactly as appc's Go code does (actool's verdict)."""
    src = APPC_LABELS_GO.read_text()
    linux = re.search(r'"linux":\s*\{([^}]*)\}', src)[1]
    assert tuple(re.findall(r'"([^"]+)"', linux)) == platform.VALID_OS_ARCH["linux"]


@pytest.mark.parametrize("machine, appc, debian, oci", [
    ("x86_64", "amd64", "amd64", ("amd64", None)),
    ("aarch64", "aarch64", "arm64", ("arm64", None)),
    ("arm64", "aarch64", "arm64", ("arm64", None)),
    ("armv7l", "armv7l", "armhf", ("arm", "v7")),
    ("i686", "i386", "i386", ("386", None)),
])
def test_one_row_names_an_arch_in_every_column(monkeypatch: pytest.MonkeyPatch, machine: str,
                                               appc: str, debian: str, oci: tuple) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)
    row = platform.host()
    assert (row.appc, row.debian, (row.oci, row.oci_variant)) == (appc, debian, oci)
    assert platform.by_debian(debian) == row == platform.by_appc(appc)
    assert appc_arch_to_oci(appc) == oci and oci_arch_to_appc(*oci) == appc
    # an image built for that machine is valid (aci.md labels, as extended)
    m = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/x",
         "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": appc}]}
    import json
    assert manifest.validate_json(json.dumps(m)) == []


def test_arm64_v8_variant_and_unknown_names() -> None:
    assert oci_arch_to_appc("arm64", "v8") == "aarch64"
    assert appc_arch_to_oci("riscv64") == ("riscv64", None)     # unknown: passed through
    with pytest.raises(platform.UnknownArch, match="knows no architecture called 'mips'"):
        platform.by_debian("mips")
