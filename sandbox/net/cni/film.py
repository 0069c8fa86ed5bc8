"""Recording a CNI operation for the stepper: every plugin exec and every change it made.

Used by :class:`sandbox.net.cni.runtime.Runtime` when its caller passed a snapshotting ``Steps``
(``Steps(snapshots=True)``); nothing here runs otherwise. For one ADD, DEL or GC it records, in
the order they happened:

* ``call`` / ``exec``: the runtime starting a plugin (environment, stdin) and the plugin's answer
  (stdout, stderr, exit code, time) — the runtime's own view;
* what the kit's plugins report through ``SANDBOX_CNI_STEPS`` (:func:`sandbox.net.plugins.skel.step`):
  the IPAM plugin the main plugin execs (its environment, stdin, stdout, exit code), the state
  files host-local writes, the iptables-restore input. Upstream's Go plugins report nothing, so
  their delegated exec is not in the film;
* ``netlink`` / ``nftables``: every change the kernel announced in the node and container
  namespaces (:class:`sandbox.net.watch.KernelFilm`): link created, moved, renamed, set up,
  attached to a bridge; address; route; NAT chain and rule — one step each, whoever made it.

Each step's ``after`` names the kernel state right after it: ``{"kind": "net", "film": …,
"i": …}``, drawn by :func:`sandbox.viz.net.cni_frame`.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

from sandbox.net.cni.invoke import Exec, exec_step
from sandbox.net.watch import KernelFilm
from sandbox.steps import Steps


class CniFilm:
    """The recording of one runtime operation (``op``: ADD, DEL, GC, CHECK)."""

    def __init__(self, steps: Steps, op: str, node: str | None,
                 containers: dict[str, str]) -> None:
        self.steps, self.op = steps, op
        spaces: dict[str, str | None] = {"node" if node else "host": node}
        spaces.update(containers)
        self.kernel = KernelFilm(spaces)
        self.labels = list(spaces)
        fd, self.trace_path = tempfile.mkstemp(prefix="sbx-cni-steps-", suffix=".jsonl")
        os.close(fd)
        self._read = 0
        self._pending: list[tuple[float, str, str, dict[str, Any], int]] = []

    def start(self, since: int) -> "CniFilm":
        """Start watching; the operation's steps from index ``since`` on, recorded before
        this (reading the configuration, the cache), get the start state."""
        self.kernel.start()
        self.steps.attach(since, self._after(-1))
        self._watch = self.steps.watching(lambda _step: self._after(len(self.kernel.events) - 1))
        self._watch.__enter__()     # the runtime's own steps meanwhile: the latest state
        return self

    def env(self) -> dict[str, str]:
        """What every plugin exec gets in its environment while recording."""
        return {"SANDBOX_CNI_STEPS": self.trace_path}

    def _after(self, i: int) -> dict[str, Any]:
        return {"kind": "net", "film": self, "i": i, "op": self.op}

    def _add(self, action: str, what: str, i: int, t: float, **detail: Any) -> None:
        # A notification's time is when the listener thread read it, not when the kernel made
        # the change; on a busy machine that read comes late, after steps recorded since (a
        # runtime step, a late IPv6 address). The film stays in time order: a step never gets
        # a time before the one recorded ahead of it.
        if len(self.steps):
            t = max(t, self.steps[len(self.steps) - 1].t)
        self.steps.add(action, what, after=self._after(i), t=t, **detail)

    def on_start(self, call: Exec) -> None:
        """The runtime is about to exec a plugin (``invoke.exec_plugin``'s ``on_start``). No
        sync with the listener here: nothing of this exec can have happened yet, and each
        hand-over to the listener thread costs a scheduler slice on a busy machine."""
        self._add("call", f"{call.plugin} {call.command}", len(self.kernel.events) - 1,
                  time.monotonic(), plugin=call.plugin, command=call.command, env=call.env,
                  stdin=call.stdin, node=call.node)

    def done(self, call: Exec | None) -> None:
        """The plugin exec is over: its kernel changes and its own steps, then its answer."""
        self.collect()
        if call is not None:
            what, detail = exec_step(call)
            self._add("exec", what, len(self.kernel.events) - 1, time.monotonic(), **detail)

    def collect(self) -> None:
        """Add, in time order, the kernel changes and the plugins' lines that arrived."""
        items: list[tuple[float, int, Any]] = []
        for i in self.kernel.take():
            ch = self.kernel.change(i)
            if ch is not None and ch["visible"]:
                items.append((self.kernel.events[i].t, 1, i))
        for line in self._lines():
            items.append((float(line.get("t", 0.0)), 0, line))
        for t, kind, item in sorted(items, key=lambda x: (x[0], x[1])):
            if kind == 1:
                ev = self.kernel.events[item]
                ch = self.kernel.change(item)
                assert ch is not None
                self._add("netlink" if ev.proto == "rtnl" else "nftables", ch["what"], item, t,
                          namespace=ch["ns"], change=ch["kind"],
                          message=_MESSAGE.get((ev.proto, ev.type & (0xFF if ev.proto == "nft" else 0xFFFF)), ""))
            else:
                detail = dict(item.get("detail") or {})
                detail.setdefault("plugin", item.get("plugin", ""))
                detail["by"] = item.get("plugin", "")
                detail["pid"] = item.get("pid")
                self._add(str(item.get("action", "step")), str(item.get("what", "")),
                          self.kernel.last_before(t), t, **detail)

    def _lines(self) -> list[dict[str, Any]]:
        try:
            with open(self.trace_path, "rb") as f:
                f.seek(self._read)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1          # a line still being written waits for next time
        self._read += end
        out = []
        for raw in data[:end].splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def stop(self) -> None:
        self.collect()
        self._watch.__exit__(None, None, None)
        try:
            self.kernel.stop()
        finally:
            try:
                os.unlink(self.trace_path)
            except FileNotFoundError:
                pass


_MESSAGE = {("rtnl", 16): "RTM_NEWLINK", ("rtnl", 17): "RTM_DELLINK", ("rtnl", 20): "RTM_NEWADDR",
            ("rtnl", 21): "RTM_DELADDR", ("rtnl", 24): "RTM_NEWROUTE", ("rtnl", 25): "RTM_DELROUTE",
            ("nft", 3): "NFT_MSG_NEWCHAIN", ("nft", 5): "NFT_MSG_DELCHAIN",
            ("nft", 6): "NFT_MSG_NEWRULE", ("nft", 8): "NFT_MSG_DELRULE"}
