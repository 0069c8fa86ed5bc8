"""The shared appc schema types (spec 0.8.11, spec/types.md), as small checking functions.

Each ``check_*`` function returns ``None`` when the value is fine, else a short rule sentence
(without the JSON path; the manifest parser prefixes it), e.g. ``"'a--b' is not an AC Name
(lowercase letters and digits, single '-' between them)"``.

These follow the *spec text*. The Go reference code (actool) is looser in places; the list of
differences is in docs/appc-vs-actool.md.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from urllib.parse import urlsplit

from sandbox._sys.platform import VALID_OS_ARCH, appc_os_arch
from sandbox.bounded import plain_int
from sandbox.errors import UsageError

# types.md §AC Identifier Type: lowercase RFC3986 unreserved characters plus "/".
AC_IDENTIFIER_RE = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")
# types.md §AC Name Type: DNS label characters (RFC1123) plus "-".
AC_NAME_RE = re.compile(r"^[a-z0-9]+([-][a-z0-9]+)*$")
# types.md §AC Kind Type: the two defined kinds.
AC_KINDS = ("ImageManifest", "PodManifest")
# types.md §Image ID Type: "hash-value"; sha512 is the only hash; aci.md §Image ID: hex digest.
IMAGE_ID_RE = re.compile(r"^sha512-[0-9a-f]{128}$")
# semver.org 2.0.0, the grammar types.md §AC Version Type points to.
SEMVER_RE = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
# The appc version this kit implements; acVersion must be in the same major series, not newer.
SPEC_VERSION = (0, 8, 11)
# types.md §Timestamps Type: RFC3339 date-time (§5.6) with the "T" separator.
RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$")
# aci.md §app.environment: letters, digits and '_' (IEEE Std 1003.1-2001 §8: not starting with a digit).
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ace.md §Resource Isolators: unsuffixed, metric (E P T G M K) or binary (Ei … Ki) suffix, or
# milli-units ("300m"); decimals allowed ("0.3").
QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|K|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {None: Fraction(1), "m": Fraction(1, 1000),
           "K": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
           "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
           "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
           "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60)}


def check_ac_identifier(s: str) -> str | None:
    if AC_IDENTIFIER_RE.match(s):
        return None
    return (f"{s!r} is not an AC Identifier (lowercase letters and digits, separated by single "
            "'-', '.', '_', '~' or '/')")


def check_ac_name(s: str) -> str | None:
    if AC_NAME_RE.match(s):
        return None
    return f"{s!r} is not an AC Name (lowercase letters and digits, separated by single '-')"


def check_image_id(s: str) -> str | None:
    if IMAGE_ID_RE.match(s):
        return None
    if not s.startswith("sha512-"):
        return f"{s!r} is not an Image ID (must start with 'sha512-', the only allowed hash)"
    hexpart = s[len("sha512-"):]
    if re.fullmatch(r"[0-9a-f]*", hexpart):
        return f"{s!r} is not an Image ID (needs 128 lowercase hex digits, has {len(hexpart)})"
    return f"{s!r} is not an Image ID (the digest must be lowercase hex)"


def parse_semver(s: str) -> tuple[int, int, int] | None:
    """(major, minor, patch), or None when ``s`` is not SemVer 2.0.0 or a number in it has more
    than 20 digits (int() refuses 4,300 and more: a ValueError from an image's acVersion)."""
    m = SEMVER_RE.match(s)
    nums = [plain_int(m[i]) for i in (1, 2, 3)] if m else [None]
    return None if None in nums else (nums[0], nums[1], nums[2])


def check_ac_version(s: str) -> str | None:
    v = parse_semver(s)
    if v is None:
        return f"{s!r} is not a SemVer 2.0.0 version (like '0.8.11')"
    if v == (0, 0, 0):
        return f"{s!r} cannot be an appc version (it is zero)"
    if v[0] != SPEC_VERSION[0]:
        return f"{s!r} is not in the major series of appc {'.'.join(map(str, SPEC_VERSION))}"
    if v > SPEC_VERSION:
        return f"{s!r} is newer than appc {'.'.join(map(str, SPEC_VERSION))}, the version this kit implements"
    return None


def _timestamp_fields(s: str) -> re.Match[str] | None:
    """RFC3339 §5.6 date-time with 'T' and every field in range (§5.7; no leap second 60)."""
    m = RFC3339_RE.match(s)
    if not m:
        return None
    year, month, day, hour, minute, sec = (int(m[i]) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    mdays = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not (1 <= month <= 12 and 1 <= day <= mdays[month - 1] and hour <= 23 and minute <= 59
            and sec <= 59):
        return None
    if m[9] is not None and (int(m[9]) > 23 or int(m[10]) > 59):
        return None
    return m


def parse_timestamp(s: str) -> datetime | None:
    """An RFC3339 date-time with 'T' (types.md §Timestamps Type) as an aware datetime, or None
    (also for year 0000, which RFC3339 allows but Python's datetime cannot hold)."""
    m = _timestamp_fields(s)
    if m is None or int(m[1]) == 0:
        return None
    micro = int((m[7] or ".0")[1:7].ljust(6, "0"))
    tz = timezone.utc if m[8] == "Z" else timezone(
        (1 if m[8][0] == "+" else -1) * timedelta(hours=int(m[9]), minutes=int(m[10])))
    return datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), micro, tz)


