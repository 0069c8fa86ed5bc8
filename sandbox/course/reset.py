"""``sandbox reset``: put the machine back as it was before the kit ran.

What the kit makes, and how this finds it (only things the kit made: names carrying the kit's
prefix, :data:`sandbox.config.NAME_PREFIX` = ``sbx``, and state under ``$SANDBOX_DIR``):

* pods — every pod under ``$SANDBOX_DIR/pods``: running ones are stopped (their supervisor tears
  down CNI, netns and cgroups), then :func:`sandbox.pod.stage0.gc` removes them and their leftovers;
* labs — :func:`sandbox.course.labs.reset` for every lab workspace;
* clean copies — :func:`sandbox.render.treestore.close_all` unmounts their overlays;
* mounts — anything still mounted below ``$SANDBOX_DIR``, deepest first (``/proc/self/mountinfo``
  order reversed, not rubber-docker's random loop);
* network namespaces — handles ``/run/netns/sbx*`` (deleting a netns takes its links, addresses,
  bridges, routes and iptables rules with it: node namespaces hold the CNI bridges and NAT);
* host links — links named ``sbx*`` in the host netns (with their addresses);
* host iptables — nat rules whose CNI comment names an ``sbx*`` network, and the ``CNI-…``
  chains they jump to;
* CNI caches — ``/var/lib/cni/results/sbx*`` and ``/var/lib/cni/networks/sbx*``;
* notebooks — each notebook's own directory ``$SANDBOX_DIR/notebooks/NN`` and what its records
  list: the namespaces it made, the pods it ran, the keys it trusted and the images it imported
  (:func:`sandbox.course.notebook.recover`);
* caches and state — ``$SANDBOX_DIR``'s ``pods``, ``copies``, ``trees``, ``cache``, ``labs``,
  ``notebooks``, ``cni``; with ``everything=True`` the whole directory (image store and trusted keys too).

``prefix`` narrows the kernel objects to a longer prefix (tests use a unique one so they never
touch another run's namespaces).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sandbox import config
from sandbox._sys import mountinfo
from sandbox.errors import SandboxError, UsageError
from sandbox.steps import Steps, record

STATE_PARTS = ("pods", "copies", "trees", "cache", "labs", "notebooks", "cni")
CNI_STATE = Path("/var/lib/cni")
_COMMENT = re.compile(r'--comment "name: \\"(?P<net>[^"\\]*)\\" id: \\"[^"\\]*\\""')


def plan(prefix: str = config.NAME_PREFIX, everything: bool = False) -> list[str]:
    """What :func:`reset` would remove, one line each (for the confirmation prompt)."""
    if not prefix.startswith(config.NAME_PREFIX):
        raise UsageError(f"The prefix must start with the kit's prefix {config.NAME_PREFIX!r}.")
    from sandbox.net import netns
    lines = []
    state = config.sandbox_dir()
    pods = state / "pods"
    if pods.is_dir():
        n = sum(1 for s in pods.iterdir() if s.is_dir() for _ in s.iterdir())
        if n:
            lines.append(f"{n} pod(s) under {pods}")
    labs = state / "labs"
    if labs.is_dir() and any(labs.iterdir()):
        lines.append(f"lab workspaces: {', '.join(sorted(p.name for p in labs.iterdir()))}")
    nbs = state / "notebooks"
    if nbs.is_dir() and any(nbs.iterdir()):
        lines.append(f"notebook state: {', '.join(sorted(p.name for p in nbs.iterdir()))}")
    for m in mountinfo.below(state):
        lines.append(f"mount {m}")
    for n in netns.list():
        if n.startswith(prefix):
            lines.append(f"netns {n}")
    lines += [f"stale netns handle {p}" for p in _stale_handles(prefix)]
    for link in sorted(os.listdir("/sys/class/net")):
        if link.startswith(prefix):
            lines.append(f"host link {link}")
    for rule in _host_nat_rules(prefix):
        lines.append(f"iptables -t nat {rule}")
    for sub in ("results", "networks"):
        d = CNI_STATE / sub
        if d.is_dir():
            lines += [f"CNI cache {p}" for p in sorted(d.iterdir()) if p.name.startswith(prefix)]
    parts = [p for p in (STATE_PARTS if not everything else ()) if (state / p).exists()]
    if everything and state.exists():
        lines.append(f"the whole state directory {state}")
    elif parts:
        lines.append(f"state under {state}: {', '.join(parts)}")
    return lines


def _stale_handles(prefix: str) -> list[Path]:
    """Files in /run/netns named with the prefix that hold no namespace (a helper died)."""
    from sandbox.net import netns
    d = Path(netns.DEFAULT_DIR)
    if not d.is_dir():
        return []
    return [p for p in sorted(d.iterdir()) if p.name.startswith(prefix) and not netns.is_netns(p)]


def _host_nat_rules(prefix: str) -> list[str]:
    if not shutil.which("iptables"):
        return []
    cp = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True)
    if cp.returncode != 0:
        return []
    out = []
    for line in cp.stdout.splitlines():
        m = _COMMENT.search(line)
        if m and m.group("net").startswith(prefix) and line.startswith("-A "):
            out.append(line)
    return out


def _remove_host_nat(prefix: str, steps: Steps | None) -> list[str]:
    done = []
    chains = set()
    for rule in _host_nat_rules(prefix):
        args = rule.split()
        if "-j" in args:
            target = args[args.index("-j") + 1]
            if target.startswith("CNI-"):
                chains.add(target)
        # the rule text is shell-quoted by iptables -S; re-split it the same way
        import shlex
        spec = shlex.split(rule)
        spec[0] = "-D"
        subprocess.run(["iptables", "-w", "-t", "nat", *spec], capture_output=True)
        record(steps, "exec", "iptables -t nat " + " ".join(spec))
        done.append(f"removed iptables rule {rule}")
    for chain in sorted(chains):
        subprocess.run(["iptables", "-w", "-t", "nat", "-F", chain], capture_output=True)
        cp = subprocess.run(["iptables", "-w", "-t", "nat", "-X", chain], capture_output=True)
        if cp.returncode == 0:
            done.append(f"removed iptables chain {chain}")
    return done


def _delete_host_links(prefix: str, steps: Steps | None) -> list[str]:
    from sandbox.net import netns
    names = [l for l in sorted(os.listdir("/sys/class/net")) if l.startswith(prefix)]
    if not names:
        return []

    def work() -> list[str]:
        done = []
        with netns.iproute(None) as ipr:
            for name in names:
                idx = ipr.link_lookup(ifname=name)
                if idx:
                    try:
                        ipr.link("del", index=idx[0])
                    except Exception:  # noqa: BLE001 - a veth whose peer went first is gone too
                        continue
                    record(steps, "netlink", f"link del {name}")
                    done.append(f"deleted host link {name}")
        return done
    return netns.in_thread(work)


def reset(*, prefix: str = config.NAME_PREFIX, everything: bool = False,
          steps: Steps | None = None) -> list[str]:
    """Remove everything the kit made (see the module docstring); returns what was done."""
    if not prefix.startswith(config.NAME_PREFIX):
        raise UsageError(f"The prefix must start with the kit's prefix {config.NAME_PREFIX!r}.")
    if os.geteuid() != 0:
        from sandbox.errors import NotRootError
        raise NotRootError("sandbox reset")
    state = config.sandbox_dir()
    # in the module docstring's order: first what runs (its supervisor tears down its own
    # networking), then what is left of it, the state last
    done = _stop_pods(state, steps)                   # 1.
    done += _reset_labs_and_copies(state, steps)      # 2.
    done += _unmount_below(state, steps)              # 3.
    done += _delete_kernel_objects(prefix, steps)     # 4.
    done += _remove_cni_caches(prefix)                # 5.
    done += _remove_state(state, everything, steps)   # 6.
    return done


def _stop_pods(state: Path, steps: Steps | None) -> list[str]:
    """1. pods: stop the running ones (their supervisors tear down networking), then collect."""
    from sandbox.pod import stage0 as pod
    done: list[str] = []
    if (state / "pods").is_dir():
        for p in pod.list_pods():
            if p.get("state") == "run":
                try:
                    pod.stop(p["uuid"], timeout=5, force=False)
                    done.append(f"stopped pod {p['uuid']}")
                except SandboxError as e:
                    done.append(f"pod {p['uuid']}: {e}")
        done += pod.gc(grace=0, steps=steps)
    return done


def _reset_labs_and_copies(state: Path, steps: Steps | None) -> list[str]:
    """2. labs (their netns, pods, trees), what each notebook recorded, clean copies."""
    from sandbox.course import labs, notebook
    from sandbox.render import treestore
    done: list[str] = []
    if (state / "labs").is_dir():
        for d in sorted((state / "labs").iterdir()):
            if d.name.isdigit():
                try:
                    done += labs.reset(int(d.name))
                except SandboxError as e:
                    done.append(f"lab {d.name}: {e}")
    for d in notebook.sessions():   # what each notebook recorded (a kernel that died left it)
        done += [f"notebook {d.name}: {g}" for g in notebook.recover(d)]
    if state.is_dir():
        try:
            done += [f"closed clean copy {r}" for r in treestore.close_all(steps=steps)]
        except SandboxError as e:
            done.append(f"clean copies: {e}")
    return done


def _unmount_below(state: Path, steps: Steps | None) -> list[str]:
    """3. mounts below the state directory, deepest first."""
    from sandbox._sys import libc
    done: list[str] = []
    for m in mountinfo.below(state):
        try:
            libc.umount(m, libc.MNT_DETACH)
            record(steps, "umount", m)
            done.append(f"unmounted {m}")
        except OSError as e:
            done.append(f"could not unmount {m}: {e}")
    return done


def _delete_kernel_objects(prefix: str, steps: Steps | None) -> list[str]:
    """4. kernel objects with the prefix: netns, stale netns handles, host links, NAT rules."""
    from sandbox._sys import libc
    from sandbox.net import netns
    done: list[str] = []
    for n in netns.list():
        if n.startswith(prefix):
            netns.delete(n, missing_ok=True, steps=steps)
            done.append(f"deleted netns {n}")
    for p in _stale_handles(prefix):
        try:
            libc.umount(str(p), libc.MNT_DETACH)
        except OSError:
            pass
        p.unlink(missing_ok=True)
        done.append(f"removed stale netns handle {p}")
    done += _delete_host_links(prefix, steps)
    done += _remove_host_nat(prefix, steps)
    return done


def _remove_cni_caches(prefix: str) -> list[str]:
    """5. CNI caches on the machine for the kit's networks."""
    done: list[str] = []
    for sub in ("results", "networks"):
        d = CNI_STATE / sub
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.name.startswith(prefix):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    done.append(f"removed CNI cache {p}")
    return done


def _remove_state(state: Path, everything: bool, steps: Steps | None) -> list[str]:
    """6. the state directory (``everything``), or its parts the kit fills again."""
    done: list[str] = []
    if everything:
        if state.exists():
            shutil.rmtree(state, ignore_errors=True)
            done.append(f"removed {state}")
    else:
        for part in STATE_PARTS:
            if (state / part).exists():
                shutil.rmtree(state / part, ignore_errors=True)
                record(steps, "remove", str(state / part))
                done.append(f"removed {state / part}")
    return done
