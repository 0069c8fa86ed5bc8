"""CNI runtime, the parts that need no kernel: versions and result conversion, configuration
loading, the libcni-compatible cache, the per-plugin stdin, and the exec protocol (driven
through small fake plugins written here, so every variable and byte is visible)."""
from __future__ import annotations

import base64
import json
import stat
import textwrap
from pathlib import Path

import pytest

from sandbox.net.cni import (
    Attachment,
    Cache,
    CniError,
    ConfError,
    NetworkConfig,
    Runtime,
    convert_result,
    exec_plugin,
    explain,
    load,
    load_all,
)
from sandbox.net.cni import version as cniversion
from sandbox.net.cni.invoke import PluginNotFoundError, args_pairs, args_string
from sandbox.steps import Steps

R100 = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "br0", "mac": "aa:bb:cc:dd:ee:01"},
                       {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/x"}],
        "ips": [{"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"interface": 1, "address": "fd00::5/64"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}],
        "dns": {"nameservers": ["10.1.0.1"]}}


# -- versions --------------------------------------------------------------------------------

def test_1x_to_0x_adds_ip_versions_and_back_removes_them() -> None:
    r031 = convert_result(R100, "0.3.1")
    assert r031["cniVersion"] == "0.3.1"
    assert [ip["version"] for ip in r031["ips"]] == ["4", "6"]
    assert R100["ips"][0].get("version") is None          # input untouched
    back = convert_result(r031, "1.0.0")
    assert back == R100


def test_legacy_results_are_read_and_upconverted() -> None:
    legacy = {"cniVersion": "0.1.0", "ip4": {"ip": "10.10.0.2/16", "gateway": "10.10.0.1",
                                             "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}}
    up = convert_result(legacy, "1.0.0")
    assert up == {"cniVersion": "1.0.0", "ips": [{"address": "10.10.0.2/16", "gateway": "10.10.0.1"}],
                  "routes": [{"dst": "0.0.0.0/0"}]}
    down = convert_result(R100, "0.2.0")
    assert down["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]}
    assert down["ip6"] == {"ip": "fd00::5/64", "routes": [{"dst": "::/0", "gw": "fd00::1"}]}


def test_version_ordering() -> None:
    assert cniversion.at_least("1.1.0", "0.4.0") and not cniversion.at_least("0.3.1", "0.4.0")
    assert cniversion.highest(["0.4.0", "1.1.0", "1.0.0"]) == "1.1.0"
    assert cniversion.parse("") == (0, 1, 0)                  # no cniVersion = 0.1.0
    with pytest.raises(ValueError):
        cniversion.parse("1.0")
    # digits int() takes but a version does not have: the version's own sentence, not int()'s
    for bad in ("1.\u00b2.0", "1.0." + "9" * 5000, "1. 0.0", "1.+0.0", "1.0_0.0"):
        with pytest.raises(ValueError, match="is not a CNI version"):
            cniversion.parse(bad)


# -- configuration ---------------------------------------------------------------------------

def test_conf_dir_lexical_order_first_file_wins(tmp_path: Path) -> None:
    (tmp_path / "20-b.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}, {"type": "tuning"}]}))
    (tmp_path / "10-a.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "a", "type": "ptp"}))
    (tmp_path / "30-a.json").write_text(json.dumps({"cniVersion": "1.0.0", "name": "a", "type": "bridge"}))
    (tmp_path / "README.txt").write_text("not a config")
    nets = load_all(tmp_path)
    assert [(n.name, n.source.name) for n in nets] == [("a", "10-a.conf"), ("b", "20-b.conflist")]
    assert load("b", tmp_path).types == ["bridge", "tuning"]
    with pytest.raises(ConfError, match="No network named 'zzz'.*networks there: a, b"):
        load("zzz", tmp_path)


def test_single_conf_is_upconverted_like_libcni() -> None:
    # the slide's file: no cniVersion at all
    slide = b'{\n"name": "mynet",\n"type": "bridge",\n"ipam": {\n"type": "host-local",\n"subnet": "10.10.0.0/16"\n}\n}'
    net = NetworkConfig.from_bytes(slide)
    assert net.cni_version == "" and net.effective_version == "0.1.0"
    # Go marshals a map with sorted keys, compact: that is what libcni caches
    assert net.bytes == (b'{"cniVersion":"","name":"mynet","plugins":[{"ipam":{"subnet":"10.10.0.0/16",'
                         b'"type":"host-local"},"name":"mynet","type":"bridge"}]}')


def test_cni_versions_pick_the_highest_the_runtime_speaks() -> None:
    net = NetworkConfig.from_obj({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "1.1.0", "9.9.9"],
                                  "name": "n", "plugins": [{"type": "x"}]})
    assert net.cni_version == "1.1.0"


@pytest.mark.parametrize("body, match", [
    ("{nope", "not valid JSON"),
    ('{"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}', 'needs a "name"'),
    ('{"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}', 'needs a "type"'),
    ('{"cniVersion": "1.0.0", "name": "n", "plugins": []}', "non-empty list"),
    ('{"cniVersion": "2.0.0", "name": "n", "type": "x"}', "does not speak"),
    ('{"cniVersion": "1.0", "name": "n", "type": "x"}', "not a CNI version"),
])
def test_bad_configs_are_clear_errors(tmp_path: Path, body: str, match: str) -> None:
    f = tmp_path / "10-bad.conflist"
    f.write_text(body)
    with pytest.raises(ConfError, match=match) as e:
        load_all(tmp_path)
    assert "10-bad.conflist" in str(e.value) or "name" in match


# -- the per-plugin stdin -------------------------------------------------------------------------

def test_plugin_config_injects_name_version_prevresult_and_runtimeconfig() -> None:
    net = NetworkConfig.from_obj({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "bridge", "capabilities": {"mac": True, "ips": False}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]})
    rt = Runtime(cni_path=[])
    caps = {"mac": "c2:11:22:33:44:55", "ips": ["10.0.0.9/24"], "portMappings": [{"hostPort": 80}]}
    first = json.loads(rt.plugin_config(net, net.plugins[0], "1.0.0", None, caps))
    assert first["name"] == "n" and first["cniVersion"] == "1.0.0"
    assert first["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}   # ips declared false
    assert "prevResult" not in first
    second = json.loads(rt.plugin_config(net, net.plugins[1], "1.0.0", R100, caps))
    assert second["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert second["prevResult"] == R100
    none = json.loads(rt.plugin_config(net, net.plugins[0], "1.0.0", None, None))
    assert "runtimeConfig" not in none


def test_cni_args_forms() -> None:
    assert args_string({"IgnoreUnknown": "1", "IP": "10.0.0.7"}) == "IgnoreUnknown=1;IP=10.0.0.7"
    assert args_pairs("A=1;B=x=y") == [["A", "1"], ["B", "x=y"]]
    with pytest.raises(Exception, match="KEY=VALUE"):
        args_pairs("oops")


# -- cache --------------------------------------------------------------------------------

def test_cache_file_is_libcni_cniCacheV1(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    conf = b'{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}'
    p = c.put(Attachment(network="n", container_id="c1", ifname="eth0", netns="/run/netns/c1",
                         config=conf, cni_args=[["IgnoreUnknown", "1"]], result=R100))
    assert p == tmp_path / "results" / "n-c1-eth0"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    doc = json.loads(p.read_bytes())
    assert list(doc) == ["kind", "containerId", "config", "ifName", "networkName", "netns",
                         "cniArgs", "result"]                       # libcni's field order
    assert doc["kind"] == "cniCacheV1" and base64.b64decode(doc["config"]) == conf
    assert doc["result"] == R100 and "capabilityArgs" not in doc    # omitempty
    got = c.get("n", "c1", "eth0")
    assert got is not None and got.result == R100 and got.config == conf
    assert [a.container_id for a in c.attachments()] == ["c1"]
    assert c.attachments(container_id="zz") == []
    assert c.delete("n", "c1", "eth0") and not p.exists() and not c.delete("n", "c1", "eth0")


def test_cache_ignores_foreign_files(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "n-c-eth0").write_text('{"kind": "somethingElse"}')
    (tmp_path / "results" / "junk").write_text("not json")
    assert c.attachments() == [] and c.get("n", "c", "eth0") is None


# -- the exec protocol, with fake plugins -------------------------------------------------------

def fake_plugin(d: Path, name: str, body: str) -> Path:
    p = d / name
    p.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    p.chmod(0o755)
    return p


def test_env_stdin_stdout_and_stderr_of_one_exec(tmp_path: Path) -> None:
    p = fake_plugin(tmp_path, "echoer", """\
        echo "logging to stderr" >&2
        stdin=$(cat)
        printf '{"cniVersion":"1.0.0","env":"%s|%s|%s|%s|%s|%s","stdin":%s}' \
          "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$stdin"
        """)
    calls: list = []
    steps = Steps()
    out = exec_plugin(p, "ADD", '{"a": 1}', container_id="c1", netns="/run/netns/c1",
                      ifname="eth0", args="K=V", cni_path=[str(tmp_path), "/x"], log=calls,
                      steps=steps)
    assert out == {"cniVersion": "1.0.0", "env": f"ADD|c1|/run/netns/c1|eth0|K=V|{tmp_path}:/x",
                   "stdin": {"a": 1}}
    assert calls[0].stderr == "logging to stderr\n" and calls[0].exit_code == 0
    text = explain(calls)
    assert "CNI_COMMAND=ADD" in text and "logging to stderr" in text and "exit:   0" in text
    assert explain(steps) == text                       # the recorded step says the same


def test_error_json_is_surfaced_with_code_msg_details_and_a_sentence(tmp_path: Path) -> None:
    p = fake_plugin(tmp_path, "failer", """\
        cat >/dev/null
        echo '{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"10.0.0.0/33"}'
        echo "it broke" >&2
        exit 1
        """)
    with pytest.raises(CniError) as e:
        exec_plugin(p, "ADD", "{}", network="n")
    err = e.value
    assert (err.code, err.msg, err.details, err.stderr) == (7, "bad subnet", "10.0.0.0/33", "it broke\n")
    assert "CNI error 7 (invalid network configuration)" in str(err)
    assert "fix the .conf/.conflist file" in str(err)


def test_failure_without_json_is_explained(tmp_path: Path) -> None:
    p = fake_plugin(tmp_path, "crasher", "echo 'panic: nil map' >&2; exit 2\n")
    with pytest.raises(CniError, match="exited with status 2 and printed no error JSON") as e:
        exec_plugin(p, "DEL", "{}")
    assert "panic: nil map" in e.value.details


def test_plugin_not_in_path(tmp_path: Path) -> None:
    rt = Runtime(conf_dir=tmp_path, cni_path=[str(tmp_path)])
    with pytest.raises(PluginNotFoundError, match='failed to find plugin "bridge"'):
        rt.plugin_path("bridge")


@pytest.mark.root  # ADD enters the netns (setns) to look for the interface
def test_chain_passes_prevresult_and_del_runs_in_reverse(tmp_path: Path) -> None:
    """Two fake plugins that log their command and stdin: prevResult flows ADD 1 -> ADD 2; DEL
    runs 2 then 1 with the cached result; CHECK runs 1 then 2 with it."""
    logf = tmp_path / "log"
    for n in ("one", "two"):
        fake_plugin(tmp_path, n, f"""\
            stdin=$(cat)
            echo "{n} $CNI_COMMAND $stdin" >> {logf}
            [ "$CNI_COMMAND" = ADD ] && printf '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.%s/24"}}]}}' \
              {1 if n == "one" else 2}
            exit 0
            """)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "10-chain.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "chain", "plugins": [{"type": "one"}, {"type": "two"}]}))
    # a netns is needed for ADD's checks: use our own (/proc/self/ns/net) and an unused ifname
    rt = Runtime(conf_dir=conf, cni_path=[str(tmp_path)], cache_dir=tmp_path / "cache")
    res = rt.add("chain", "/proc/self/ns/net", container_id="c9", ifname="sbxnone0")
    assert res["ips"] == [{"address": "10.9.0.2/24"}]
    rt.check("chain", "/proc/self/ns/net", container_id="c9", ifname="sbxnone0")
    rt.delete("chain", "/proc/self/ns/net", container_id="c9", ifname="sbxnone0")
    lines = [l.split(" ", 2) for l in logf.read_text().splitlines()]
    assert [(n, c) for n, c, _ in lines] == [("one", "ADD"), ("two", "ADD"), ("one", "CHECK"),
                                             ("two", "CHECK"), ("two", "DEL"), ("one", "DEL")]
    stdins = [json.loads(s) for _, _, s in lines]
    assert "prevResult" not in stdins[0]
    assert stdins[1]["prevResult"]["ips"] == [{"address": "10.9.0.1/24"}]
    for s in stdins[2:]:                      # CHECK and DEL get the cached (final) result
        assert s["prevResult"]["ips"] == [{"address": "10.9.0.2/24"}]
    assert all(s["name"] == "chain" and s["cniVersion"] == "1.0.0" for s in stdins)
    assert not (tmp_path / "cache" / "results" / "chain-c9-sbxnone0").exists()