def check_timestamp(s: str) -> str | None:
    if _timestamp_fields(s) is not None:
        return None
    return f"{s!r} is not an RFC3339 timestamp (like '2014-10-27T19:32:27.67021798Z')"


def check_http_url(s: str) -> str | None:
    """aci.md §annotations homepage/documentation: a URL with scheme http or https."""
    try:
        u = urlsplit(s)
    except ValueError:
        return f"{s!r} is not a URL"
    if u.scheme not in ("http", "https"):
        return f"{s!r} is not an http(s) URL"
    if not u.hostname:
        return f"{s!r} is not an http(s) URL (no host)"
    # RFC 3986 §3.2: the authority holds unreserved, percent-encoded and sub-delim characters
    if not re.fullmatch(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+", u.netloc):
        return f"{s!r} is not an http(s) URL (bad characters in the host)"
    return None


def check_env_name(s: str) -> str | None:
    if ENV_NAME_RE.match(s):
        return None
    return f"{s!r} is not an environment variable name (letters, digits and '_', not starting with a digit)"


def check_absolute(s: str) -> str | None:
    return None if s.startswith("/") else f"{s!r} is not an absolute path"


# The largest quantity: Kubernetes' resource.Quantity (which ace.md's quantities follow) holds
# an int64 of base units, and a cgroup limit is a 64-bit number too.
MAX_QUANTITY = 2**63 - 1
_QUANTITY_CHARS = 40     # digits and point of the number part; 2**63 has 19 digits


def parse_quantity(s: str) -> Fraction | None:
    """A resource quantity (ace.md §Resource Isolators) as an exact number, or None (also when
    it is larger than :data:`MAX_QUANTITY`)."""
    m = QUANTITY_RE.match(s)
    if not m or len(m[1]) > _QUANTITY_CHARS:
        return None
    q = Fraction(m[1]) * _SUFFIX[m[2]]
    return q if q <= MAX_QUANTITY else None


def check_quantity(s: str) -> str | None:
    if parse_quantity(s) is not None:
        return None
    if QUANTITY_RE.match(s):
        return f"{s[:30]!r}{'…' if len(s) > 30 else ''} is larger than 2^63 - 1, the largest quantity"
    return (f"{s[:30]!r}{'…' if len(s) > 30 else ''} is not a quantity (a number with an optional "
            "suffix m, K, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)")


def check_os_arch(os_: str | None, arch: str | None,
                  table: dict[str, tuple[str, ...]] = VALID_OS_ARCH) -> tuple[str, str] | None:
    """(label, rule) when the os/arch labels are not a whitelisted pair; arch alone is fine.
    The whitelist is aci.md's, extended as appc's Go code extends it (sandbox._sys.platform)."""
    if os_ is None:
        return None
    if os_ not in table:
        return "os", f"{os_!r} is not a supported os (one of: {', '.join(sorted(table))})"
    if arch is not None and arch not in table[os_]:
        return "arch", f"{arch!r} is not a supported arch for {os_} (one of: {', '.join(table[os_])})"
    return None


def check_ipv4(s: str) -> str | None:
    """pods.md §ports hostIP: an IPv4 address in dotted-quad notation."""
    try:
        ipaddress.IPv4Address(s)
    except ValueError:
        return f"{s!r} is not an IPv4 address in dotted-quad notation"
    return None


def check_mode(s: str) -> str | None:
    """pods.md §volumes mode: a permission mode written in octal, like "0755"."""
    if re.fullmatch(r"0?[0-7]{3}|[0-7]{4}", s):
        return None
    return f"{s!r} is not an octal file mode (like '0755')"


class AppStringError(UsageError):
    """An app string ``name[:version][,label=value...]`` is malformed."""


# App strings (discovery.md §App Container Image Discovery: name[:version][,label=value...];
# here because the store looks images up by them too)

@dataclass(frozen=True)
class App:
    """An image request: an AC name plus the labels it must carry (discovery/parse.go's App)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        labels = dict(self.labels)
        out = self.name
        if "version" in labels:
            out += ":" + labels.pop("version")
        return out + "".join(f",{k}={v}" for k, v in labels.items())

    @property
    def version(self) -> str | None:
        return self.labels.get("version")

    def with_labels(self, **labels: str) -> "App":
        return App(self.name, {**self.labels, **labels})

    def with_platform_defaults(self, os_name: str | None = None, arch: str | None = None) -> "App":
        """Add ``os`` and ``arch`` for this machine unless requested (rkt/image/fetcher.go)."""
        d_os, d_arch = appc_os_arch()
        labels = dict(self.labels)
        labels.setdefault("os", os_name or d_os)
        labels.setdefault("arch", arch or d_arch)
        return App(self.name, labels)


def _app_identifier(value: str, what: str = "image name") -> str:
    if not AC_IDENTIFIER_RE.match(value or ""):
        raise AppStringError(
            f"{what} {value!r} is not a valid AC identifier: use lowercase letters and digits "
            "joined by single '-', '.', '_', '~' or '/' (e.g. example.com/hello).")
    return value


def parse_app(text: str, labels: Mapping[str, str] | None = None) -> App:
    """Parse ``name[:version][,label=value...]`` (discovery/parse.go NewAppFromString).

    The colon may appear once, right after the name, and means ``version=``; each label may
    appear once; ``name`` is not a label. ``labels`` are extra labels merged in (they may not
    contradict the string).
    """
    text = (text or "").strip()
    if not text:
        raise AppStringError("The app string is empty; give an image name such as example.com/hello:1.0.")
    first_comma, first_colon = text.find(","), text.find(":")
    if text.count(":") > 1:
        raise AppStringError(f"Malformed app string {text!r}: a colon may appear at most once "
                             "(name:version,label=value).")
    if first_colon > first_comma > -1:
        raise AppStringError(f"Malformed app string {text!r}: the colon may appear only right "
                             "after the name (name:version,label=value).")
    head, *rest = text.split(",")
    name, _, version = head.partition(":")
    _app_identifier(name)
    out: dict[str, str] = {}
    if first_colon > -1:
        if not version:
            raise AppStringError(f"Malformed app string {text!r}: nothing follows the colon; "
                                 "write name:version or leave the colon out.")
        out["version"] = version
    for part in rest:
        key, eq, value = part.partition("=")
        if not eq:
            raise AppStringError(f"Malformed app string {text!r}: label {key!r} has no value "
                                 "(write label=value).")
        if key == "name":
            raise AppStringError(f"Malformed app string {text!r}: 'name' is the image name, "
                                 "not a label.")
        _app_identifier(key, "label name")
        if key in out:
            raise AppStringError(f"Malformed app string {text!r}: label {key!r} is given twice.")
        out[key] = value
    for key, value in (labels or {}).items():
        _app_identifier(key, "label name")
        if key in out and out[key] != value:
            raise AppStringError(f"Label {key!r} is requested as both {out[key]!r} and {value!r}.")
        out[key] = value
    return App(name, out)
