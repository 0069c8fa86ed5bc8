"""Pod commands (rkt's): ``sandbox prepare``, ``run-prepared``, ``run``, ``list``, ``status``,
``stop``, ``logs``, ``enter``, ``rm``, ``gc`` — a thin layer over sandbox.pod.stage0."""
from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path

from sandbox import _progress
from sandbox.errors import UsageError

TYPE_CHECKING = False   # argparse only where a parser is built (see quick_args)
if TYPE_CHECKING:
    import argparse
    from typing import Any

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("prepare", "run", "run-prepared", "list", "status", "stop", "logs", "enter", "rm", "gc")


def quick_args(argv: list[str]) -> Any | None:
    """``run-prepared UUID`` with or without ``--detach``/``-d``, read without argparse: the
    pod start that bench/bench_pod.py measures against runc does not pay for argparse's import
    and the parsers' build (~8 ms of CPU). None for any other shape (a typo, --help, a second
    UUID): the parser reads it, with its usage, errors and "did you mean"."""
    if not argv or argv[0] != "run-prepared":
        return None
    words = argv[1:]
    flags = [w for w in words if w in ("--detach", "-d")]
    rest = [w for w in words if w not in ("--detach", "-d")]
    if len(flags) > 1 or len(rest) != 1 or rest[0].startswith("-") or not rest[0]:
        return None
    from types import SimpleNamespace
    return SimpleNamespace(command="run-prepared", uuid=rest[0], detach=bool(flags),
                           func=cmd_run_prepared, quick_exit=True)


def _store():
    from sandbox.image.store import Store
    return Store()


def _prepare(args: argparse.Namespace, run_by: int | None = None):
    from sandbox.pod import stage0 as pod
    images = list(args.images or [])
    if args.pod_manifest and images:
        raise UsageError("give images or --pod-manifest, not both.")
    if not args.pod_manifest and not images:
        raise UsageError("give at least one image (e.g. example.com/busybox) or --pod-manifest FILE.")
    exec_ = None
    if args.exec is not None:
        if not images:
            raise UsageError("--exec applies to the last image given; give an image.")
        try:
            argv = shlex.split(args.exec)
        except ValueError as e:     # "No closing quotation", "No escaped character"
            raise UsageError(f"--exec {args.exec[:80]!r} cannot be split like a shell line "
                             f"({str(e).lower()}); close its quotes.") from None
        if not argv:
            raise UsageError("--exec is empty; give the command and its arguments in one "
                             "string, e.g. --exec 'echo hi'.")
        exec_ = {len(images) - 1: argv}
    nets = [n for part in (args.net or ["default"]) for n in part.split(",") if n]
    if len(nets) > 1 and ({"host", "none"} & set(nets)):
        raise UsageError("--net=host and --net=none cannot be combined with other networks; "
                         "give one of them alone.")
    return pod.prepare(_store(), images or None, pod_manifest=args.pod_manifest,
                       volumes=[pod.VolumeSpec.parse(v) for v in args.volume or []],
                       net=nets, overlay=False if args.no_overlay else None,
                       hostname=args.hostname, conf_dir=args.conf_dir, cni_path=args.cni_path,
                       exec_=exec_, progress=_progress.wanted(), _run_by=run_by)


