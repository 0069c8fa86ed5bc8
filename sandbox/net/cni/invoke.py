"""The execution protocol, runtime side (SPEC.md §2 "Execution Protocol"; libcni pkg/invoke).

A plugin is an executable found by its ``type`` in CNI_PATH. One call = one exec: the command
and its parameters in environment variables (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
CNI_IFNAME, CNI_ARGS, CNI_PATH), the plugin's configuration as JSON on stdin, and on stdout
either the result (ADD), a version answer (VERSION), nothing (DEL, CHECK, GC, STATUS), or an
error object ``{code, msg, details}`` with a non-zero exit. Logs go to stderr; we keep them.

Plugins act in the network namespace they run in: the bridge plugin makes its bridge there,
sets ip_forward there and writes NAT rules there. ``node=`` runs the plugin inside a "node"
netns (the calling thread enters it, the child inherits it, the thread comes back).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from sandbox import bounded
from sandbox.errors import SandboxError
from sandbox.net import netns as _netns
from sandbox.net.cni.errors import CniError
from sandbox.steps import Steps

DEBIAN_CNI_DIR = "/usr/lib/cni"                     # Debian's containernetworking-plugins
DEFAULT_CNI_PATH = ["/opt/cni/bin", DEBIAN_CNI_DIR]  # upstream's default, then Debian's


class PluginNotFoundError(SandboxError):
    """No executable for a plugin ``type`` in CNI_PATH."""


def cni_path_list(cni_path: str | list[str] | None) -> list[str]:
    """CNI_PATH as a list: argument, else $CNI_PATH, else /opt/cni/bin:/usr/lib/cni."""
    if cni_path is None:
        cni_path = os.environ.get("CNI_PATH") or DEFAULT_CNI_PATH
    if isinstance(cni_path, str):
        cni_path = [p for p in cni_path.split(os.pathsep) if p]
    return [str(p) for p in cni_path]


def find_plugin(type_: str, cni_path: list[str]) -> Path:
    """The first executable named ``type_`` in the CNI_PATH directories (libcni FindInPath)."""
    if not type_ or "/" in type_:
        raise PluginNotFoundError(f"'{type_}' is not a plugin name (no slashes, not empty).")
    for d in cni_path:
        p = Path(d) / type_
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise PluginNotFoundError(
        f"failed to find plugin \"{type_}\" in path {cni_path}.",
        hint=f"Install containernetworking-plugins ({DEBIAN_CNI_DIR}) or pass --cni-path, "
             "e.g. $(sandbox net plugin-dir) for the kit's own plugins.")


@dataclass
class Exec:
    """One plugin call, everything --explain shows."""

    plugin: str
    path: str
    command: str
    env: dict[str, str]                    # the CNI_* variables (the rest is inherited)
    stdin: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    ms: float = 0.0
    node: str | None = None                # netns the plugin ran in (None = the caller's)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def args_string(args: str | dict[str, str] | list[tuple[str, str]] | list[list[str]] | None) -> str:
    """CNI_ARGS ``K=V;K=V`` from a string, dict or list of pairs."""
    if not args:
        return ""
    if isinstance(args, str):
        return args
    pairs = args.items() if isinstance(args, dict) else args
    return ";".join(f"{k}={v}" for k, v in pairs)


def args_pairs(args: str | dict[str, str] | list | None) -> list[list[str]]:
    """CNI_ARGS as ``[[K, V], …]`` (libcni's RuntimeConf.Args, as cached)."""
    s = args_string(args)
    out = []
    for part in s.split(";"):
        if part:
            k, sep, v = part.partition("=")
            if not sep:
                raise SandboxError(f"CNI_ARGS entry '{part}' is not KEY=VALUE.",
                                   hint="Write --args 'K1=V1;K2=V2'.")
            out.append([k, v])
    return out


def _decode_error(stdout: str, stderr: str) -> dict[str, Any] | None:
    # libcni reads the error object from stdout; spec 1.0/1.1 text says stderr, so try both.
    for text in (stdout, stderr):
        try:
            obj = bounded.loads(text, "the plugin's error", limit=bounded.CNI_CONFIG_BYTES)
        except (bounded.BadJSON, bounded.InputTooLarge):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("code"), int) \
                and not isinstance(obj["code"], bool):
            return obj
    return None


