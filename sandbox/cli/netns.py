"""``sandbox netns add|del|list|exec``: named network namespaces (see sandbox.net.netns)."""
from __future__ import annotations

import argparse
import sys

from sandbox.cli import command_group
from sandbox.errors import UsageError
from sandbox.steps import Steps

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("netns",)


def register(subparsers: argparse._SubParsersAction) -> None:
    from sandbox.net import netns
    g = command_group(subparsers, "netns", "named network namespaces (the CNI slide's step 1)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--netns-dir", default=netns.DEFAULT_DIR, metavar="DIR",
                        help=f"where handles live (default {netns.DEFAULT_DIR}, shared with ip netns)")

    p = g.add_parser("add", parents=[common], help="create a netns: unshare(CLONE_NEWNET) in a "
                     "helper, bind-mount its /proc/PID/ns/net onto DIR/NAME")
    p.add_argument("name")
    p.add_argument("--node", action="store_true",
                   help="make it a node: lo up and net.ipv4.ip_forward=1 inside (plays the host)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the steps taken")
    p.set_defaults(func=_add)

    p = g.add_parser("del", parents=[common], help="unmount and remove a netns handle")
    p.add_argument("name")
    p.set_defaults(func=_del)

    p = g.add_parser("list", parents=[common], help="list netns handles with their inode numbers")
    p.set_defaults(func=_list)

    p = g.add_parser("exec", parents=[common], help="run a command inside a netns (setns, then exec)")
    p.add_argument("name")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS…]")
    p.set_defaults(func=_exec)


def _name(name: str, dir: str) -> str:
    """A netns name as the CLI takes it: one path component, the handle being DIR/NAME (so
    `netns list` shows every handle `netns add` made). The library also takes a path (the
    slide's ``myns``); from the shell, ``bad/name`` was a typo that bind-mounted a namespace
    at ./bad/name, in whatever directory the command ran."""
    from sandbox.net import netns
    if "/" in name:
        raise UsageError(f"'{name}' is not a network namespace name: a name is one path "
                         f"component (letters, digits, '.', '_', '-'), and its handle goes to "
                         f"{dir}/NAME; give a plain name, or --netns-dir DIR for another "
                         "directory.")
    netns.path_of(name, dir)            # the same rule as the library: one sentence if not
    return name


def _add(args: argparse.Namespace) -> int:
    from sandbox.net import netns
    _name(args.name, args.netns_dir)
    steps = Steps()
    make = netns.node_create if args.node else netns.create
    path = make(args.name, args.netns_dir, steps=steps)
    if args.verbose:
        print(steps)
    print(f"{path}  net:[{netns.ns_inode(path)}]  (ours: net:[{netns.ns_inode()}])")
    return 0


def _del(args: argparse.Namespace) -> int:
    from sandbox.net import netns
    netns.delete(_name(args.name, args.netns_dir), args.netns_dir)
    return 0


def _list(args: argparse.Namespace) -> int:
    from sandbox.net import netns
    for name in netns.list(args.netns_dir):
        print(f"{name}\tnet:[{netns.ns_inode(netns.path_of(name, args.netns_dir))}]")
    return 0


def _exec(args: argparse.Namespace) -> int:
    from sandbox.net import netns
    _name(args.name, args.netns_dir)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("Give the command to run after --, e.g. sandbox netns exec NAME -- ip addr.")
    sys.stdout.flush()
    netns.exec_(args.name, cmd, dir=args.netns_dir)
    return 0  # not reached: exec replaced this process