def _follow(uuid: str, supervisor=None) -> int:
    """Print the apps' output as it comes (``[app] line``) until the pod exits; return its exit
    code. With the supervisor's process handle, its exit ends the wait at once (no polling
    delay), and a supervisor that died before its teardown has its pod collected here."""
    from sandbox._sys import proc as _proc
    from sandbox.pod import stage0 as pod
    offsets: dict[Path, int] = {}
    delay = 0.005           # poll fast at first (a short pod ends within ms), then every 0.1 s
    try:
        while True:
            ended = supervisor is not None and supervisor.poll() is not None
            state, d = pod.find(uuid)
            try:
                files = sorted(d.glob("apps/*/std*"))
                if not d.is_dir():      # moved before the glob (which then finds nothing)
                    raise FileNotFoundError(d)
                for f in files:
                    pos = offsets.get(f.relative_to(d), 0)
                    with open(f, "rb") as fh:
                        fh.seek(pos)
                        data = fh.read()
                    if data:
                        offsets[f.relative_to(d)] = pos + len(data)
                        out = sys.stdout if f.name == "stdout" else sys.stderr
                        for line in data.decode(errors="replace").splitlines():
                            print(f"[{f.parent.name}] {line}", file=out, flush=True)
            except FileNotFoundError:   # the pod directory moved to its next state: look again
                continue
            if ended or state in ("exited-garbage", "garbage"):
                if supervisor is not None:      # it is ending: reap it, remove what it left
                    code = pod.finish_attached(uuid, supervisor.wait())
                else:
                    code = int(pod.status(uuid).get("exitCode") or 0)
                err = pod.error(uuid)
                if err:
                    print(f"sandbox: pod {uuid}: {err}", file=sys.stderr)
                return code
            if state not in ("prepared", "run"):
                return int(pod.status(uuid).get("exitCode") or 0)
            if supervisor is not None:
                _proc.wait_for(supervisor, delay)   # returns at once if the supervisor ends
            elif state == "prepared":
                raise pod.PodError(f"the pod {uuid} is prepared but not running.")
            else:
                time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
    except KeyboardInterrupt:
        print(f"\nstopping pod {uuid} …", file=sys.stderr)
        pod.stop(uuid)
        if supervisor is not None:
            pod.finish_attached(uuid, supervisor.wait())
        return 130


def cmd_prepare(args: argparse.Namespace) -> int:
    p = _prepare(args)
    print(p.uuid)
    return 0


def _run(uuid: str, detach: bool) -> int:
    """Run a prepared pod. In the foreground this process owns the pod (rkt: the run process is
    the pod; podman's --sig-proxy): SIGTERM, SIGINT and SIGHUP are passed on to the pod's
    supervisor, which stops the pod, and ``run`` exits with the pod's status; if this process is
    killed outright, the supervisor notices and stops the pod itself."""
    from sandbox import config
    from sandbox.pod import cgroups
    # the pod's cgroups begun in a helper thread while the rest is imported (cgroups.Claim)
    claim = cgroups.claim(config.sandbox_dir() / "pods" / "prepared" / uuid)
    from sandbox.pod import stage0 as pod
    if detach:
        print(pod.run_prepared(uuid, detach=True, claim=claim).uuid)
        return 0
    name, supervisor = pod.start(uuid, attached=True, claim=claim)
    forward = lambda sig, _frame: supervisor.send_signal(signal.SIGTERM)  # noqa: E731
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        return _follow(name, supervisor)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_run_prepared(args: argparse.Namespace) -> int:
    return _run(args.uuid, args.detach)


def cmd_run(args: argparse.Namespace) -> int:
    import os
    p = _prepare(args, run_by=os.getpid())   # gc removes it if this process ends first
    print(f"pod {p.uuid}", file=sys.stderr)
    return _run(p.uuid, args.detach)


