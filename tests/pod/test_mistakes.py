"""A newcomer's mistakes with pods (issue 20), each played with the `sandbox` command as typed:
a run that fails before its pod exists leaves no pod; status, logs and the rest never show a
traceback for a broken pod; gc says what it keeps and why; refusals say what to do next; a
long APPS column is wrapped, not cut. Each test has a state directory of its own."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.pod import stage0 as pod

pytestmark = pytest.mark.root
SEED = ["example.com/reduce-worker", "example.com/worker-backup", "example.com/reduce-worker-register"]


def sandbox(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *argv], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def pods_on_disk(state: Path) -> list[str]:
    return sorted(f"{s.name}/{p.name}" for s in (state / "pods").iterdir() for p in s.iterdir()) \
        if (state / "pods").is_dir() else []


def one_sentence(p: subprocess.CompletedProcess) -> str:
    """The error of a refused command: exit 1 or 2, one `sandbox: …` line, no traceback."""
    assert p.returncode in (1, 2), (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "failed inside the kit" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sandbox: "), p.stderr
    return lines[0]


def test_a_run_that_fails_before_its_pod_exists_leaves_no_pod(state: Path) -> None:
    err = one_sentence(sandbox("run", "example.com/busybx"))
    assert "no image in the store is example.com/busybx. Did you mean 'example.com/busybox'?" in err
    # it failed half-way too: busybox's app directory was made before worker-base (no app) failed
    err = one_sentence(sandbox("run", "example.com/busybox", "example.com/worker-base"))
    assert "has no app to run" in err and "run one that has an app" in err
    assert pods_on_disk(state) == []
    p = sandbox("list")
    assert p.returncode == 0 and p.stdout.strip() == "UUID  STATE  APPS  NETWORKS", p.stdout
    assert sandbox("gc").stdout.strip() == "gc: nothing to collect."


def broken_pods(state: Path) -> dict[str, str]:
    """Pods in every state, each broken in another way (what a crash, a full disk or an older kit
    leaves): {uuid: how}."""
    made = {}
    cases = [
        ("garbage", "no apps (a failed prepare of an older kit)", {}),
        ("exited-garbage", "plan.json is not JSON", {"plan.json": "{nope"}),
        ("exited-garbage", "plan.json is a list, run.json a string",
         {"plan.json": "[1, 2]", "run.json": '"x"'}),
        ("exited-garbage", "apps is a file, names are paths",
         {"plan.json": json.dumps({"apps": [{"name": "../../x"}, {"name": 3}, "y"]}),
          "apps": "a file"}),
        ("exited-garbage", "networks of every wrong shape",
         {"run.json": json.dumps({"networks": [1, {"net": 2}, {"net": "n", "result": [3]},
                                               {"net": "n", "ifname": "eth0", "config": 5}]})}),
        ("run", "running, but nobody holds it (supervisor gone), nothing in it", {}),
        ("prepared", "prepared with a plan that names no images",
         {"plan.json": json.dumps({"apps": [{"name": "a"}]})}),
    ]
    for i, (st, how, files) in enumerate(cases):
        uuid = f"{i:08x}-dead-4bad-8bad-0123456789ab"
        d = state / "pods" / st / uuid
        d.mkdir(parents=True)
        for name, text in files.items():
            (d / name).write_text(text)
        made[uuid] = f"{st}: {how}"
    return made


def test_no_command_shows_a_traceback_for_a_broken_pod(state: Path) -> None:
    broken = broken_pods(state)
    p = sandbox("list")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert all(u[:8] in p.stdout for u in broken), p.stdout
    for uuid, how in broken.items():
        for argv in (["status", uuid], ["status", uuid, "--json"], ["logs", uuid],
                     ["logs", uuid, "--app", "a"], ["enter", uuid, "--app", "a", "--", "true"]):
            p = sandbox(*argv)
            assert "Traceback" not in p.stderr and "failed inside the kit" not in p.stderr, \
                (how, argv, p.stderr)
            if p.returncode:
                one_sentence(p)
        st = json.loads(sandbox("status", uuid, "--json").stdout)
        assert st["uuid"] == uuid
    # the garbage pod of a failed prepare: logs says why there is nothing, and what to do
    garbage = next(u for u, how in broken.items() if how.startswith("garbage"))
    err = one_sentence(sandbox("logs", garbage))
    assert "has no app output to show" in err and f"`sandbox rm {garbage[:8]}`" in err
    p = sandbox("gc", "--grace", "0")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    # every broken pod is gone but the prepared one, which gc keeps (and says so)
    prepared = next(u for u, how in broken.items() if how.startswith("prepared"))
    assert pods_on_disk(state) == [f"prepared/{prepared}"]
    assert (f"kept pod {prepared[:8]}: prepared, kept; `sandbox run-prepared {prepared[:8]}` "
            "starts it") in p.stdout, p.stdout
    assert sandbox("rm", prepared).returncode == 0
    assert pods_on_disk(state) == []


def test_gc_says_what_it_keeps_and_why(state: Path) -> None:
    """The tour's `stop; gc` seemed to do nothing: rkt's gc keeps an exited pod 30 min."""
    p = sandbox("run", "example.com/busybox", "--net", "none", "--exec", "true")
    assert p.returncode == 0, p.stderr
    uuid = pod.list_pods()[0]["uuid"]
    p = sandbox("gc")
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(
        rf"kept pod {uuid[:8]}: exited (under a minute|\d+ min) ago, kept for the grace period "
        r"\(\d+ min more, so that `sandbox status` and `sandbox logs` still show it\); "
        rf"`sandbox rm {uuid[:8]}` or `sandbox gc --grace 0` removes it now\.", p.stdout.strip()), \
        p.stdout
    assert pods_on_disk(state) == [f"exited-garbage/{uuid}"]
    p = sandbox("gc", "--grace", "0")
    assert p.returncode == 0 and f"pod {uuid}: removed (exited-garbage)" in p.stdout, p.stdout
    assert pods_on_disk(state) == []
    assert sandbox("gc").stdout.strip() == "gc: nothing to collect."


def test_refusals_say_what_to_do_and_typos_get_a_did_you_mean(state: Path) -> None:
    p = sandbox("run", "example.com/busybox", "--net", "none", "--exec", "echo hello")
    assert p.returncode == 0 and "[busybox] hello" in p.stdout, p.stderr
    uuid = pod.list_pods()[0]["uuid"]
    err = one_sentence(sandbox("stop", uuid))
    assert err == (f"sandbox: pod {uuid} is not running (exited-garbage); it has ended: "
                   f"`sandbox status {uuid[:8]}` shows how, `sandbox logs {uuid[:8]}` what it "
                   f"printed, and `sandbox rm {uuid[:8]}` removes it.")
    typo = uuid[:5] + ("0" if uuid[5] != "0" else "1")
    err = one_sentence(sandbox("status", typo))
    assert f"no pod has a UUID starting with '{typo}'. Did you mean '{uuid[:6]}'?" in err
    err = one_sentence(sandbox("logs", uuid, "--app", "busybx"))
    assert "has no app 'busybx'. Did you mean 'busybox'?" in err
    err = one_sentence(sandbox("enter", uuid, "--app", "busybox", "--", "true"))
    assert "only a running pod can be entered" in err and f"`sandbox rm {uuid[:8]}`" in err
    assert sandbox("rm", uuid).returncode == 0


def test_list_wraps_the_apps_column_instead_of_cutting_it(state: Path) -> None:
    """`sandbox list` cut APPS at 40 characters: the seed pod's third app lost its name."""
    p = sandbox("prepare", *SEED)
    assert p.returncode == 0, p.stderr
    uuid = p.stdout.strip()
    for cols in (60, 200):
        out = sandbox("list", env={"COLUMNS": str(cols)}).stdout
        lines = out.splitlines()
        assert all(len(l) <= cols for l in lines), out
        # every app name whole (no "reduce-worke"), wrapped at commas on a narrow terminal
        assert set(re.findall(r"[a-z-]*worker[a-z-]*", out)) == {
            "reduce-worker", "worker-backup", "reduce-worker-register"}, out
        assert len(lines) == (2 if cols == 200 else 3), out
        assert uuid[:8] in out and "prepared" in out
    assert sandbox("rm", uuid).returncode == 0
