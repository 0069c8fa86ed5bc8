"""``sandbox lab list|check N|reset N``: the workshop labs from a terminal (see sandbox.course.labs)."""
from __future__ import annotations

import argparse

from sandbox.cli import command_group

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("lab",)


def register(subparsers: argparse._SubParsersAction) -> None:
    g = command_group(subparsers, "lab", "workshop labs: list them, check your work, reset")
    p = g.add_parser("list", help="the labs, with their notebooks and whether you started them")
    p.set_defaults(func=_list)
    p = g.add_parser("check", help="run lab N's checks on the state it left (exit 0 = all pass)")
    p.add_argument("number", help="the lab's number (e.g. 4)")
    p.set_defaults(func=_check)
    p = g.add_parser("reset", help="remove everything lab N made (namespaces, pods, files)")
    p.add_argument("number", help="the lab's number (e.g. 4)")
    p.set_defaults(func=_reset)


def _list(args: argparse.Namespace) -> int:
    from sandbox import config
    from sandbox.course import labs
    root = config.project_root()
    for lab in labs.discover():
        started = "started" if labs.Workspace(lab.number, create=False).exists() else ""
        print(f"{lab.number:>2}  {lab.title.split('·', 1)[-1].strip():<72} {started}")
        print(f"    {lab.student.relative_to(root)}   (solution: "
              f"{lab.solution.relative_to(root)})")
    return 0


def _check(args: argparse.Namespace) -> int:
    from sandbox.course import labs
    report = labs.run_checks(labs.get(args.number).number)
    print(report)
    return 0 if report.ok else 1


def _reset(args: argparse.Namespace) -> int:
    from sandbox.course import labs
    lab = labs.get(args.number)
    done = labs.reset(lab.number)
    for line in done:
        print(line)
    if not done:
        print(f"lab {lab.number}: nothing to remove")
    return 0
