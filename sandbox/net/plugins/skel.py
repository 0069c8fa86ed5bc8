"""The plugin side of the CNI execution protocol (SPEC.md §2 "Execution Protocol", spec 1.1.0).

A plugin is an executable. The runtime passes the command and its parameters in environment
variables (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH) and the
network configuration as JSON on stdin. The plugin prints one JSON document on stdout, a
result (ADD), a version answer (VERSION), nothing (DEL, CHECK, GC, STATUS) or an error
(§5 "Error"), and exits 0 on success, non-zero on error. Logs go to stderr only.

This module is imported by every plugin at start, so it imports only the standard library
pieces it needs (a plugin is exec'd for every call; start-up time is per-container latency).
"""
from __future__ import annotations

import json
import os
import sys

# The spec versions these plugins speak are the runtime's. 0.1.0/0.2.0 (the "ip4/ip6" result
# shape) are not spoken; upstream 1.1.1 still accepts them, but no runtime in this kit sends them.
from sandbox.net.cni.version import CURRENT, SUPPORTED_VERSIONS, at_least
from sandbox.net.cni.version import convert_result as _convert

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ms per plugin exec; annotations are strings anyway
    from typing import Any, Callable

# Well-known error codes (§2 "Error codes" of spec 1.1.0; 999 is libcni's ErrInternal, which
# the upstream plugins return for any runtime failure).
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODING = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_NOT_AVAILABLE = 50
ERR_LIMITED_CONNECTIVITY = 51
ERR_INTERNAL = 999

COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")

# Container ID rule from libcni pkg/utils (the same as for network names):
# ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$  (checked without `re`, one import less per exec)
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def valid_id(s: str) -> bool:
    return bool(s) and s[0] in _ALNUM and all(c in _ALNUM or c in "_.-" for c in s)


class CNIError(Exception):
    """A failure reported to the runtime as the spec's error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


_T0 = None
_TRACE = bool(os.environ.get("SANDBOX_CNI_TRACE"))


def trace(what: str) -> None:
    """With SANDBOX_CNI_TRACE=1: a stderr line with the milliseconds since the plugin started
    (where does a plugin exec spend its time?)."""
    if _TRACE:
        import time

        global _T0
        now = time.perf_counter()
        _T0 = _T0 or now
        print(f"[{(now - _T0) * 1000:7.1f} ms] {what}", file=sys.stderr, flush=True)


_STEPS = os.environ.get("SANDBOX_CNI_STEPS")
_steps_fd = -1
_NAME = ""


def step(action: str, what: str, **detail: Any) -> None:
    """With SANDBOX_CNI_STEPS=<file> (set by a runtime whose caller asked for a stepper): append
    one JSON line for something this plugin did that the runtime cannot see from outside — the
    IPAM plugin it execs, a state file it writes, the iptables-restore input it sends. Lines
    carry ``time.monotonic()`` (one clock for every process), so the runtime merges them with
    the kernel's notifications in order. Without the variable: nothing."""
    if not _STEPS:
        return
    import time

    global _steps_fd
    if _steps_fd < 0:
        _steps_fd = os.open(_STEPS, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    line = json.dumps({"t": time.monotonic(), "pid": os.getpid(), "plugin": _NAME,
                       "action": action, "what": what, "detail": detail}, default=str)
    os.write(_steps_fd, line.encode() + b"\n")   # one write: lines of two plugins never mix


def log(plugin: str, message: str) -> None:
    """One line on stderr (never stdout: stdout carries only the result or error JSON)."""
    print(f"{plugin}: {message}", file=sys.stderr, flush=True)


class CmdArgs:
    """One invocation: the environment variables of §2 "Parameters" plus the stdin config."""

    def __init__(self, command: str, container_id: str = "", netns: str = "", ifname: str = "",
                 args: str = "", path: list[str] | None = None, stdin: bytes = b"",
                 conf: dict[str, Any] | None = None) -> None:
        self.command, self.container_id, self.netns, self.ifname = command, container_id, netns, ifname
        self.args, self.path, self.stdin = args, path or [], stdin
        self.conf: dict[str, Any] = conf or {}

    @property
    def cni_version(self) -> str:
        return str(self.conf.get("cniVersion", ""))

    @property
    def name(self) -> str:
        return str(self.conf.get("name", ""))

    def cni_args(self, known: tuple[str, ...] = ()) -> dict[str, str]:
        """CNI_ARGS ``K=V;K=V`` as a dict. Like upstream (cni pkg/types LoadArgs), a key the
        plugin does not know is an error unless ``IgnoreUnknown=1`` (or true) is present."""
        out: dict[str, str] = {}
        if not self.args:
            return out
        for pair in self.args.split(";"):
            if not pair:
                continue
            k, sep, v = pair.partition("=")
            if not sep:
                raise CNIError(ERR_INTERNAL, f"ARGS: invalid pair {pair!r}",
                               "CNI_ARGS must look like K1=V1;K2=V2.")
            out[k] = v
        ignore = out.get("IgnoreUnknown", "").lower() in ("1", "true")
        unknown = [f"{k}={v}" for k, v in out.items() if k not in known and k != "IgnoreUnknown"]
        if unknown and not ignore:
            raise CNIError(ERR_INTERNAL, f"ARGS: unknown args {json.dumps(unknown)}",
                           f"This plugin understands {', '.join(known) or 'no keys'}; add "
                           "IgnoreUnknown=1 to CNI_ARGS to pass keys meant for other plugins.")
        return out


# Which variables each command needs (spec 1.1.0 §2; DEL's CNI_NETNS is optional, GC and
# STATUS only need CNI_PATH). The Go skel is stricter and also wants CNI_PATH for ADD/DEL/CHECK.
_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
    "VERSION": (),
}


