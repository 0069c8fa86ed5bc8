"""Delegating IP address management (SPEC.md §4 "Plugin Delegation"): a main plugin such as
``bridge`` finds the plugin named by ``ipam.type`` in CNI_PATH and execs it with the *same*
environment and the *same* stdin config; the IPAM plugin answers with addresses, routes and DNS
but no interfaces. Any IPAM plugin works (ours, or upstream's Go host-local).

A delegated call can run in the background (:meth:`Delegation.start`) while the caller does
its netlink work, which hides one process start per ADD/DEL.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ms per plugin exec; annotations are strings anyway
    from typing import Any

from sandbox.net.plugins.skel import _STEPS, ERR_INTERNAL, CmdArgs, CNIError, parse_result, step


def find_plugin(name: str, paths: list[str]) -> str:
    """The executable ``name`` in the first CNI_PATH directory that has it."""
    if not name or "/" in name:
        raise CNIError(ERR_INTERNAL, f"invalid plugin type {name!r}")
    for d in paths:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise CNIError(ERR_INTERNAL, f"failed to find plugin {name!r} in path {paths}",
                   "Put the IPAM plugin's directory in CNI_PATH.")


class Delegation:
    """One exec of the IPAM plugin for ``command`` (ADD, DEL, CHECK, GC, STATUS)."""

    def __init__(self, a: CmdArgs, command: str) -> None:
        ipam = a.conf.get("ipam") or {}
        self.type = str(ipam.get("type") or "")
        self.a, self.command = a, command
        self.proc: Any = None
        self.succeeded = False  # the plugin answered with success
        self.t0 = 0.0

    def start(self) -> "Delegation":
        from sandbox.net.plugins.spawn import Proc

        exe = find_plugin(self.type, self.a.path)
        env = dict(os.environ)
        env["CNI_COMMAND"] = self.command
        # same stdin as ours; its stderr goes straight to ours (the runtime's log)
        if _STEPS:  # a stepper asked: say what we exec, as the runtime says what it execs
            import time
            step("call", f"{self.type} {self.command}", plugin=self.type, command=self.command,
                 path=exe, env={k: v for k, v in env.items() if k.startswith("CNI_")},
                 stdin=self.a.stdin.decode(errors="replace"))
            self.t0 = time.monotonic()
        self.proc = Proc([exe], self.a.stdin, env, stderr_inherit=True)
        return self

    def wait(self) -> dict[str, Any] | None:
        """The IPAM result for ADD (None for other commands); the IPAM error re-raised."""
        if self.proc is None:
            self.start()
        assert self.proc is not None
        rc, out = self.proc.wait()
        if _STEPS:
            import time
            step("exit", f"{self.type} {self.command}", plugin=self.type, command=self.command,
                 stdout=out.decode(errors="replace") if isinstance(out, bytes) else out,
                 exit_code=rc, ms=round((time.monotonic() - self.t0) * 1000, 1))
        doc: Any = None
        if out.strip():
            from sandbox import bounded
            try:      # another program's output: bounded like a config (CNI_CONFIG_BYTES, depth)
                doc = bounded.loads(out, f"the output of IPAM plugin {self.type!r}",
                                    limit=bounded.CNI_CONFIG_BYTES)
            except (bounded.BadJSON, bounded.InputTooLarge):
                doc = None
        if rc != 0:
            code = doc.get("code") if isinstance(doc, dict) else None
            if isinstance(code, int) and not isinstance(code, bool):
                raise CNIError(code, str(doc.get("msg", "")), str(doc.get("details", "")))
            raise CNIError(ERR_INTERNAL, f"IPAM plugin {self.type!r} failed (exit {rc}) with no error message")
        self.succeeded = True
        if self.command != "ADD":
            return None
        if not isinstance(doc, dict):
            raise CNIError(ERR_INTERNAL, f"IPAM plugin {self.type!r} printed no result")
        return parse_result(doc, f"the result of IPAM plugin {self.type!r}")

    def reap(self) -> None:
        """Wait for it and ignore its answer (when another error is already on its way)."""
        try:
            self.wait()
        except Exception:  # noqa: BLE001
            pass


class Alongside:
    """``with ipam.Alongside(a, "CHECK", enabled):`` runs the IPAM plugin in the background
    while the block does the main plugin's own work. A block that succeeds then waits for it
    (its error is the answer); a block that fails reaps it and ignores its answer, so the
    block's error is the one reported. ``enabled`` False (no ``ipam`` in the config): nothing."""

    def __init__(self, a: CmdArgs, command: str, enabled: bool = True) -> None:
        self.job = Delegation(a, command).start() if enabled else None

    def __enter__(self) -> "Delegation | None":
        return self.job

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        if self.job is not None:
            if exc_type is None:
                self.job.wait()
            else:
                self.job.reap()
        return False  # never swallow the block's error


def run(a: CmdArgs, command: str) -> dict[str, Any] | None:
    """Exec the IPAM plugin and wait for it."""
    return Delegation(a, command).start().wait()
