"""The kit's CNI plugins as programs: random and mutated stdin and environments, each exec in a
network namespace of its own (unshare in the child: whatever a plugin gets to make is gone when
it exits) with host-local's dataDir forced into a temporary directory. The answer must always
be the protocol's: on failure an error JSON with an integer code on stdout, on success a JSON
document (or nothing, for DEL/CHECK/GC/STATUS); never a traceback on stderr.

The runtime side (network configuration files) is fuzzed in-process: only ConfError."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from sandbox._sys import libc
from sandbox.net.cni.conf import NetworkConfig
from sandbox.net.plugins import plugin_dir

from .conftest import budget
from .kit import mutated_json, only_kit_errors, shown

SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999}
COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]
HOST_LOCAL = {"type": "host-local", "subnet": "10.96.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "10.95.0.0/24", "rangeStart": "10.95.0.10",
                           "rangeEnd": "10.95.0.20", "gateway": "10.95.0.1"}]],
              "resolvConf": "/etc/resolv.conf"}
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:05",
                                               "sandbox": "/proc/self/ns/net"}],
        "ips": [{"address": "10.96.0.5/24", "gateway": "10.96.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.96.0.1"}],
        "dns": {"nameservers": ["10.96.0.1"]}}
CONFIGS = {
    "host-local": {"cniVersion": "1.0.0", "name": "sbxsifuzz", "type": "host-local",
                   "ipam": HOST_LOCAL, "args": {"cni": {"ips": ["10.96.0.7"]}},
                   "runtimeConfig": {"ips": ["10.96.0.8"]}},
    "bridge": {"cniVersion": "1.0.0", "name": "sbxsifuzz", "type": "bridge", "bridge": "sbxsifz0",
               "isGateway": True, "ipMasq": True, "mtu": 1400, "hairpinMode": False,
               "ipam": HOST_LOCAL, "dns": {"nameservers": ["10.96.0.1"]}, "prevResult": PREV},
    "ptp": {"cniVersion": "1.0.0", "name": "sbxsifuzz", "type": "ptp", "ipMasq": True,
            "mtu": 1400, "ipam": HOST_LOCAL, "prevResult": PREV},
    "loopback": {"cniVersion": "1.0.0", "name": "sbxsifuzz", "type": "loopback", "prevResult": PREV},
}


@pytest.fixture(scope="module")
def bins() -> Path:
    return plugin_dir()


def force_data_dir(stdin: bytes, data: Path) -> bytes:
    """host-local must only ever write under ``data``: set every ipam.dataDir there."""
    try:
        doc = json.loads(stdin)
    except ValueError:
        return stdin
    if isinstance(doc, dict) and isinstance(doc.get("ipam"), dict):
        doc["ipam"]["dataDir"] = str(data)
        return json.dumps(doc).encode()
    if isinstance(doc, dict) and "ipam" in doc:
        return stdin
    return stdin


def run_plugin(exe: Path, stdin: bytes, env: dict[str, str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="sbx-fuzz-cni-"))
    try:
        stdin = force_data_dir(stdin, work / "data")
        full = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **env,
                "CNI_PATH": str(exe.parent)}
        note(f"exec {exe.name} env={shown(env)} stdin={shown(stdin)}")
        cp = subprocess.run([str(exe)], input=stdin, env=full, capture_output=True, cwd=work,
                            timeout=60, preexec_fn=lambda: libc.unshare(libc.CLONE_NEWNET))
        out, err = cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")
        assert "Traceback" not in err, err
        if cp.returncode != 0:
            doc = json.loads(out)
            assert isinstance(doc, dict) and doc.get("code") in SPEC_CODES, out
            assert isinstance(doc.get("msg"), str) and doc["msg"], out
        elif out.strip():
            assert isinstance(json.loads(out), dict), out
        made = [p for p in work.rglob("*") if not str(p).startswith(str(work / "data"))]
        assert made == [], f"the plugin wrote outside its dataDir: {made}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


ENV_VALUES = {
    "CNI_COMMAND": st.sampled_from(COMMANDS) | st.text(max_size=8),
    "CNI_CONTAINERID": st.sampled_from(["sbxsi1", "", "a b", "../x", "x" * 300]) | st.text(max_size=10),
    "CNI_NETNS": st.sampled_from(["", "/run/netns/sbx-si-no-such", "/proc/self/ns/net", "relative",
                                  "/dev/null"]),
    "CNI_IFNAME": st.sampled_from(["eth0", "", "x" * 16, "a/b", "lo", "eth0:1"]) | st.text(max_size=6),
    "CNI_ARGS": st.sampled_from(["", "IgnoreUnknown=1;IP=10.96.0.9", "IP=x", "junk", "K=V;;="])
    | st.text(max_size=12),
}


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    env = {k: draw(v) for k, v in ENV_VALUES.items() if draw(st.integers(0, 5))}
    return {k: v for k, v in env.items() if "\0" not in v}


@budget(25)
@pytest.mark.root
@pytest.mark.parametrize("plugin", sorted(CONFIGS))
@given(st.data())
def test_plugins_answer_mutated_configs_with_the_protocol(plugin: str, bins: Path,
                                                          data: st.DataObject) -> None:
    stdin = data.draw(mutated_json(CONFIGS[plugin]))
    env = data.draw(environments())
    env.setdefault("CNI_COMMAND", data.draw(st.sampled_from(COMMANDS)))
    run_plugin(bins / plugin, stdin, env)


@budget(8)
@pytest.mark.root
@pytest.mark.parametrize("plugin", sorted(CONFIGS))
@given(st.binary(max_size=200), environments())
def test_plugins_answer_random_bytes_with_the_protocol(plugin: str, bins: Path, stdin: bytes,
                                                       env: dict[str, str]) -> None:
    run_plugin(bins / plugin, stdin, env)


@budget(150)
@given(st.one_of(mutated_json({"cniVersion": "1.0.0", "name": "sbxsifuzz", "disableCheck": False,
                               "plugins": [CONFIGS["bridge"], {"type": "portmap",
                                                               "capabilities": {"portMappings": True}}]}),
                 mutated_json(CONFIGS["host-local"]), st.binary(max_size=100)))
def test_network_configuration_files(stdin: bytes) -> None:
    only_kit_errors(NetworkConfig.from_bytes, stdin, show=stdin)