def validate_ifname(name: str) -> None:
    """CNI_IFNAME rules (libcni pkg/utils ValidateInterfaceName): a Linux interface name."""
    problem = ""
    if not name:
        problem = "is empty"
    elif len(name) > 15:
        problem = "is longer than 15 characters"
    elif name in (".", ".."):
        problem = "may not be '.' or '..'"
    elif any(c in name for c in "/:") or any(c.isspace() for c in name):
        problem = "may not contain '/', ':' or whitespace"
    if problem:
        raise CNIError(ERR_INVALID_ENV, f"interface name {name!r} {problem}",
                       "CNI_IFNAME must be a valid Linux interface name such as eth0.")


def parse_env(environ: dict[str, str], stdin: bytes) -> CmdArgs:
    """Read and validate the parameters of one call (errors are spec error codes 4, 6, 1)."""
    cmd = environ.get("CNI_COMMAND", "")
    if cmd not in COMMANDS:
        raise CNIError(ERR_INVALID_ENV, f"unknown CNI_COMMAND {cmd!r}",
                       f"CNI_COMMAND must be one of {', '.join(COMMANDS)}.")
    missing = [v for v in _REQUIRED[cmd] if not environ.get(v)]
    if missing:
        raise CNIError(ERR_INVALID_ENV, f"required env variables [{','.join(missing)}] missing",
                       f"{cmd} needs {', '.join(_REQUIRED[cmd])} in the environment (CNI spec §2).")
    a = CmdArgs(command=cmd,
                container_id=environ.get("CNI_CONTAINERID", ""),
                netns=environ.get("CNI_NETNS", ""),
                ifname=environ.get("CNI_IFNAME", ""),
                args=environ.get("CNI_ARGS", ""),
                path=[p for p in environ.get("CNI_PATH", "").split(":") if p],
                stdin=stdin)
    if a.container_id and not valid_id(a.container_id):
        raise CNIError(ERR_INVALID_ENV, f"invalid characters in containerID {a.container_id!r}",
                       "A container ID starts with a letter or digit, then letters, digits, '_', '.' or '-'.")
    if cmd in ("ADD", "CHECK", "DEL"):
        validate_ifname(a.ifname)
    a.conf = decode_config(stdin)
    if cmd != "VERSION":
        check(a.conf, COMMON, "")
        name = a.conf.get("name")
        if name is not None and not valid_id(name):
            # the name is a file name in host-local's dataDir and goes into iptables comments
            # (ipMasq): libcni's ValidateNetworkName, code 7 as upstream host-local answers
            raise CNIError(ERR_INVALID_CONFIG, "invalid characters found in network name", name)
    return a


def decode_config(stdin: bytes) -> dict[str, Any]:
    """The stdin JSON object, bounded (sandbox.bounded: CNI_CONFIG_BYTES, JSON_DEPTH, numbers a
    float64 holds); error 6 otherwise, as upstream's skel answers a decoding failure."""
    from sandbox import bounded
    try:
        conf = bounded.loads(stdin or b"{}", "the network configuration on stdin",
                             limit=bounded.CNI_CONFIG_BYTES)
    except bounded.InputTooLarge as e:
        raise CNIError(ERR_DECODING, e.message) from e
    except bounded.BadJSON as e:
        raise CNIError(ERR_DECODING, f"failed to decode the network configuration on stdin: "
                       f"{e.reason}", "The runtime must pass the network configuration as JSON "
                       "on stdin.") from e
    if not isinstance(conf, dict):
        raise CNIError(ERR_DECODING, "the network configuration on stdin is not a JSON object")
    if "cniVersion" in conf and not isinstance(conf["cniVersion"], str):
        # upstream: "decoding version from network config: json: cannot unmarshal ..."
        raise CNIError(ERR_DECODING, "decoding version from network config: cniVersion must be "
                       f"a string, not {jtype(conf['cniVersion'])}")
    return conf


