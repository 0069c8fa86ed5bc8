"""Run a CNI plugin executable the raw way (env + stdin -> stdout, exit code), optionally
inside a node netns, and read kernel state back independently (``ip -j`` / ``iptables -S``
run inside a netns). Used by tests/net/test_plugin_*.py."""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.net import netns

UPSTREAM = Path("/usr/lib/cni")


@dataclass
class Call:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    def ok(self) -> Any:
        assert self.rc == 0, f"plugin failed rc={self.rc}: {self.stdout} {self.stderr}"
        return self.json


def run_plugin(exe: Path, command: str, conf: dict[str, Any] | bytes, *, cid: str = "",
               ns: str | os.PathLike[str] = "", ifname: str = "eth0",
               cni_path: str | os.PathLike[str] | None = None, args: str = "",
               node: Path | None = None, timeout: float = 60) -> Call:
    """Exec ``exe`` with the CNI environment; in ``node``'s netns when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=os.fspath(ns),
               CNI_IFNAME=ifname, CNI_PATH=os.fspath(cni_path or exe.parent))
    if args:
        env["CNI_ARGS"] = args
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    pre = netns.preexec_setns(node) if node is not None else None
    try:
        cp = subprocess.run([os.fspath(exe)], input=data, env=env, capture_output=True,
                            preexec_fn=pre, timeout=timeout)
    finally:
        if pre is not None:
            os.close(pre.fd)
    return Call(cp.returncode, cp.stdout.decode(), cp.stderr.decode())


def sh_in(ns: Path | None, *argv: str) -> str:
    """Run a command (``ip``, ``iptables``) inside ``ns`` and return stdout: the test's
    independent reading of kernel state."""
    cmd = ["nsenter", f"--net={ns}", *argv] if ns is not None else list(argv)
    for attempt in range(3):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout
        # a reading only: iptables-nft can refuse a listing while another process changes the
        # machine's rulesets (a cache generation race); ask again before failing with its words
        time.sleep(0.2 * (attempt + 1))
    raise AssertionError(f"{cmd} exited {p.returncode}: {p.stderr.strip()}")


def ip_json(ns: Path, *argv: str) -> Any:
    out = sh_in(ns, "ip", "-j", *argv)
    return json.loads(out) if out.strip() else []


def links(ns: Path) -> dict[str, dict[str, Any]]:
    return {l["ifname"]: l for l in ip_json(ns, "-d", "link", "show")}


def addrs(ns: Path, ifname: str) -> list[str]:
    out = ip_json(ns, "addr", "show", "dev", ifname)
    return [f"{a['local']}/{a['prefixlen']}" for a in out[0]["addr_info"]] if out else []


def nat_rules(ns: Path) -> list[str]:
    return [l for l in sh_in(ns, "iptables", "-w", "-t", "nat", "-S").splitlines()
            if not l.startswith("-P")]


def with_prev(conf: dict[str, Any], result: Any) -> dict[str, Any]:
    """The config a runtime sends for CHECK/DEL: the cached ADD result as prevResult."""
    return dict(conf, prevResult=result)


def strip_volatile(result: dict[str, Any]) -> dict[str, Any]:
    """A result without what differs between two runs: MACs, random host veth names, netns paths."""
    out = json.loads(json.dumps(result))
    for itf in out.get("interfaces", []):
        itf.pop("mac", None)
        if itf.get("name", "").startswith("veth"):
            itf["name"] = "veth*"
        if "sandbox" in itf:
            itf["sandbox"] = "<netns>"
    return out


def sysctl_in(ns: Path, key: str) -> str:
    return sh_in(ns, "cat", "/proc/sys/" + key.replace(".", "/")).strip()


def tcp_hello(server_ns: Path, client_ns: Path, ip: str, port: int = 5555) -> str:
    """Start a one-shot TCP server in ``server_ns``, connect from ``client_ns`` to ``ip``;
    return what the client received (traffic stays between two test namespaces)."""
    import sys
    server = subprocess.Popen(
        ["nsenter", f"--net={server_ns}", sys.executable, "-c",
         "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
         f"s.bind(('0.0.0.0', {port})); s.listen(); s.settimeout(20); c, a = s.accept();"
         "c.sendall(('hello from ' + c.getsockname()[0]).encode()); c.close()"])
    try:
        client = ("import socket, time\n"
                  "for i in range(100):\n"
                  "    try:\n"
                  f"        s = socket.create_connection(('{ip}', {port}), timeout=2); break\n"
                  "    except ConnectionRefusedError:\n"
                  "        time.sleep(0.05)\n"
                  "print(s.recv(100).decode())\n")
        return subprocess.run(["nsenter", f"--net={client_ns}", sys.executable, "-c", client],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    finally:
        server.kill()
        server.wait()
