"""``sandbox net …``: the CNI runtime from the shell, cnitool-style (see sandbox.net.cni).

Plugins run in the caller's network namespace, as with libcni; use ``--node NODE`` (or run the
whole command under ``ip netns exec NODE``) so bridges and NAT rules land in a node netns.
"""
from __future__ import annotations

import argparse
import json
import os

from sandbox.cli import command_group
from sandbox.errors import SandboxError

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("net",)


def register(subparsers: argparse._SubParsersAction) -> None:
    from sandbox.net.cni import DEFAULT_CACHE_DIR, DEFAULT_CONF_DIR

    g = command_group(subparsers, "net", "CNI: attach network namespaces to networks")
    rt = argparse.ArgumentParser(add_help=False)
    rt.add_argument("--conf-dir", default=os.environ.get("NETCONFPATH", DEFAULT_CONF_DIR),
                    metavar="D", help=f"network configurations (default $NETCONFPATH or {DEFAULT_CONF_DIR})")
    rt.add_argument("--cni-path", default=None, metavar="P",
                    help="plugin directories, ':'-separated (default $CNI_PATH or /opt/cni/bin:/usr/lib/cni)")
    rt.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, metavar="D",
                    help=f"result cache (default {DEFAULT_CACHE_DIR}, like libcni)")
    rt.add_argument("--node", default=None, metavar="NETNS",
                    help="run the plugins inside this node netns (default: where this command runs)")
    rt.add_argument("--explain", action="store_true",
                    help="print every plugin exec: env, stdin, stdout, stderr, exit code")

    for cmd, text in (("add", "ADD: attach NETNS to NET"), ("check", "CHECK an attachment"),
                      ("del", "DEL: detach (works twice and after the netns is gone)")):
        p = g.add_parser(cmd, parents=[rt], help=text)
        p.add_argument("net", metavar="NET", help="network name (from --conf-dir)")
        p.add_argument("netns", metavar="NETNS", help="netns name (in /run/netns) or path")
        p.add_argument("--ifname", default=os.environ.get("CNI_IFNAME", "eth0"),
                       help="interface name in the container (default eth0)")
        p.add_argument("--args", default=os.environ.get("CNI_ARGS", ""), metavar="K=V;…",
                       help="CNI_ARGS")
        p.add_argument("--container-id", default=None,
                       help="container ID (default: the netns name)")
        p.add_argument("--cap-args", default=os.environ.get("CAP_ARGS"), metavar="JSON",
                       help="capability arguments, e.g. '{\"mac\": \"…\"}' (runtimeConfig)")
        p.set_defaults(func=_attach, cni_command=cmd)

    p = g.add_parser("gc", parents=[rt], help="DEL stale cached attachments (netns gone), then GC "
                     "to 1.1.0 plugins")
    p.add_argument("net", nargs="?", help="only this network")
    p.set_defaults(func=_gc)

    p = g.add_parser("status", parents=[rt], help="STATUS of each network's plugins (1.1.0)")
    p.add_argument("net", nargs="?", help="only this network")
    p.set_defaults(func=_status)

    p = g.add_parser("list", parents=[rt], help="networks in --conf-dir and cached attachments")
    p.set_defaults(func=_list)

    p = g.add_parser("plugin-dir", help="print the directory of the kit's own CNI plugins")
    p.set_defaults(func=_plugin_dir)


def _runtime(args: argparse.Namespace):
    from sandbox.net.cni import Runtime
    return Runtime(conf_dir=args.conf_dir, cni_path=args.cni_path, cache_dir=args.cache_dir,
                   node=args.node)


def _explained(args: argparse.Namespace, rt, fn):
    from sandbox.net.cni import explain
    try:
        return fn()
    finally:
        if args.explain and rt.calls:
            print(explain(rt.calls), flush=True)


def _attach(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    caps = None
    if args.cap_args:
        from sandbox import bounded
        try:
            caps = bounded.loads(args.cap_args, "--cap-args", limit=bounded.CNI_CONFIG_BYTES)
        except (bounded.BadJSON, bounded.InputTooLarge):
            caps = None
        if not isinstance(caps, dict):
            raise SandboxError("--cap-args must be a JSON object, e.g. '{\"mac\": \"c2:11:22:33:44:55\"}'.")
    kw = dict(container_id=args.container_id, ifname=args.ifname, args=args.args or None,
              capability_args=caps)
    if args.cni_command == "add":
        result = _explained(args, rt, lambda: rt.add(args.net, args.netns, **kw))
        print(json.dumps(result, indent=2))
    elif args.cni_command == "check":
        _explained(args, rt, lambda: rt.check(args.net, args.netns, **kw))
        print(f"CHECK ok: {args.netns} {args.ifname} on {args.net}")
    else:
        _explained(args, rt, lambda: rt.delete(args.net, args.netns, **kw))
    return 0


def _gc(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    reports = _explained(args, rt, lambda: rt.gc(args.net))
    rc = 0
    for r in reports:
        dels = ", ".join(f"{c}/{i}" for c, i in r.deleted) or "nothing"
        print(f"{r.network}: deleted {dels}; kept {len(r.kept)}; "
              f"GC sent to {', '.join(r.plugins_gc) or 'no plugin'}" + (f" ({r.note})" if r.note else ""))
        for e in r.errors:
            print(f"  error: {e}")
            rc = 1
    return rc


def _status(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    out = _explained(args, rt, lambda: rt.status(args.net))
    rc = 0
    for name, st in out.items():
        print(f"{name}: {st}")
        rc |= 0 if isinstance(st, str) else 1
    return rc


def _list(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    nets = rt.networks()
    if not nets:
        print(f"no network configurations in {args.conf_dir}")
    for n in nets:
        print(f"{n.name}\tcniVersion {n.cni_version or '(none: 0.1.0)'}\t"
              f"plugins {' -> '.join(n.types)}\t{n.source}")
    atts = rt.attachments()
    if atts:
        print(f"\nattachments cached in {rt.cache.results}:")
        for a in atts:
            ips = ", ".join(ip.get("address", ip.get("ip", "")) for ip in a.result.get("ips", [])) \
                or (a.result.get("ip4") or {}).get("ip", "")
            print(f"{a.network}\t{a.container_id}\t{a.ifname}\t{a.netns}\t{ips}")
    return 0


def _plugin_dir(args: argparse.Namespace) -> int:
    try:
        from sandbox.net.plugins import plugin_dir
    except ImportError:
        raise SandboxError("The kit's own CNI plugins (sandbox.net.plugins) are not installed yet.",
                           hint="Use the upstream ones meanwhile: --cni-path /usr/lib/cni.") from None
    print(plugin_dir())
    return 0