# -- the shapes of config values (what Go's typed json.Unmarshal enforces upstream) -----------
# sandbox.bounded.shape_problem reads the specs; a wrong shape is error 6: the content cannot be
# decoded (upstream's decoder says "json: cannot unmarshal", reported as its catch-all 999).


def jtype(v: Any) -> str:
    from sandbox.bounded import jtype
    return jtype(v)


def check(value: Any, spec: Any, where: str) -> None:
    """Raise error 6 naming the first part of ``value`` whose JSON type is not ``spec``'s."""
    from sandbox.bounded import shape_problem
    problem = shape_problem(value, spec, where)
    if problem:
        raise CNIError(ERR_DECODING, f"failed to decode the network configuration: {problem}",
                       "Fix that value in the network configuration.")


ROUTE = {"dst": str, "gw": str, "mtu": int, "advmss": int, "priority": int, "table": int,
         "scope": int}
DNS = {"nameservers": [str], "domain": str, "search": [str], "options": [str]}
RESULT = {"cniVersion": str, "interfaces": [{"name": str, "mac": str, "sandbox": str, "mtu": int,
                                             "socketPath": str, "pciID": str}],
          "ips": [{"address": str, "gateway": str, "interface": int, "version": str}],
          "routes": [ROUTE], "dns": DNS}
# what every plugin decodes; NETCONF: what a main plugin decodes (upstream's types.NetConf),
# checked by load_netconf. host-local decodes its own struct (no dns, no prevResult).
COMMON = {"cniVersion": str, "cniVersions": [str], "name": str, "type": str}
NETCONF = {"ipam": {"type": str}, "dns": DNS, "capabilities": dict, "prevResult": dict,
           "args": {"cni": dict}, "runtimeConfig": dict}


def load_netconf(a: CmdArgs, spec: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A main plugin's config: the shapes of types.NetConf plus ``spec`` (the plugin's own
    keys), and prevResult read (upstream parses it when it loads the config, before anything
    else happens). Returns the prevResult in the internal shape, or None."""
    check(a.conf, NETCONF, "")
    if spec:
        check(a.conf, spec, "")
    return prev_result(a)


def check_version(a: CmdArgs) -> None:
    """§2: a config version the plugin does not support is error 1; CHECK needs >= 0.4.0,
    GC and STATUS need >= 1.1.0 (as the Go skel answers)."""
    v = a.cni_version
    if not v:  # the spec requires it; upstream would read a missing one as 0.1.0
        raise CNIError(ERR_INCOMPATIBLE_VERSION, "the network configuration has no cniVersion",
                       f"Add \"cniVersion\": \"{CURRENT}\" (or another of {', '.join(SUPPORTED_VERSIONS)}).")
    if v not in SUPPORTED_VERSIONS:
        raise CNIError(ERR_INCOMPATIBLE_VERSION,
                       f"incompatible CNI versions; config is {json.dumps(v or '')}, plugin supports "
                       f"{json.dumps(list(SUPPORTED_VERSIONS))}",
                       "Set cniVersion in the network configuration to one of the supported versions.")
    need = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}.get(a.command)
    if need and not at_least(v, need):
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"config version does not allow {a.command}",
                       f"{a.command} exists since spec {need}; the config says {v}.")


# -- results (§5 "Success"): kept internally in the 1.1.0 shape, converted on output ---------

def convert_result(result: dict[str, Any], to_version: str) -> dict[str, Any]:
    """Render a 1.1.0-shaped result in the config's version (sandbox.net.cni.version does the
    conversion), laid out as upstream's plugins print it: empty lists left out, ``dns`` always."""
    res = _convert({**result, "cniVersion": CURRENT}, to_version)   # internal: 1.1.0-shaped
    out: dict[str, Any] = {"cniVersion": to_version}
    for key in ("interfaces", "ips", "routes"):
        if res.get(key):
            out[key] = res[key]
    out["dns"] = res.get("dns") or {}
    return out