def exec_plugin(path: Path, command: str, stdin: bytes | str, *, container_id: str = "",
                netns: str = "", ifname: str = "", args: str = "",
                cni_path: list[str] | None = None, node: str | os.PathLike[str] | None = None,
                network: str = "", steps: Steps | None = None, timeout: float = 60,
                log: list[Exec] | None = None,
                plugin_state_dir: str | os.PathLike[str] | None = None,
                extra_env: dict[str, str] | None = None,
                on_start: Callable[[Exec], None] | None = None) -> dict[str, Any] | None:
    """Run one plugin command and return its parsed stdout (None if it printed nothing).

    ``extra_env`` is added to the plugin's environment (not shown as part of the call);
    ``on_start(call)`` is called just before the exec (a recording runtime marks the start).

    ``plugin_state_dir``: the plugin runs in a private mount namespace where that directory is
    mounted on /var/lib/cni (so host-local's default dataDir, /var/lib/cni/networks, lands
    there and the machine's own /var/lib/cni is untouched).

    Raises :class:`CniError` with the plugin's code/msg/details when it fails."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    cni_env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_ARGS": args,
               "CNI_PATH": os.pathsep.join(cni_path or [])}
    if command == "VERSION":
        cni_env = {"CNI_COMMAND": "VERSION"}
    env = _plugin_env(cni_env, extra_env)
    call = Exec(plugin=path.name, path=str(path), command=command, env=cni_env,
                stdin=data.decode(errors="replace"),
                node=str(_netns.path_of(node)) if node is not None else None)
    pre = _private_var_lib_cni(plugin_state_dir) if plugin_state_dir is not None else None
    if on_start is not None:
        on_start(call)
    t0 = time.perf_counter()
    try:
        if node is None:
            cp = subprocess.run([str(path)], input=data, env=env, capture_output=True,
                                timeout=timeout, preexec_fn=pre)
        else:
            with _netns.enter(node):  # the child inherits this thread's netns
                cp = subprocess.run([str(path)], input=data, env=env, capture_output=True,
                                    timeout=timeout, preexec_fn=pre)
    except subprocess.TimeoutExpired as e:
        raise CniError(999, f"plugin did not answer within {timeout:g} s", plugin=path.name,
                       command=command, network=network,
                       explanation="The plugin hung: look at its stderr and at locks in its "
                                   "state directory.") from e
    except PermissionError as e:
        raise PluginNotFoundError(f"{path} is not executable.") from e
    call.ms = (time.perf_counter() - t0) * 1000
    call.exit_code = cp.returncode
    call.stdout = cp.stdout.decode(errors="replace")
    call.stderr = cp.stderr.decode(errors="replace")
    if log is not None:
        log.append(call)
    if steps is not None:
        what, detail = exec_step(call)
        steps.add("exec", what, **detail)
    if cp.returncode != 0:
        raise _failure(path, call, network)
    return _result(path, call, network)


def _plugin_env(cni_env: dict[str, str], extra_env: dict[str, str] | None) -> dict[str, str]:
    """The plugin's environment: ours without any CNI_* of our own, then the call's CNI_*
    variables, then ``extra_env``, with the sbin directories on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(cni_env)
    env.update(extra_env or {})
    # plugins exec iptables/ip from PATH; a notebook kernel's PATH may lack the sbin dirs
    path_dirs = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join([d for d in path_dirs if d] + [
        d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin") if d not in path_dirs])
    return env


def _failure(path: Path, call: Exec, network: str) -> CniError:
    """The CniError for a plugin that exited non-zero: its own error object when it printed
    one (with the versions it speaks for code 1, and a word on pre-1.1.0 plugins for GC and
    STATUS), else its last lines of stderr."""
    command = call.command
    err = _decode_error(call.stdout, call.stderr)
    if err is None:
        tail = call.stderr.strip().splitlines()[-3:]
        return CniError(999, f"plugin exited with status {call.exit_code} and printed no error "
                        "JSON", "; ".join(tail), plugin=path.name, command=command,
                        network=network, stderr=call.stderr,
                        explanation="A plugin must print {\"code\", \"msg\"} on stdout when it "
                                    "fails; this one did not, so read its stderr.")
    versions, explanation = None, None
    if err.get("code") == 1 and command != "VERSION":
        versions = supported_versions(path)
    if command in ("GC", "STATUS") and err.get("code") not in (50, 51) \
            and "1.1.0" not in supported_versions(path):
        explanation = (f"This plugin predates spec 1.1.0 and has no {command} (its versions: "
                       f"{', '.join(supported_versions(path))}).")
    return CniError(int(err.get("code", 999)), str(err.get("msg", "")),
                    str(err.get("details", "") or ""), plugin=path.name, command=command,
                    network=network, stderr=call.stderr, versions=versions,
                    explanation=explanation)


def _result(path: Path, call: Exec, network: str) -> dict[str, Any] | None:
    """A successful call's stdout as a result object (None if it printed nothing)."""
    text = call.stdout.strip()
    if not text:
        return None
    try:   # another program's output: bounded (CNI_CONFIG_BYTES, JSON_DEPTH), an object
        result = bounded.loads(text, "the plugin's result", limit=bounded.CNI_CONFIG_BYTES)
    except (bounded.BadJSON, bounded.InputTooLarge) as e:
        raise CniError(6, f"plugin printed something that is not a result on stdout ({e})",
                       text[:200], plugin=path.name, command=call.command, network=network,
                       stderr=call.stderr) from e
    if not isinstance(result, dict):
        raise CniError(6, "plugin printed JSON that is not an object on stdout", text[:200],
                       plugin=path.name, command=call.command, network=network,
                       stderr=call.stderr)
    return result


def exec_step(call: Exec) -> tuple[str, dict[str, Any]]:
    """(what, detail) of the ``exec`` step that records one plugin call (``explain`` reads it)."""
    return f"{call.plugin} {call.command}", {k: v for k, v in call.to_dict().items()
                                              if k not in ("plugin", "command")}


def _private_var_lib_cni(state_dir: str | os.PathLike[str]) -> Any:
    """preexec_fn: new mount namespace (mounts stop propagating back), then ``state_dir`` bound
    on /var/lib/cni. Runs in the forked child only."""
    from sandbox._sys import libc

    src = os.path.abspath(os.fspath(state_dir))
    os.makedirs(src, exist_ok=True)
    os.makedirs("/var/lib/cni", exist_ok=True)  # the mount point (libcni's default dir)

    def pre() -> None:
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount(None, "/", None, libc.MS_REC | libc.MS_SLAVE)
        libc.mount(src, "/var/lib/cni", None, libc.MS_BIND)

    return pre


_version_cache: dict[tuple[str, float], list[str]] = {}


def supported_versions(path: Path) -> list[str]:
    """The plugin's VERSION answer (``supportedVersions``), cached per file and mtime."""
    key = (str(path), path.stat().st_mtime)
    if key not in _version_cache:
        try:
            out = exec_plugin(path, "VERSION", json.dumps({"cniVersion": "1.1.0"})) or {}
        except CniError:  # old plugins may refuse a newer cniVersion in VERSION
            out = exec_plugin(path, "VERSION", json.dumps({"cniVersion": "0.4.0"})) or {}
        got = out.get("supportedVersions")
        _version_cache[key] = [v for v in got if isinstance(v, str)] if isinstance(got, list) else []
    return _version_cache[key]


def explain(calls: list[Exec] | Steps) -> str:
    """Every plugin exec as text: env, stdin, stdout, stderr and exit code (``--explain``)."""
    if isinstance(calls, Steps):
        items = [dict(plugin=s.what.split()[0], command=s.what.split()[1], **s.detail)
                 for s in calls.of("exec") if "env" in s.detail]
    else:
        items = [c.to_dict() for c in calls]
    blocks = []
    for i, c in enumerate(items, 1):
        env = " ".join(f"{k}={v}" for k, v in c["env"].items())
        where = f" (inside netns {c['node']})" if c.get("node") else ""
        lines = [f"--- exec {i}: {c['path']}{where}", f"env:    {env}",
                 "stdin:  " + _pretty(c["stdin"]),
                 "stdout: " + (_pretty(c["stdout"]) if c["stdout"].strip() else "(empty)")]
        if c.get("stderr", "").strip():
            lines.append("stderr: " + c["stderr"].strip().replace("\n", "\n        "))
        lines.append(f"exit:   {c['exit_code']}   ({c['ms']:.1f} ms)")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _pretty(text: str) -> str:
    try:
        return json.dumps(bounded.loads(text, limit=bounded.CNI_CONFIG_BYTES),
                          indent=2).replace("\n", "\n        ")
    except (bounded.BadJSON, bounded.InputTooLarge):
        return text.strip()
