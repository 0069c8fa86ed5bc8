"""The CNI runtime facing bad input: configuration files and what plugins print. Every case is
a one-sentence error (ConfError, CniError), and a failed ADD gives back what the plugins before
the failure took: host-local's reservation is released by the DEL the runtime runs (SPEC.md §3).

Before: a plugin that succeeded without a result (or printed a non-object) failed the ADD without
the DEL, so the address stayed reserved; an error whose code was not a number, deep JSON on
stdout, or ``capabilities`` that was not an object were Python tracebacks.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from sandbox.errors import SandboxError
from sandbox.net.cni.conf import ConfError, NetworkConfig
from sandbox.net.cni.errors import CniError
from sandbox.net.cni.invoke import exec_plugin
from sandbox.net.cni.runtime import Runtime
from sandbox.net.plugins import plugin_dir


def fake_plugin(d: Path, name: str, body: str) -> Path:
    p = d / name
    p.write_text("#!/bin/sh\ncat >/dev/null\n" + textwrap.dedent(body))
    p.chmod(0o755)
    return p


def chain(tmp_path: Path, second: str) -> tuple[Runtime, Path]:
    """A network: the kit's host-local as the first plugin (it reserves an address in a dataDir
    under tmp_path), then the fake plugin ``second``."""
    bins = tmp_path / "bin"
    bins.mkdir(exist_ok=True)
    kit = plugin_dir()
    (bins / "host-local").symlink_to(kit / "host-local")
    fake_plugin(bins, "second", second)
    data = tmp_path / "data"
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "10-sbxsi.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "sbxsichain", "plugins": [
            {"type": "host-local", "ipam": {"type": "host-local", "subnet": "10.97.0.0/24",
                                            "dataDir": str(data)}},
            {"type": "second"}]}))
    return Runtime(conf_dir=conf, cni_path=[str(bins)], cache_dir=tmp_path / "cache"), data


def reserved(data: Path) -> list[str]:
    d = data / "sbxsichain"
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit() and "." in p.name
                  and not p.name.startswith("last")) if d.is_dir() else []


@pytest.mark.root  # ADD enters the netns (setns) to look for the interface
@pytest.mark.parametrize("second, why", [
    ("exit 0\n", "printed no result"),
    ("echo '[1, 2]'; exit 0\n", "not an object"),
    ("printf '%s' \"$(printf '[%.0s' $(seq 1 3000))\"; exit 0\n", "nested deeper"),
    ("echo '{\"code\": \"abc\", \"msg\": \"x\"}'; exit 1\n", "printed no error JSON"),
    ("echo '{\"code\": 7, \"msg\": \"refused\"}'; exit 1\n", "refused"),
], ids=["no-result", "array", "deep", "code-not-a-number", "plain-error"])
def test_a_failed_add_releases_what_earlier_plugins_reserved(tmp_path: Path, second: str,
                                                             why: str) -> None:
    rt, data = chain(tmp_path, second)
    with pytest.raises(CniError, match=why):
        rt.add("sbxsichain", "/proc/self/ns/net", container_id="sbxsi7", ifname="sbxsinone0")
    assert reserved(data) == [], "the failed ADD left its address reserved"
    assert rt.cache.attachments(container_id="sbxsi7") == []


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000, "nested deeper"),
    ('{"name": "n", "cniVersion": "1.0.0", "type": "bridge", "mtu": 1e999}', "64-bit float"),
    ('{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "bridge", "capabilities": []}]}',
     "capabilities"),
    ('{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "bridge", '
     '"capabilities": {"portMappings": "yes"}}]}', "capabilities"),
    ("\xff", "not valid JSON"),
    ('{"name": 5}', "name"),
])
def test_bad_configuration_files_are_conf_errors(tmp_path: Path, text: str, why: str) -> None:
    p = tmp_path / "10-bad.conflist"
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfError, match=why) as e:
        NetworkConfig.from_file(p)
    assert "\n" not in str(e.value)


def test_a_huge_configuration_file_is_refused_before_parsing(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "10-big.conf"
    p.write_text(json.dumps({"name": "n", "cniVersion": "1.0.0", "type": "bridge",
                             "pad": "x" * (2 << 20)}))
    with pytest.raises(ConfError, match="CNI_CONFIG_BYTES"):
        NetworkConfig.from_file(p)
    monkeypatch.setenv("SANDBOX_MAX_CNI_CONFIG_BYTES", "4M")
    assert NetworkConfig.from_file(p).name == "n"


def test_a_directory_named_like_a_config_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "10-dir.conf").mkdir()
    with pytest.raises(SandboxError):
        NetworkConfig.from_file(tmp_path / "10-dir.conf")


def test_garbage_in_the_result_cache_is_skipped(tmp_path: Path) -> None:
    rt = Runtime(conf_dir=tmp_path, cni_path=[], cache_dir=tmp_path / "cache")
    d = tmp_path / "cache" / "results"
    d.mkdir(parents=True)
    (d / "n-c1-eth0").write_text("[" * 100_000)
    (d / "n-c2-eth0").write_text(json.dumps({"kind": "cniCacheV1", "networkName": 5,
                                             "containerId": "c2", "ifName": "eth0"}))
    assert rt.cache.attachments() == []


def test_a_plugin_error_code_that_is_not_a_number_is_a_cni_error(tmp_path: Path) -> None:
    p = fake_plugin(tmp_path, "odd", "echo '{\"code\": [1], \"msg\": \"x\"}'; exit 1\n")
    with pytest.raises(CniError, match="printed no error JSON"):
        exec_plugin(p, "DEL", "{}")


GOOD_SECOND = "echo '{\"cniVersion\": \"1.0.0\", \"ips\": [], \"interfaces\": []}'; exit 0\n"


@pytest.mark.root  # ADD enters the netns (setns) to look for the interface
def test_a_cache_dir_that_cannot_be_written_is_refused_before_any_plugin_runs(tmp_path: Path) -> None:
    """`sandbox net add --cache-dir FILE` (a file, a device, a read-only directory): the plugins
    ran, then the cache write was a NotADirectoryError — "failed inside the kit", exit 70 — with
    the address reserved and nothing cached for a DEL to find. Now one sentence, before ADD."""
    rt, data = chain(tmp_path, GOOD_SECOND)
    for bad in (tmp_path / "a-file",):
        bad.touch()
        rt.cache = type(rt.cache)(bad)
        with pytest.raises(SandboxError, match="result cache"):
            rt.add("sbxsichain", "/proc/self/ns/net", container_id="sbxsi8", ifname="sbxsinone0")
        assert reserved(data) == []
        rt.delete("sbxsichain", "/proc/self/ns/net", container_id="sbxsi8", ifname="sbxsinone0")


@pytest.mark.root
def test_a_result_that_cannot_be_cached_is_undone(tmp_path: Path, monkeypatch) -> None:
    """A cache write that fails after the plugins' ADD (a full disk, the directory made
    read-only meanwhile): the runtime runs DEL, as for a failed ADD (SPEC.md §3)."""
    from sandbox.net.cni.cache import Cache
    rt, data = chain(tmp_path, GOOD_SECOND)
    (tmp_path / "a-file").touch()
    rt.cache = Cache(tmp_path / "a-file")
    monkeypatch.setattr(Cache, "ensure", lambda self: None, raising=False)
    with pytest.raises(SandboxError, match="result cache"):
        rt.add("sbxsichain", "/proc/self/ns/net", container_id="sbxsi9", ifname="sbxsinone0")
    assert reserved(data) == [], "the uncached ADD left its address reserved"