def parse_result(data: Any, where: str = "prevResult") -> dict[str, Any]:
    """Read a result of any supported version into the internal 1.1.0 shape. Shapes are
    checked (error 6) and values too (error 7): every address is address/prefix, every gateway
    an IP, every route's dst a CIDR, and an IP's interface index points into ``interfaces``."""
    if not isinstance(data, dict):
        raise CNIError(ERR_DECODING, f"{where} is not a JSON object")
    if "ip4" in data or "ip6" in data:
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"{where} uses the 0.2.0 result format, which these plugins do not read")
    check(data, RESULT, where)
    _check_result_values(data, where)
    res = _convert({"cniVersion": data.get("cniVersion", CURRENT),
                    **{k: data.get(k) or [] for k in ("interfaces", "ips", "routes")},
                    "dns": dict(data.get("dns") or {})}, CURRENT)
    res["cniVersion"] = data.get("cniVersion", CURRENT)
    return res


def _check_result_values(data: dict[str, Any], where: str) -> None:
    import ipaddress
    interfaces = data.get("interfaces") or []
    try:
        for i, ip in enumerate(data.get("ips") or []):
            at = f"{where}.ips[{i}]"
            if ip.get("address") is None:
                raise ValueError(f"{at}.address is required")
            if "/" not in ip["address"]:
                raise ValueError(f"{at}.address {ip['address']!r} is not an address/prefix")
            ipaddress.ip_interface(ip["address"])
            if ip.get("gateway") is not None:
                ipaddress.ip_address(ip["gateway"])
            n = ip.get("interface")
            if n is not None and not 0 <= n < len(interfaces):
                raise ValueError(f"{at}.interface {n} is not an index into interfaces")
        for i, r in enumerate(data.get("routes") or []):
            if r.get("dst") is None:
                raise ValueError(f"{where}.routes[{i}].dst is required")
            ipaddress.ip_network(r["dst"], strict=False)
            if r.get("gw") is not None:
                ipaddress.ip_address(r["gw"])
    except ValueError as e:
        raise CNIError(ERR_INVALID_CONFIG, f"invalid {where}: {e}") from e


def prev_result(a: CmdArgs) -> dict[str, Any] | None:
    pr = a.conf.get("prevResult")
    return None if pr is None else parse_result(pr)


def dns_set(dns: dict[str, Any] | None) -> bool:
    return bool(dns) and any(dns.get(k) for k in ("nameservers", "domain", "search", "options"))


# -- the main loop ------------------------------------------------------------------------------

def plugin_main(name: str, handlers: "dict[str, Callable[[CmdArgs], dict[str, Any] | None]]",
                argv: list[str] | None = None) -> None:
    """Run one CNI call and exit: dispatch CNI_COMMAND to ``handlers`` (ADD, DEL, CHECK, GC,
    STATUS; VERSION is answered here), print the result or the error JSON on stdout."""
    global _NAME
    _NAME = name
    environ = dict(os.environ)
    if not environ.get("CNI_COMMAND"):
        print(f"CNI {name} plugin (Container Standards Lab, Python)\n"
              f"CNI protocol versions supported: {', '.join(SUPPORTED_VERSIONS)}\n"
              "It is run by a container runtime: set CNI_COMMAND (ADD, DEL, CHECK, GC, STATUS, "
              "VERSION) and friends and pass the network configuration on stdin.", file=sys.stderr)
        sys.exit(0)
    trace(f"{name} {environ.get('CNI_COMMAND')} start")
    stdin = _read_stdin()
    version = CURRENT
    try:
        a = parse_env(environ, stdin)
        version = a.cni_version or CURRENT
        if a.command == "VERSION":
            _emit({"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED_VERSIONS)})
            sys.exit(0)
        check_version(a)
        handler = handlers.get(a.command)
        if handler is None:
            # A command the plugin has nothing to do for (e.g. loopback GC) succeeds silently.
            sys.exit(0)
        result = handler(a)
        if a.command == "ADD":
            if result is None:
                raise CNIError(ERR_INTERNAL, f"{name} produced no result")
            _emit(convert_result(result, a.cni_version))
        trace(f"{name} {a.command} done")
        sys.exit(0)
    except CNIError as e:
        _emit(e.to_json(version if version in SUPPORTED_VERSIONS else CURRENT))
        sys.exit(1)
    except SystemExit:
        raise
    except BaseException as e:  # a bug or an unexpected kernel answer: still speak the protocol
        import traceback
        traceback.print_exc(file=sys.stderr)
        _emit(CNIError(ERR_INTERNAL, f"{name}: {type(e).__name__}: {e}").to_json(
            version if version in SUPPORTED_VERSIONS else CURRENT))
        sys.exit(1)


def _read_stdin() -> bytes:
    """stdin, at most CNI_CONFIG_BYTES (+1 so that too much shows: decode_config refuses it)."""
    from sandbox.bounded import CNI_CONFIG_BYTES
    return sys.stdin.buffer.read(CNI_CONFIG_BYTES.value + 1)


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=4) + "\n")
    sys.stdout.flush()
