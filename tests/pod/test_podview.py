"""podview.inspect reads a running pod from /proc: checked against the kernel directly
(readlink /proc/PID/ns/*, the app's own `ps` and `hostname` through `sandbox enter`)."""
from __future__ import annotations

import os
import time

import pytest

from sandbox.image.store import Store
from sandbox.pod import perspective as podview
from sandbox.pod import stage0 as pod
from sandbox.viz.pod import pod_picture

pytestmark = pytest.mark.root


def test_inspect_seed_pod(store: Store, stop_pods) -> None:
    p = pod.run(store, ["example.com/reduce-worker", "example.com/worker-backup"], detach=True,
                net=["none"])
    stop_pods.append(p.uuid)
    deadline = time.monotonic() + 30      # detach returns once the runners exist; wait for the apps
    while True:
        info = podview.inspect(p.uuid)
        apps = {a["name"]: a for a in info["apps"]}
        if all(a["pod_pids"] for a in apps.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    rw, wb = apps["reduce-worker"], apps["worker-backup"]
    # independent reading of the runners' namespaces
    ns = lambda pid, t: os.readlink(f"/proc/{pid}/ns/{t}")  # noqa: E731
    for t in ("net", "ipc", "uts", "pid"):
        assert ns(rw["runner"], t) == ns(wb["runner"], t) == f"{t}:[{info['shared'][t]}]"
        assert ns(rw["runner"], t) != ns("self", t)
    assert ns(rw["runner"], "mnt") == f"mnt:[{rw['ns']['mnt']}]" != ns(wb["runner"], "mnt")
    assert info["shared"]["mnt"] is None
    assert info["init"]["pod_pid"] == 1
    # the app's own `ps` sees the same PIDs inside the pod
    ps = pod.enter(p.uuid, "reduce-worker", ["/bin/sh", "-c", "ps -o pid,args"], capture=True).stdout
    pod_pids = {int(line.split()[0]) for line in ps.splitlines()[1:] if line.split()[0].isdigit()}
    assert rw["pod_pids"] and min(rw["pod_pids"]) in pod_pids and 1 in pod_pids   # the app itself
    # mounts as the app sees them: its volume and /sys read-only
    targets = {m["target"]: m for m in rw["mounts"]}
    assert "/var/lib/reduce" in targets and targets["/sys"]["options"].startswith("ro")
    assert rw["interfaces"] == ["lo"]          # --net=none: only loopback
    src = pod_picture(info).source
    assert "reduce-worker" in src and "worker-backup" in src and f"pid:[{info['shared']['pid']}]" in src
    # slide 29's stages, checked against the kernel: stage0 in the host's pid namespace, stage1
    # PID 1 of the pod, stage2 the apps' processes; stage1 got exactly stage0's plan
    rows = podview.stages(info)
    by = {r["stage"]: [x for x in rows if x["stage"] == r["stage"]] for r in rows}
    assert ns(by["stage0"][0]["host PID"], "pid") == ns("self", "pid")
    assert by["stage1"][0]["PID in the pod"] == 1 and by["stage1"][0]["host PID"] == info["init"]["host_pid"]
    assert {r["host PID"] for r in by["stage2"]} >= set(rw["pids"]) | set(wb["pids"])
    assert all("pid" in r["own namespaces"] for r in by["stage1"] + by["stage2"])
    plan = pod.stage1_plan(p.uuid)
    assert [a["name"] for a in plan["apps"]] == ["reduce-worker", "worker-backup"]
    assert plan["apps"][0]["exec"] == ["/bin/sh", "/opt/reduce-worker/run"]
    pod.stop(p.uuid)
