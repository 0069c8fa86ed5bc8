"""Real pods as root: the seed pod, exit codes, logs, volumes, env, user, hooks, --net modes,
metadata, isolators, and nothing left behind after gc."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from sandbox.image.store import Store
from sandbox.net import netns
from sandbox.pod import cgroups
from sandbox.pod import stage0 as pod
from waiting import eventually

pytestmark = pytest.mark.root


def run_pod(store: Store, images: list[str], stop_pods: list[str], **kw) -> str:
    p = pod.prepare(store, images, **kw)
    stop_pods.append(p.uuid)
    pod.run_prepared(p.uuid)
    return p.uuid


def sh(cmd: str) -> dict[int, list[str]]:
    return {0: ["/bin/sh", "-c", cmd]}


def out(uuid: str, app: str) -> str:
    return pod.logs(uuid, app)[app]["stdout"]


def wait_for(pred, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def http_get(node: str, ip: str, port: int) -> str:
    """GET / from inside a node netns ("" when nothing answers yet): a socket opened in the
    netns stays there."""
    import urllib.request

    def work() -> str:
        with netns.enter(node):
            try:
                with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as r:
                    return r.read().decode()
            except OSError:
                return ""
    return netns.in_thread(work)


def enter(uuid: str, app: str, cmd: str) -> str:
    p = pod.enter(uuid, app, ["/bin/sh", "-c", cmd], capture=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_seed_pod_apps_share_localhost_but_not_filesystems(store: Store, stop_pods) -> None:
    p = pod.run(store, ["example.com/reduce-worker", "example.com/worker-backup",
                        "example.com/reduce-worker-register"], detach=True)
    stop_pods.append(p.uuid)
    st = wait_for(lambda: (s := pod.status(p.uuid)) and any(
        a["name"] == "reduce-worker-register" and a.get("exitCode") == 0 for a in s["apps"]) and s,
        what="reduce-worker-register to register over 127.0.0.1")
    assert "registered" in out(p.uuid, "reduce-worker-register")
    assert {a["name"]: a["state"] for a in st["apps"]} == {
        "reduce-worker": "running", "worker-backup": "running", "reduce-worker-register": "exited"}
    # reduce-worker's HTTP server is reachable on localhost from another app of the pod
    page = enter(p.uuid, "worker-backup", "wget -q -O - http://127.0.0.1:8080/")
    assert "reduce-worker" in page
    # each app sees its own filesystem
    assert enter(p.uuid, "reduce-worker", "test -d /opt/reduce-worker && echo yes").strip() == "yes"
    assert enter(p.uuid, "worker-backup", "test -e /opt/reduce-worker || echo absent").strip() == "absent"
    # one UTS and one PID namespace: same hostname, and each sees the other's processes
    assert enter(p.uuid, "reduce-worker", "hostname") == enter(p.uuid, "worker-backup", "hostname")
    assert "worker-backup/run" in enter(p.uuid, "reduce-worker", "ps")
    # but separate mount namespaces
    ino = lambda app: enter(p.uuid, app, "readlink /proc/self/ns/mnt").strip()  # noqa: E731
    assert ino("reduce-worker") != ino("worker-backup")
    pod.stop(p.uuid)
    assert pod.status(p.uuid)["state"] == "exited-garbage"


def test_exit_code_and_separate_logs(store: Store, stop_pods) -> None:
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=["none"],
                exec_=sh("echo to-stdout; echo to-stderr >&2; exit 7"))
    st = pod.status(u)
    assert st["exitCode"] == 7 and st["apps"][0]["exitCode"] == 7
    logs = pod.logs(u)["busybox"]
    assert logs == {"stdout": "to-stdout\n", "stderr": "to-stderr\n"}


def test_environment_and_pid1(store: Store, stop_pods, make_image) -> None:
    img = make_image({"exec": ["/bin/sh", "-c", "env; echo pid1=$(cat /proc/1/comm)"],
                      "environment": [{"name": "FROM_IMAGE", "value": "yes"}]})
    u = run_pod(store, [img], stop_pods, net=["none"])
    env = dict(l.split("=", 1) for l in out(u, pod.status(u)["apps"][0]["name"]).splitlines()
               if "=" in l and not l.startswith("pid1"))
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["AC_APP_NAME"] == pod.status(u)["apps"][0]["name"]
    assert env["AC_METADATA_URL"].startswith("http://127.0.0.1:")
    assert env["container"] == "sandbox" and env["FROM_IMAGE"] == "yes"


def test_user_group_by_name_and_working_directory(store: Store, stop_pods, make_image) -> None:
    img = make_image({"exec": ["/bin/sh", "-c", "id -u; id -g; pwd"], "user": "lab",
                      "group": "labgroup", "workingDirectory": "/srv"},
                     files={"/etc/passwd": "root:x:0:0::/root:/bin/sh\nlab:x:1234:4321::/:/bin/sh\n",
                            "/etc/group": "root:x:0:\nlabgroup:x:4321:\n", "/srv/.keep": ""})
    u = run_pod(store, [img], stop_pods, net=["none"])
    assert out(u, pod.status(u)["apps"][0]["name"]).split() == ["1234", "4321", "/srv"]


def test_missing_working_directory_fails_the_app(store: Store, stop_pods, make_image) -> None:
    img = make_image({"exec": ["/bin/true"], "workingDirectory": "/does/not/exist"})
    u = run_pod(store, [img], stop_pods, net=["none"])
    app = pod.status(u)["apps"][0]
    assert app["exitCode"] != 0


def test_hooks_and_volumes(store: Store, stop_pods, make_image, tmp_path: Path) -> None:
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "in.txt").write_text("from the host\n")
    img = make_image({"exec": ["/bin/sh", "-c",
                               "cat /in/in.txt; echo main >> /shared/log; "
                               "touch /in/nope 2>/dev/null && echo writable || echo read-only"],
                      "eventHandlers": [{"name": "pre-start", "exec": ["/bin/sh", "-c", "echo pre >> /shared/log"]},
                                        {"name": "post-stop", "exec": ["/bin/sh", "-c", "echo post >> /shared/log"]}],
                      "mountPoints": [{"name": "in", "path": "/in", "readOnly": True},
                                      {"name": "shared", "path": "/shared"}]})
    u = run_pod(store, [img], stop_pods, net=["none"],
                volumes=[pod.VolumeSpec("in", "host", str(host)), pod.VolumeSpec("shared", "empty")])
    name = pod.status(u)["apps"][0]["name"]
    assert out(u, name).splitlines() == ["from the host", "read-only"]
    _, d = pod.find(u)
    assert (d / "volumes" / "shared" / "log").read_text().split() == ["pre", "main", "post"]
    assert sorted(os.listdir(host)) == ["in.txt"]


def test_empty_volume_shared_between_apps(store: Store, stop_pods, make_image) -> None:
    writer = make_image({"exec": ["/bin/sh", "-c", "echo hello > /vol/msg"],
                         "mountPoints": [{"name": "vol", "path": "/vol"}]})
    reader = make_image({"exec": ["/bin/sh", "-c", "for i in $(seq 50); do test -s /vol/msg && break; "
                                                    "sleep 0.1; done; cat /vol/msg"],
                         "mountPoints": [{"name": "vol", "path": "/vol"}]})
    p = pod.prepare(store, [writer, reader], net=["none"])
    stop_pods.append(p.uuid)
    pod.run_prepared(p.uuid)
    names = [a["name"] for a in pod.status(p.uuid)["apps"]]
    assert out(p.uuid, names[1]).strip() == "hello"


def test_net_none_has_only_lo(store: Store, stop_pods) -> None:
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=["none"],
                exec_=sh("ls /sys/class/net"))
    assert out(u, "busybox").split() == ["lo"]


def test_net_default_gets_an_address_from_the_kits_network(store: Store, stop_pods) -> None:
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=["default"],
                exec_=sh("ip -4 -o addr show eth0"))
    st = pod.status(u)
    ip = st["networks"][0]["ips"][0]
    assert ip.startswith("172.31.") and ip.split("/")[0] in out(u, "busybox")
    # the attachment is gone after the pod: no CNI cache entry, no netns
    assert not netns.exists(pod.netns_name(u))
    results = Path(os.environ["SANDBOX_DIR"]) / "cni" / "results"
    assert not results.exists() or not [p for p in results.iterdir() if u in p.name]


def test_net_name_from_a_conf_dir(store: Store, stop_pods, tmp_path: Path) -> None:
    """--net=NAME: a network the user configured (the slide's 10-mynet.conf shape), attached
    through the CNI runtime in the node netns."""
    conf = tmp_path / "net.d"
    conf.mkdir()
    name = f"sbxn{os.getpid() % 10000}"
    (conf / "10-mynet.conf").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": f"{name}br",
        "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.123.0.0/24"}}))
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=[name], conf_dir=str(conf),
                exec_=sh("ip -4 -o addr show eth0"))
    ip = pod.status(u)["networks"][0]["ips"][0]
    assert ip.startswith("10.123.0.") and ip.split("/")[0] in out(u, "busybox")
    assert pod.status(u)["networks"][0]["net"] == name


def test_net_host_shares_the_host_netns(store: Store, stop_pods) -> None:
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=["host"],
                exec_=sh("readlink /proc/self/ns/net"))
    assert out(u, "busybox").strip() == os.readlink("/proc/self/ns/net")


def test_two_pods_on_the_default_network_reach_each_other(store: Store, stop_pods) -> None:
    a = pod.run(store, ["example.com/busybox"], net=["default"], detach=True,
                exec_=sh("mkdir -p /tmp/w; hostname > /tmp/w/index.html; httpd -f -p 8081 -h /tmp/w"))
    stop_pods.append(a.uuid)
    ip = pod.status(a.uuid)["networks"][0]["ips"][0].split("/")[0]
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=["default"],
                exec_=sh(f"for i in $(seq 30); do wget -q -O - http://{ip}:8081/ && break; sleep 0.2; done"))
    assert out(u, "busybox").strip() == f"pod-{a.uuid[:8]}"


def test_state_dirs_have_their_own_node_so_parallel_sessions_never_meet(
        pod_state: Path, catalog_acis: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """Two state directories (two test sessions, two learners on one host) each get a node netns
    of their own: their IPAM state is separate, so on one shared node they would hand out the
    same address on one bridge, and one's gc would delete the other's node."""
    started: dict[Path, tuple[str, str]] = {}
    dirs = [tmp_path / "session-a", tmp_path / "session-b"]
    try:
        for d in dirs:
            monkeypatch.setenv("SANDBOX_DIR", str(d))
            Store().import_aci(catalog_acis["example.com/busybox"])
            p = pod.run(Store(), ["example.com/busybox"], net=["default"], detach=True,
                        exec_=sh("mkdir -p /tmp/w; hostname > /tmp/w/index.html; "
                                 "httpd -f -p 8081 -h /tmp/w"))
            started[d] = (p.uuid, pod.status(p.uuid)["networks"][0]["ips"][0].split("/")[0])
        nodes = [pod.node_name(d) for d in dirs]
        assert len(set(nodes)) == 2 and all(netns.exists(n) for n in nodes)
        assert pod.node_name(Path("/var/lib/sandbox")) == "sbx-node"   # what learners see
        for d, node in zip(dirs, nodes):   # each node reaches its own pod, at its own address
            uuid, ip = started[d]
            page = eventually(lambda: http_get(node, ip, 8081), what="the pod's httpd answering")
            assert page.strip() == f"pod-{uuid[:8]}"
        # session a stops its pod and collects: b's node and pod are untouched
        monkeypatch.setenv("SANDBOX_DIR", str(dirs[0]))
        pod.stop(started[dirs[0]][0])
        pod.gc(grace=0)
        assert not netns.exists(nodes[0]) and netns.exists(nodes[1])
        monkeypatch.setenv("SANDBOX_DIR", str(dirs[1]))
        assert pod.status(started[dirs[1]][0])["state"] == "run"
    finally:
        for d in dirs:
            monkeypatch.setenv("SANDBOX_DIR", str(d))
            for p in pod.list_pods():
                if p["state"] == "run":
                    pod.stop(p["uuid"])
            pod.gc(grace=0)


def test_metadata_service(store: Store, stop_pods) -> None:
    u = run_pod(store, ["example.com/busybox"], stop_pods, net=["none"], exec_=sh(
        'M=$AC_METADATA_URL/acMetadata/v1; wget -q -O - $M/pod/uuid; echo; '
        'wget -q -O - $M/apps/$AC_APP_NAME/image/id; echo; '
        'S=$(wget -q -O - --post-data content=hello $M/pod/hmac/sign); '
        'U=$(wget -q -O - $M/pod/uuid); S=$(echo "$S" | sed "s/+/%2B/g; s|/|%2F|g; s/=/%3D/g"); '
        'wget -q -O /dev/null --post-data "content=hello&uuid=$U&signature=$S" $M/pod/hmac/verify && echo verified; '
        'wget -q -O /dev/null --post-data "content=other&uuid=$U&signature=$S" $M/pod/hmac/verify || echo refused; '
        'wget -q -O /dev/null ${AC_METADATA_URL%/*}/wrongtoken/acMetadata/v1/pod/uuid || echo no-token-refused'))
    lines = out(u, "busybox").split()
    assert lines[0] == u
    assert lines[1] == store.get("example.com/busybox").id
    assert lines[2:] == ["verified", "refused", "no-token-refused"]
    token = pod.status(u)["metadataURL"].rsplit("/", 1)[1]
    assert len(bytes.fromhex(token)) * 8 >= 128


def test_isolators_capabilities_nnp_and_memory(store: Store, stop_pods, make_image) -> None:
    img = make_image({"exec": ["/bin/sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                                                "cat /proc/self/cgroup; sleep 3"],
                      "isolators": [
                          {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_NET_RAW"]}},
                          {"name": "os/linux/no-new-privileges", "value": True},
                          {"name": "resource/memory", "value": {"limit": "64Mi"}},
                          {"name": "resource/cpu", "value": {"limit": "250m"}}]})
    p = pod.run(store, [img], net=["none"], detach=True)
    stop_pods.append(p.uuid)
    name = pod.status(p.uuid)["apps"][0]["name"]
    # while it runs, the host sees the limit in the app's cgroup
    if cgroups.version() == 2:
        f = Path("/sys/fs/cgroup/sandbox") / p.uuid / "apps" / name / "memory.max"
    else:
        f = Path("/sys/fs/cgroup/memory/sandbox") / p.uuid / "apps" / name / "memory.limit_in_bytes"
    assert int(f.read_text()) == 64 * 1024 * 1024
    if cgroups.version() == 2:   # 250 millicores = a quarter of each 100 ms period
        cpu = (Path("/sys/fs/cgroup/sandbox") / p.uuid / "apps" / name / "cpu.max").read_text().split()
        assert cpu == ["25000", "100000"]
    else:
        cpu_dir = next(d for d in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpu,cpuacct"))
                       if (d / "sandbox" / p.uuid / "apps" / name).is_dir()) / "sandbox" / p.uuid / "apps" / name
        assert int((cpu_dir / "cpu.cfs_quota_us").read_text()) == 25000
        assert int((cpu_dir / "cpu.cfs_period_us").read_text()) == 100000
    pod.wait(p.uuid)
    text = out(p.uuid, name)
    cap_eff = int(next(l for l in text.splitlines() if l.startswith("CapEff")).split()[1], 16)
    assert not cap_eff & (1 << 13)          # CAP_NET_RAW removed
    assert cap_eff & (1 << 0)               # CAP_CHOWN kept
    assert "NoNewPrivs:\t1" in text
    assert f"sandbox/{p.uuid}/apps/{name}" in text
    assert not f.parent.exists(), "the cgroup is removed when the pod exits"


@pytest.mark.parametrize("overlay", [True, False], ids=["overlay", "plain-copy"])
def test_every_execution_starts_from_a_clean_copy(store: Store, stop_pods, make_image,
                                                  overlay: bool) -> None:
    img = make_image({"exec": ["/bin/sh", "-c",
                               "cat /scratch 2>/dev/null || echo clean; echo dirty > /scratch; "
                               "rm /bin/ls; stat -c %u:%g /srv/owned"]},
                     files={"/srv/owned": "x"}, owners={"/srv/owned": (4242, 4343)})
    runs = [run_pod(store, [img], stop_pods, net=["none"], overlay=overlay) for _ in range(2)]
    name = pod.status(runs[0])["apps"][0]["name"]
    for u in runs:
        # a write (and a delete) of one execution never reaches the next; owners are kept
        assert out(u, name).split() == ["clean", "4242:4343"]


def test_stop_then_gc_leaves_nothing(store: Store, stop_pods) -> None:
    p = pod.run(store, ["example.com/busybox"], net=["default"], detach=True, exec_=sh("sleep 60"))
    stop_pods.append(p.uuid)
    assert netns.exists(pod.netns_name(p.uuid))
    t0 = time.monotonic()
    st = pod.stop(p.uuid)
    assert st["state"] == "exited-garbage" and time.monotonic() - t0 < 10
    assert st["apps"][0]["exitCode"] == 128 + 15      # SIGTERM reached the app
    report = pod.gc(grace=0)
    assert any(p.uuid in line and "removed" in line for line in report)
    assert not netns.exists(pod.netns_name(p.uuid))
    state = os.environ["SANDBOX_DIR"]
    with open("/proc/self/mounts") as f:
        assert not [l for l in f if state in l], "no mount under the state dir"
    assert not (Path(state) / "pods" / "exited-garbage" / p.uuid).exists()
    assert not cgroups.PodCgroups(p.uuid).dirs()


def test_gc_cleans_after_a_killed_supervisor(store: Store, stop_pods) -> None:
    p = pod.run(store, ["example.com/busybox"], net=["default"], detach=True, exec_=sh("sleep 60"))
    stop_pods.append(p.uuid)
    run = json.loads((pod.find(p.uuid)[1] / "run.json").read_text())
    os.kill(run["stage1"], 9)                   # the pod's PID 1: every app dies with it
    os.kill(run["supervisor"], 9)               # and the supervisor gets no chance to tear down
    wait_for(lambda: "supervisor gone" in pod.status(p.uuid)["state"], what="unlocked pod")
    assert netns.exists(pod.netns_name(p.uuid))
    # killed between a cache entry's write and its rename (the chaos test hit this once): the
    # half-written entry is the pod's and goes; another container's stays
    cache = Path(os.environ["SANDBOX_DIR"]) / "cni" / "results"
    partial = cache / f".default-{p.uuid}-eth0.tmp{run['supervisor']}"
    other = cache / ".default-sbx-someone-else-eth0.tmp1"
    partial.write_text("{")
    other.write_text("{")
    try:
        pod.gc(grace=0)
        assert not netns.exists(pod.netns_name(p.uuid))
        assert not [f for f in cache.iterdir() if p.uuid in f.name]
        assert other.exists()
    finally:
        other.unlink(missing_ok=True)


def test_cli_run_and_user_errors(pod_state: Path, run_cli) -> None:
    rc, outp, err = run_cli("run", "example.com/busybox", "--net=none", "--exec",
                            "/bin/sh -c 'echo via-cli; exit 4'")
    assert rc == 4 and "[busybox] via-cli" in outp
    rc, outp, err = run_cli("run", "example.com/no-such-image")
    assert rc == 1 and "no image in the store" in err and "Traceback" not in err
    rc, outp, err = run_cli("status", "ffffffff")
    assert rc == 1 and "no pod has a UUID" in err
    rc, outp, err = run_cli("run", "example.com/busybox", "--volume", "broken,kind")
    assert rc != 0 and "not a volume" in err


def test_not_root_is_one_clear_sentence(monkeypatch, run_cli, pod_state) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    rc, _, err = run_cli("run", "example.com/busybox")
    assert rc == 1 and "needs root privileges" in err and "Traceback" not in err