def cmd_list(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    pods = pod.list_pods()
    if args.json:
        print(json.dumps(pods, indent=2))
        return 0
    from sandbox.cli._table import table
    rows = []
    for p in pods:
        apps = ",".join(f"{a['name']}" + (f"({a['exitCode']})" if "exitCode" in a else "")
                        for a in p["apps"]) or "-"
        nets = ",".join(f"{n['net']}:{'/'.join(n['ips'])}" for n in p["networks"]) or "-"
        rows.append([p["uuid"][:8], p["state"], apps, nets])
    print(table(["UUID", "STATE", "APPS", "NETWORKS"], rows, wrap={1: " ", 2: ",", 3: ","}))
    if not pods:
        print("No pods here; `sandbox run IMAGE` starts one.", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    st = pod.status(args.uuid)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"pod {st['uuid']}  state={st['state']}"
          + (f"  exit={st['exitCode']}" if st.get("exitCode") is not None else ""))
    if st.get("error"):
        print(f"  error: {st['error']}")
    for n in st["networks"]:
        print(f"  network {n['net']} {n['ifname']} {' '.join(n['ips'])}")
    if st.get("metadataURL"):
        print(f"  metadata {st['metadataURL'].rsplit('/', 1)[0]}/…")
    for a in st["apps"]:
        extra = f" exit={a['exitCode']}" if "exitCode" in a else ""
        extra += f" error={a['error']}" if a.get("error") else ""
        print(f"  app {a['name']:24} {a['state']:12} {a['image']}{extra}")
    for pr in st.get("processes", []):      # live, from the pod's cgroup
        cmd = pr["cmd"] if len(pr["cmd"]) <= 60 else pr["cmd"][:59] + "…"   # cut, and says so
        print(f"  process {pr['pid']:>7} {pr['group']:20} {cmd}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    for u in args.uuids:
        st = pod.stop(u, force=args.force)
        print(f"{st['uuid']} {st['state']}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    for name, streams in pod.logs(args.uuid, args.app).items():
        for stream, text in streams.items():
            for line in text.splitlines():
                print(f"[{name}] {line}", file=sys.stdout if stream == "stdout" else sys.stderr)
    return 0


def cmd_enter(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    argv = list(args.cmd or [])
    return pod.enter(args.uuid, args.app, argv or ["/bin/sh"], timeout=None).returncode


def cmd_rm(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    for u in args.uuids:
        print(f"removed {pod.remove(u)}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from sandbox.pod import stage0 as pod
    kept: list[str] = []
    done = pod.gc(grace=args.grace, kept=kept)
    for line in done:
        print(line)
    for line in kept:
        print(f"kept {line}")
    if not done and not kept:
        print("gc: nothing to collect.")
    return 0


def _pod_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", metavar="IMAGE", help="name[:version][,label=value] or ID")
    p.add_argument("--pod-manifest", metavar="FILE", help="run this PodManifest instead of images")
    p.add_argument("--net", action="append", metavar="NET[,NET…]",
                   help="default (the kit's bridge network), NAME from --conf-dir, none (only lo) "
                        "or host (default: default)")
    p.add_argument("--volume", action="append", metavar="NAME,kind=empty|host[,source=P]",
                   help="a pod volume (rkt syntax); mountPoints without one get an empty volume")
    p.add_argument("--exec", metavar="'CMD ARGS'",
                   help="replace the last image's exec (one string, split like a shell)")
    p.add_argument("--hostname")
    p.add_argument("--no-overlay", action="store_true", help="plain copies instead of overlayfs")
    p.add_argument("--conf-dir", help="CNI configuration directory for --net=NAME")
    p.add_argument("--cni-path", help="CNI plugin directory (default: the kit's own plugins)")


def register(sub: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    p = sub.add_parser("prepare", help="prepare a pod (render, plan) without running it")
    _pod_opts(p)
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("run", help="run a pod of one or more images")
    _pod_opts(p)
    p.add_argument("--detach", "-d", action="store_true", help="return once the apps started")
    p.set_defaults(func=cmd_run, quick_exit=True)
    p = sub.add_parser("run-prepared", help="run a prepared pod")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--detach", "-d", action="store_true")
    p.set_defaults(func=cmd_run_prepared, quick_exit=True)
    p = sub.add_parser("list", help="list pods")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("status", help="a pod's state, apps, networks")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("stop", help="stop running pods (SIGTERM, then SIGKILL)")
    p.add_argument("uuids", nargs="+", metavar="UUID")
    p.add_argument("--force", action="store_true", help="SIGKILL at once")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("logs", help="the apps' stdout and stderr")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--app")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("enter", help="run a command inside a running app")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--app", required=True)
    p.add_argument("cmd", nargs="*", metavar="-- CMD", help="the command (default /bin/sh)")
    p.set_defaults(func=cmd_enter)
    p = sub.add_parser("rm", help="remove exited pods")
    p.add_argument("uuids", nargs="+", metavar="UUID")
    p.set_defaults(func=cmd_rm)
    p = sub.add_parser("gc", help="remove exited pods past the grace period and every leftover")
    p.add_argument("--grace", type=float, default=1800.0, metavar="SECONDS",
                   help="keep exited pods this long (default 1800)")
    p.set_defaults(func=cmd_gc)
