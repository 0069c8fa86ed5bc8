"""The App Container Executor's view of an app (appc spec ace.md): environment, user and group,
the /dev nodes, /etc/hosts, capabilities. Pure functions used by stage1 (pods) and by the OCI
bundle writer, so both run an app the same way.
"""
from __future__ import annotations

import errno
from pathlib import Path

from sandbox.errors import SandboxError

TYPE_CHECKING = False   # typing is for annotations only: importing it costs ~2 ms per pod start
if TYPE_CHECKING:
    from typing import Any

# ace.md §Execution Environment: "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINER_NAME = "sandbox"   # the value of $container: the name of this ACE

# ace.md §Linux: /dev/{null,zero,full,random,urandom,tty,console,pts,ptmx,shm}
DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
             "urandom": (1, 9), "tty": (5, 0)}

# What an app may read in /proc and /sys but never change, and what it may not see: without
# them root in a pod (the default user) writes the host's kernel settings — kernel.core_pattern
# makes the host's kernel run a program of the app's choice as the host's root on the next
# crash — or reads its memory map and keyrings. The lists runc and Docker apply by default
# (runtime-spec config-linux.md: maskedPaths, readonlyPaths); the OCI bundle writes the same.
READONLY_PATHS = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                  "/proc/sysrq-trigger")
MASKED_PATHS = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi", "/sys/devices/virtual/powercap")

# Linux capability numbers (linux/capability.h)
CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
# The set an app keeps unless its isolators say otherwise (the same default set rkt used).
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                "CAP_KILL", "CAP_MKNOD", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID",
                "CAP_SETGID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_SYS_CHROOT"]


class AceError(SandboxError):
    """The app cannot be executed as its manifest asks."""


def app_environment(environment: dict[str, str], app_name: str, metadata_url: str,
                    pod_env: dict[str, str] | None = None) -> dict[str, str]:
    """The app's environment (ace.md §Execution Environment): the image's environment, then the
    pod's, then the four variables every app MUST see."""
    env = {"PATH": DEFAULT_PATH}
    env.update(environment or {})
    env.update(pod_env or {})
    env.update({"AC_APP_NAME": app_name, "AC_METADATA_URL": metadata_url,
                "container": CONTAINER_NAME})
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def _lookup(root: Any, spec: str, file: str, what: str) -> int:
    """One of appc's ``user``/``group`` forms as a number. The image's files are read through the
    in-root resolver: its links resolve inside its own tree, only a regular file is read, and at
    most ACCOUNT_FILE_BYTES of it (a link to /dev/zero, a FIFO or the host's /etc cannot be)."""
    if spec.isascii() and spec.isdigit():
        return _id(_digits(spec), spec, what)
    if spec.startswith("/"):   # ace.md: a path in the rootfs: its owner (user) or group
        try:
            st = root.stat(spec)
        except OSError as e:
            raise AceError(f"the {what} is the path {spec}, which the image does not have "
                           f"({e.strerror}); give an existing path, a number or a name.") from e
        return st.st_uid if what == "user" else st.st_gid
    from sandbox import bounded
    limit = bounded.ACCOUNT_FILE_BYTES.value
    try:
        data = root.read(f"/etc/{file}", limit)
    except FileNotFoundError:
        data = b""
    except OSError as e:
        why = {errno.EINVAL: "it is not a regular file",
               errno.EFBIG: f"it is larger than {limit} bytes (the ACCOUNT_FILE_BYTES limit; "
                            f"raise it with ${bounded.ACCOUNT_FILE_BYTES.env})",
               errno.ELOOP: "its links loop"}.get(e.errno or 0, e.strerror or str(e))
        raise AceError(f"the image's /etc/{file} cannot be read to look up the {what} "
                       f"'{spec}': {why}; use a number instead.") from e
    for line in data.decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if len(f) > 2 and f[0] == spec:
            if not (f[2].isascii() and f[2].isdigit()):
                raise AceError(f"the image's /etc/{file} gives '{spec}' the id {f[2][:20]!r}, "
                               f"which is not a number; use a number for the {what}.")
            return _id(_digits(f[2]), spec, what)
    raise AceError(f"the {what} '{spec}' is not a number and not in the image's /etc/{file}; "
                   f"use a number or add it to /etc/{file} in the image.")


def _digits(text: str) -> int:
    """An ASCII digit string as a number; 2^32 (beyond every id) for one of more than 20 digits,
    which int() may refuse (over 4300 digits, a ValueError: a user "999…" of 5000 digits in a
    manifest or an image's /etc/passwd was "failed inside the kit")."""
    from sandbox import bounded
    n = bounded.plain_int(text)
    return 1 << 32 if n is None else n


def _id(n: int, spec: str, what: str) -> int:
    if n >= 0xFFFFFFFF:     # uid_t is 32 bits and (uid_t)-1 means "no change" to the kernel
        shown = spec if len(spec) <= 20 else f"{spec[:20]}… ({len(spec)} characters)"
        raise AceError(f"the {what} '{shown}' is beyond Linux's ids (0..4294967294); give a "
                       "smaller number.")
    return n


def valid_id(n: int, what: str) -> int:
    """A user or group number the kernel takes as one (the manifest allows any uint32, but
    setgroups refuses (gid_t)-1 with EINVAL — the app failed with "cannot execute …: Invalid
    argument" — and chown takes it for "no change")."""
    if not 0 <= n < 0xFFFFFFFF:
        raise AceError(f"the {what} {n} is beyond Linux's ids (0..4294967294); give another "
                       "number in the manifest.")
    return n


def resolve_user(rootfs: Path | str, user: str, group: str) -> tuple[int, int]:
    """appc ``user``/``group`` as numbers: a number, a name from the image's /etc/passwd and
    /etc/group, or an absolute path whose owner is used (ace.md §user, §group). Paths are
    resolved inside ``rootfs`` as the app would see them (sandbox._sys.inroot)."""
    from sandbox._sys import inroot
    try:
        root = inroot.Root(rootfs)
    except OSError as e:
        raise AceError(f"the app's root filesystem {rootfs} cannot be opened ({e.strerror}).") from e
    with root:
        return _lookup(root, str(user), "passwd", "user"), _lookup(root, str(group), "group", "group")


def hosts_content(hostname: str) -> str:
    """The /etc/hosts an ACE provides when the image and volumes do not (ace.md: MAY provide,
    SHOULD contain localhost)."""
    return (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{hostname}\n")


def capability_set(isolators: list[Any]) -> list[str]:
    """The capabilities an app keeps (ace.md §Linux Isolators: capabilities-retain-set /
    capabilities-remove-set), starting from :data:`DEFAULT_CAPS`."""
    caps = list(DEFAULT_CAPS)
    for iso in isolators:
        if iso.name not in ("os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set"):
            continue
        want = [c if c.startswith("CAP_") else f"CAP_{c}" for c in (iso.value or {}).get("set", [])]
        unknown = [c for c in want if c not in CAPS]
        if unknown:
            raise AceError(f"unknown capabilities {', '.join(unknown)} in {iso.name}.")
        if iso.name == "os/linux/capabilities-retain-set":
            caps = want
        elif iso.name == "os/linux/capabilities-remove-set":
            caps = [c for c in caps if c not in want]
    return caps


def no_new_privileges(isolators: list[Any]) -> bool:
    return any(i.name == "os/linux/no-new-privileges" and i.value is True for i in isolators)
