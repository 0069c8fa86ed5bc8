"""Our host-local against the CNI exec protocol and against upstream's host-local (Debian
containernetworking-plugins 1.1.1): same results, byte-identical state, one shared dataDir.

host-local needs no netns (CNI_NETNS=/dev/null, as in the cni.dev example), so these tests
touch only a private temp directory."""
from __future__ import annotations

import ipaddress
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from plugin_exec import run_plugin

from sandbox.net.plugins import plugin_dir


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_dir(tmp_path_factory.mktemp("bin")) / "host-local"


@pytest.fixture
def theirs(upstream_plugins: Path) -> Path:
    return upstream_plugins / "host-local"


def conf(data_dir: Path, version: str = "1.0.0", name: str = "sbxnet", **ipam: Any) -> dict[str, Any]:
    ipam = ipam or {"ranges": [[{"subnet": "10.123.0.0/29"}]]}
    return {"cniVersion": version, "name": name, "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": str(data_dir), **ipam}}


def add(exe: Path, c: dict[str, Any], cid: str, ifname: str = "eth0", **kw: Any):
    return run_plugin(exe, "ADD", c, cid=cid, ns="/dev/null", ifname=ifname, **kw)


def state(d: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a network directory: content bytes and mode."""
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) for p in sorted(d.iterdir())}


def test_add_writes_upstream_layout(ours: Path, tmp_path: Path) -> None:
    r = add(ours, conf(tmp_path, routes=[{"dst": "0.0.0.0/0"}],
                       ranges=[[{"subnet": "10.123.0.0/29"}], [{"subnet": "fd00:5::/120"}]]), "sbx-c1").ok()
    assert r == {"cniVersion": "1.0.0",
                 "ips": [{"address": "10.123.0.2/29", "gateway": "10.123.0.1"},
                         {"address": "fd00:5::2/120", "gateway": "fd00:5::1"}],
                 "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}
    d = tmp_path / "sbxnet"
    assert (d / "10.123.0.2").read_bytes() == b"sbx-c1\r\neth0"
    assert (d / "fd00:5::2").read_bytes() == b"sbx-c1\r\neth0"
    assert (d / "last_reserved_ip.0").read_bytes() == b"10.123.0.2"
    assert (d / "last_reserved_ip.1").read_bytes() == b"fd00:5::2"
    assert (d / "lock").read_bytes() == b""


def test_same_calls_give_identical_results_and_bytes(ours: Path, theirs: Path, tmp_path: Path) -> None:
    """Differential: one sequence of calls through each implementation, each in its own dataDir."""
    dirs = {}
    for label, exe in (("ours", ours), ("theirs", theirs)):
        dd = tmp_path / label
        c = conf(dd, ranges=[[{"subnet": "10.124.0.0/28", "rangeStart": "10.124.0.4", "rangeEnd": "10.124.0.6"},
                              {"subnet": "10.124.1.0/28", "gateway": "10.124.1.9"}]])
        outs = [add(exe, c, f"sbx-{i}").ok() for i in range(5)]
        assert run_plugin(exe, "DEL", c, cid="sbx-1").rc == 0
        outs.append(add(exe, c, "sbx-9").ok())
        outs.append(add(exe, c, "sbx-0").json)  # duplicate: an error
        dirs[label] = (outs, state(dd / "sbxnet"))
    ours_out, theirs_out = dirs["ours"][0], dirs["theirs"][0]
    assert ours_out[:-1] == theirs_out[:-1]
    assert [o["ips"][0]["address"] for o in ours_out[:6]] == [
        "10.124.0.4/28", "10.124.0.5/28", "10.124.0.6/28", "10.124.1.1/28", "10.124.1.2/28", "10.124.1.3/28"]
    assert ours_out[-1]["code"] == theirs_out[-1]["code"] == 999
    assert ours_out[-1]["msg"] == theirs_out[-1]["msg"]
    assert dirs["ours"][1] == dirs["theirs"][1]


def test_shared_data_dir_alternating(ours: Path, theirs: Path, tmp_path: Path) -> None:
    """Ours and upstream's allocate in turn from ONE dataDir: round-robin continues across
    them, each releases the other's files, each refuses the other's duplicate."""
    c = conf(tmp_path, ranges=[[{"subnet": "10.125.0.0/28"}]])
    got = [add(ours if i % 2 == 0 else theirs, c, f"sbx-{i}").ok()["ips"][0]["address"] for i in range(8)]
    assert got == [f"10.125.0.{i}/28" for i in range(2, 10)]
    d = tmp_path / "sbxnet"
    assert (d / "10.125.0.3").read_bytes() == b"sbx-1\r\neth0"      # written by upstream
    assert add(ours, c, "sbx-1").json["msg"].endswith("duplicate allocation is not allowed")
    assert add(theirs, c, "sbx-0").json["msg"].endswith("duplicate allocation is not allowed")
    assert run_plugin(ours, "DEL", c, cid="sbx-1").rc == 0          # ours frees upstream's
    assert run_plugin(theirs, "DEL", c, cid="sbx-0").rc == 0        # upstream frees ours
    assert not (d / "10.125.0.2").exists() and not (d / "10.125.0.3").exists()
    assert run_plugin(theirs, "CHECK", c, cid="sbx-2", ns="/dev/null").rc == 0       # upstream sees ours
    assert run_plugin(ours, "CHECK", c, cid="sbx-3", ns="/dev/null").rc == 0
    assert add(theirs, c, "sbx-a").ok()["ips"][0]["address"] == "10.125.0.10/28"


def test_exhaustion_is_a_clear_error(ours: Path, theirs: Path, tmp_path: Path) -> None:
    c = conf(tmp_path)
    for i in range(5):
        add(ours, c, f"sbx-{i}").ok()
    err = add(ours, c, "sbx-full")
    assert err.rc == 1
    e = err.json
    assert e["code"] == 999
    assert e["msg"] == "failed to allocate for range 0: no IP addresses available in range set: 10.123.0.1-10.123.0.6"
    assert "DEL" in e["details"]
    assert add(theirs, c, "sbx-full").json["msg"] == e["msg"]  # the same words as upstream
    assert sorted(p.name for p in (tmp_path / "sbxnet").iterdir() if p.name[0].isdigit()) == [
        f"10.123.0.{i}" for i in range(2, 7)]


def test_parallel_adds_get_distinct_ips(ours: Path, theirs: Path, tmp_path: Path) -> None:
    """16 concurrent ADDs (12 ours, 4 upstream's, all contending for the flock) -> 16 distinct IPs."""
    c = conf(tmp_path, ranges=[[{"subnet": "10.126.0.0/24"}]])
    with ThreadPoolExecutor(16) as pool:
        calls = list(pool.map(lambda i: add(theirs if i % 4 == 0 else ours, c, f"sbx-p{i}"), range(16)))
    ips = [call.ok()["ips"][0]["address"] for call in calls]
    assert len(set(ips)) == 16
    files = {p.name: p.read_bytes() for p in (tmp_path / "sbxnet").iterdir() if p.name[0].isdigit()}
    assert sorted(files) == sorted(ip.split("/")[0] for ip in ips)
    assert sorted(files.values()) == sorted(f"sbx-p{i}\r\neth0".encode() for i in range(16))


def test_del_twice_and_check(ours: Path, tmp_path: Path) -> None:
    c = conf(tmp_path)
    add(ours, c, "sbx-c").ok()
    assert run_plugin(ours, "CHECK", c, cid="sbx-c", ns="/dev/null").rc == 0
    for _ in range(2):
        d = run_plugin(ours, "DEL", c, cid="sbx-c")
        assert (d.rc, d.stdout) == (0, "")
    chk = run_plugin(ours, "CHECK", c, cid="sbx-c", ns="/dev/null")
    assert chk.rc == 1 and "Failed to find address" in chk.json["msg"]
    assert [p.name for p in (tmp_path / "sbxnet").iterdir() if p.name[0].isdigit()] == []


def test_gc_releases_stale_attachments(ours: Path, theirs: Path, tmp_path: Path) -> None:
    c = conf(tmp_path, version="1.1.0", ranges=[[{"subnet": "10.127.0.0/28"}]])
    c0 = conf(tmp_path, ranges=[[{"subnet": "10.127.0.0/28"}]])
    add(ours, c, "sbx-keep").ok()
    add(ours, c, "sbx-keep", ifname="eth1").ok()
    add(theirs, c0, "sbx-gone").ok()                          # a leak upstream cannot clean (#1047)
    add(ours, c, "sbx-gone2").ok()
    (tmp_path / "sbxnet" / "10.127.0.9").write_bytes(b"sbx-old")  # pre-0.8 format: ID only
    gc = dict(c, **{"cni.dev/valid-attachments": [{"containerID": "sbx-keep", "ifname": "eth0"}]})
    r = run_plugin(ours, "GC", gc)
    assert (r.rc, r.stdout) == (0, "")
    left = {p.name: p.read_bytes() for p in (tmp_path / "sbxnet").iterdir() if p.name[0].isdigit()}
    assert left == {"10.127.0.2": b"sbx-keep\r\neth0"}
    # GC is a 1.1.0 command: an older config is refused with code 1 (as the Go skel does)
    assert run_plugin(ours, "GC", dict(gc, cniVersion="1.0.0")).json["code"] == 1


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_result_shape_follows_config_version(ours: Path, theirs: Path, tmp_path: Path, version: str) -> None:
    r = add(ours, conf(tmp_path / "o", version=version), "sbx-v").ok()
    assert r["cniVersion"] == version
    has_version = version.startswith("0.")
    assert ("version" in r["ips"][0]) == has_version
    if version != "1.1.0":  # upstream 1.1.1 stops at 1.0.0
        assert r == add(theirs, conf(tmp_path / "t", version=version), "sbx-v").ok()


def test_errors_are_spec_errors(ours: Path, tmp_path: Path) -> None:
    c = conf(tmp_path)
    assert add(ours, dict(c, cniVersion="0.2.0"), "sbx-x").json["code"] == 1
    nov = add(ours, {k: v for k, v in c.items() if k != "cniVersion"}, "sbx-x").json
    assert nov["code"] == 1 and nov["msg"] == "the network configuration has no cniVersion"
    assert add(ours, b"{not json", "sbx-x").json["code"] == 6
    missing = run_plugin(ours, "ADD", c, cid="sbx-x", ns="")
    assert missing.rc == 1 and missing.json["code"] == 4 and "CNI_NETNS" in missing.json["msg"]
    assert add(ours, c, "sbx-x", args="FOO=bar").json["msg"] == 'ARGS: unknown args ["FOO=bar"]'
    assert add(ours, c, "sbx-x", args="IgnoreUnknown=1;FOO=bar;IP=10.123.0.5").ok()["ips"][0]["address"] == "10.123.0.5/29"
    assert add(ours, c, "sbx-y", args="IP=10.123.0.1").json["msg"].endswith("is subnet's gateway")
    bad = add(ours, conf(tmp_path, ranges=[[{"subnet": "10.1.0.0/31"}]]), "sbx-z").json
    assert "too small" in bad["msg"]
    v = run_plugin(ours, "VERSION", {"cniVersion": "1.1.0"}).ok()
    assert v == {"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_status(ours: Path, tmp_path: Path) -> None:
    r = run_plugin(ours, "STATUS", conf(tmp_path, version="1.1.0"))
    assert (r.rc, r.stdout) == (0, "")


def test_plugin_dir_launchers(tmp_path: Path) -> None:
    d = plugin_dir(tmp_path / "bin")
    assert sorted(os.listdir(d)) == ["bridge", "host-local", "loopback", "ptp"]
    (d / "ptp").write_text("stale")
    plugin_dir(d)
    assert os.access(d / "ptp", os.X_OK) and (d / "ptp").read_text().startswith("#!")
    for name in os.listdir(d):  # each launcher runs its plugin, with -I: the environment cannot steer it
        v = run_plugin(d / name, "VERSION", {"cniVersion": "1.0.0"}).ok()
        assert v["supportedVersions"][-1] == "1.1.0"
    # a runtime with a hostile or empty environment still gets a working plugin
    import subprocess
    cp = subprocess.run([str(d / "host-local")], input=b'{"cniVersion":"1.0.0"}', capture_output=True,
                        env={"CNI_COMMAND": "VERSION", "PYTHONPATH": str(tmp_path), "PYTHONHOME": "/nonexistent"})
    assert cp.returncode == 0 and b"supportedVersions" in cp.stdout


def test_requested_ip_and_duplicate(ours: Path, tmp_path: Path) -> None:
    c = conf(tmp_path)
    c["args"] = {"cni": {"ips": ["10.123.0.4"]}}
    assert add(ours, c, "sbx-r").ok()["ips"][0]["address"] == "10.123.0.4/29"
    taken = add(ours, c, "sbx-s").json
    assert "is not available in range set" in taken["msg"]
    assert ipaddress.ip_address("10.123.0.4") in ipaddress.ip_network("10.123.0.0/29")


def test_resolv_conf_dns_like_upstream(ours: Path, theirs: Path, tmp_path: Path) -> None:
    rc = tmp_path / "resolv.conf"
    rc.write_text("# test\nnameserver 10.1.0.53\nnameserver fd00::53\ndomain lab.example\n"
                  "search a.example b.example\noptions ndots:2 timeout:1\n")
    got = [add(exe, conf(tmp_path / label, resolvConf=str(rc), ranges=[[{"subnet": "10.128.0.0/24"}]]),
               "sbx-dns").ok() for label, exe in (("o", ours), ("t", theirs))]
    assert got[0] == got[1]
    assert got[0]["dns"] == {"nameservers": ["10.1.0.53", "fd00::53"], "domain": "lab.example",
                             "search": ["a.example", "b.example"], "options": ["ndots:2", "timeout:1"]}


def _differential(ours: Path, theirs: Path, base: Path, ipam: dict[str, Any],
                  ops: list[tuple[str, int, str]]) -> None:
    """Run ``ops`` in lockstep through both implementations; every answer and the final bytes
    on disk must be equal.

    Two deliberate differences are stepped around: a second ADD for an attachment that already
    holds addresses, with several range sets, can fail after allocating from an earlier set.
    Upstream then releases *every* address of that (container ID, ifname), including the ones
    the first ADD got; ours releases only what the failed call took. And DEL of a config whose
    ranges cannot be read (overlapping, a /33): ours releases by container ID and succeeds,
    upstream fails with the config error — the very error ours gives for CHECK."""
    confs = {"ours": conf(base / "ours", **ipam), "theirs": conf(base / "theirs", **ipam)}
    live: set[int] = set()
    for op, n, want in ops:
        if op == "ADD" and n in live and len(ipam["ranges"]) > 1:
            continue
        got = {}
        for label, exe in (("ours", ours), ("theirs", theirs)):
            r = run_plugin(exe, op, confs[label], cid=f"sbx-{n}", ns="/dev/null",
                           args=f"IP={want}" if want else "")
            got[label] = (r.rc, r.json and {k: v for k, v in r.json.items() if k not in ("details", "cniVersion")})
        if op == "DEL" and got["ours"][0] == 0 and got["theirs"][0] != 0:
            r = run_plugin(ours, "CHECK", confs["ours"], cid=f"sbx-{n}", ns="/dev/null")
            assert (r.rc, {k: v for k, v in r.json.items() if k not in ("details", "cniVersion")}) \
                == got["theirs"], (op, n, want)
            continue
        assert got["ours"] == got["theirs"], (op, n, want)
        if op == "ADD" and got["ours"][0] == 0:
            live.add(n)
        elif op == "DEL":
            live.discard(n)
    states = {}
    for label in confs:
        d = base / label / "sbxnet"
        states[label] = state(d) if d.exists() else {}
    assert states["ours"] == states["theirs"]


def test_random_sequences_match_upstream(ours: Path, theirs: Path, tmp_path: Path) -> None:
    """Property test: random ranges (start/end/gateway inside small subnets, one or two ranges
    per set, which may overlap), an optional IPv6 range set, and random ADD/DEL sequences (some
    ADDs asking for a specific IP) give the same answers and the same bytes on disk as
    upstream's host-local."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @st.composite
    def ranges(draw: Any) -> list[dict[str, str]]:
        out = []
        for _ in range(draw(st.integers(1, 2))):
            k = draw(st.integers(0, 1))
            r: dict[str, str] = {"subnet": f"10.{130 + k}.0.0/28"}
            lo = draw(st.integers(1, 14))
            hi = draw(st.integers(lo, 14))
            if draw(st.booleans()):
                r["rangeStart"], r["rangeEnd"] = f"10.{130 + k}.0.{lo}", f"10.{130 + k}.0.{hi}"
            if draw(st.booleans()):
                r["gateway"] = f"10.{130 + k}.0.{draw(st.integers(1, 14))}"
            out.append(r)
        return out

    ops = st.lists(st.tuples(st.sampled_from(["ADD", "ADD", "DEL"]), st.integers(0, 5),
                             st.sampled_from(["", "", "", "10.130.0.3", "10.130.0.1", "10.131.0.14"])),
                   min_size=1, max_size=8)
    counter = iter(range(10**6))

    @settings(max_examples=int(os.environ.get("SBX_HYPO_EXAMPLES", "12")), deadline=None, suppress_health_check=list(HealthCheck))
    @given(rs=ranges(), v6=st.booleans(), seq=ops)
    def check(rs: list[dict[str, str]], v6: bool, seq: list[tuple[str, int, str]]) -> None:
        sets = [rs] + ([[{"subnet": "fd00:130::/124"}]] if v6 else [])
        _differential(ours, theirs, tmp_path / str(next(counter)), {"ranges": sets}, seq)

    check()


def test_an_add_killed_half_way_leaves_no_reservation_a_del_cannot_free(ours: Path, tmp_path: Path) -> None:
    """A reservation is written whole under a temporary name and linked into place, so the one
    thing a SIGKILL can leave is that temporary file, which the DEL that follows removes."""
    import signal
    import subprocess
    import sys
    c = conf(tmp_path)
    d = tmp_path / "sbxnet"
    # SIGKILL at the moment the reservation's content is written (the file exists, empty):
    # os.write is wrapped in a fresh interpreter that runs the plugin's main
    code = ("import os, signal, sys\n"
            "write = os.write\n"
            "os.write = lambda fd, b: os.kill(os.getpid(), signal.SIGKILL) if b'sbx-k' in b "
            "else write(fd, b)\n"
            "from sandbox.net.plugins import host_local\n"
            "host_local.main()\n")
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "sbx-k", "CNI_NETNS": "/dev/null",
           "CNI_IFNAME": "eth0", "CNI_PATH": str(ours.parent)}
    import json
    p = subprocess.run([sys.executable, "-c", code], input=json.dumps(c).encode(), env=env,
                       capture_output=True)
    assert p.returncode == -signal.SIGKILL
    assert [f.name for f in d.iterdir() if f.name[0].isdigit()] == []    # no empty reservation
    assert run_plugin(ours, "DEL", c, cid="sbx-k").rc == 0
    assert sorted(f.name for f in d.iterdir()) == ["lock"]
    add(ours, c, "sbx-k").ok()
    assert sorted(f.name for f in d.iterdir()) == ["10.123.0.2", "last_reserved_ip.0", "lock"]
