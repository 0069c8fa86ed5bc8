"""``sandbox reset``: remove every pod, netns, link, mount, IP, iptables rule and cache the kit
made (see sandbox.course.reset). Asks first, unless ``--yes``."""
from __future__ import annotations

import argparse
import sys

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("reset",)



def register(subparsers: argparse._SubParsersAction) -> None:
    from sandbox import config
    p = subparsers.add_parser("reset", help="remove everything the kit made on this machine")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--all", dest="everything", action="store_true",
                   help="also remove the image store and trusted keys (the whole $SANDBOX_DIR)")
    p.add_argument("--prefix", default=config.NAME_PREFIX,
                   help=f"only kernel objects named with this prefix (default {config.NAME_PREFIX})")
    p.set_defaults(func=_reset)


def _reset(args: argparse.Namespace) -> int:
    from sandbox.course import reset
    todo = reset.plan(args.prefix, args.everything)
    if not todo:
        print("sandbox reset: nothing to remove.")
        return 0
    if not args.yes:
        print("sandbox reset will remove:")
        for line in todo:
            print(f"  {line}")
        if not sys.stdin.isatty():
            print("sandbox: not a terminal, so nothing was removed; run `sandbox reset --yes`.",
                  file=sys.stderr)
            return 1
        if input("Remove all of this? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing removed.")
            return 1
    for line in reset.reset(prefix=args.prefix, everything=args.everything):
        print(line)
    return 0
