"""The one platform table: each CPU architecture the kit knows, as the kernel (``uname -m``),
appc (the ``arch`` label, types.md / aci.md §labels), Debian (``dpkg --print-architecture``) and
OCI (image-spec config.md ``architecture`` + ``variant``, Go's GOARCH names) spell it, with the
system-call numbers that differ between architectures.

appc's ``os``/``arch`` whitelist: the spec text lists linux/{amd64,i386}, freebsd/{amd64,i386,arm}
and darwin/{x86_64,i386}, and lets an implementation extend the table; appc's own Go code
(schema/types/labels.go ``ValidOSArch``, the table actool checks against) adds aarch64,
aarch64_be, armv6l, armv7l, armv7b, ppc64, ppc64le and s390x for linux. The kit uses that
extended table, so an image built on an arm64 laptop is valid here as it is for actool.

Kept free of ``platform`` and ``typing`` (each costs milliseconds at every pod start).
"""
from __future__ import annotations

import os
from collections import namedtuple


class Arch(namedtuple("Arch", "appc unames debian oci oci_variant pivot_root")):
    """One architecture. ``pivot_root`` is its syscall number (glibc has no wrapper for it);
    syscalls added since Linux 5.0 (openat2 437, fchmodat2 452…) share one number everywhere."""
    __slots__ = ()


# Numbers: the kernel's syscall tables (arch/x86/entry/syscalls/syscall_{64,32}.tbl,
# include/uapi/asm-generic/unistd.h for arm64, arch/arm/tools/syscall.tbl,
# arch/powerpc/kernel/syscalls/syscall.tbl, arch/s390/kernel/syscalls/syscall.tbl).
ARCHES: tuple[Arch, ...] = (
    Arch("amd64", ("x86_64", "amd64"), "amd64", "amd64", None, 155),
    Arch("i386", ("i386", "i486", "i586", "i686"), "i386", "386", None, 217),
    Arch("aarch64", ("aarch64", "arm64"), "arm64", "arm64", None, 41),
    Arch("armv7l", ("armv7l",), "armhf", "arm", "v7", 218),
    Arch("armv6l", ("armv6l",), "armel", "arm", "v6", 218),
    Arch("ppc64le", ("ppc64le",), "ppc64el", "ppc64le", None, 203),
    Arch("s390x", ("s390x",), "s390x", "s390x", None, 217),
)

# appc: the spec's default whitelist, extended like appc's Go ValidOSArch (see above)
VALID_OS_ARCH: dict[str, tuple[str, ...]] = {
    "linux": ("amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64",
              "ppc64le", "s390x"),
    "freebsd": ("amd64", "i386", "arm"),
    "darwin": ("x86_64", "i386"),
}

SYS_OPENAT2 = 437       # Linux 5.6
SYS_FCHMODAT2 = 452     # Linux 6.6
SYS_MOUNT_SETATTR = 442  # Linux 5.12


class UnknownArch(ValueError):
    """An architecture name that is in no column of the table."""


def _find(column: str, value: str) -> Arch:
    for a in ARCHES:
        have = getattr(a, column)
        if value == have or (isinstance(have, tuple) and value in have):
            return a
    known = ", ".join(sorted({a.appc for a in ARCHES}))
    raise UnknownArch(f"The kit knows no architecture called {value!r} ({column}); "
                      f"it knows {known}.")


def machine() -> str:
    """``uname -m`` of this machine."""
    return os.uname().machine


def host() -> Arch:
    """This machine's row of the table."""
    return _find("unames", machine())


def by_appc(arch: str) -> Arch:
    """The row for an appc ``arch`` label (``amd64``, ``aarch64``…)."""
    return _find("appc", arch)


def by_debian(arch: str) -> Arch:
    """The row for a Debian architecture (``amd64``, ``arm64``…)."""
    return _find("debian", arch)


def by_oci(arch: str, variant: str | None = None) -> Arch:
    """The row for an OCI ``architecture`` (+ ``variant``): ``arm64`` (``v8`` or none) is appc's
    aarch64, ``arm`` + ``v7`` is armv7l."""
    for a in ARCHES:
        if a.oci == arch and (a.oci_variant == variant or (variant in (None, "v8")
                                                            and a.oci_variant is None)):
            return a
    for a in ARCHES:                       # a variant the table does not list: the arch alone
        if a.oci == arch:
            return a
    raise UnknownArch(f"The kit knows no OCI architecture {arch!r}"
                      + (f" variant {variant!r}" if variant else "") + ".")


def appc_os_arch() -> tuple[str, str]:
    """This machine's ``os`` and ``arch`` labels in appc's names (labels.go ToAppcOSArch); an
    unknown machine keeps its ``uname -m`` name."""
    try:
        return "linux", host().appc
    except UnknownArch:
        return "linux", machine()
