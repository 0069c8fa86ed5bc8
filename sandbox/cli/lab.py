"""``sandbox lab list|check N|reset N|solution N``: the workshop labs from a terminal
(see sandbox.course.labs)."""
from __future__ import annotations

import argparse

from sandbox.cli import command_group

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("lab",)


def register(subparsers: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    g = command_group(subparsers, "lab", "workshop labs: list them, check your work, reset")
    p = g.add_parser("list", help="the labs, their notebooks, and your checks passed / total")
    p.set_defaults(func=_list)
    p = g.add_parser("check", help="run lab N's checks on the state it left (exit 0 = all pass)")
    p.add_argument("number", help="the lab's number (e.g. 4)")
    p.set_defaults(func=_check)
    p = g.add_parser("reset", help="remove everything lab N made (namespaces, pods, files)")
    p.add_argument("number", help="the lab's number (e.g. 4)")
    p.set_defaults(func=_reset)
    p = g.add_parser("solution", help="write lab N's reference solution notebook (or 'all')")
    p.add_argument("number", help="the lab's number (e.g. 4), or 'all'")
    p.add_argument("--out", metavar="DIR",
                   help="write NN-slug.solution.ipynb into DIR (default: beside the lab's notebook)")
    p.set_defaults(func=_solution)


def _when(t: float) -> str:
    import time
    lt, now = time.localtime(t), time.localtime()
    same_day = lt[:3] == now[:3]
    return time.strftime("today %H:%M" if same_day else "%d %b %H:%M", lt)


def _list(args: argparse.Namespace) -> int:
    from sandbox import config
    from sandbox.course import labs, progress
    root = config.project_root()
    found = labs.discover()
    width = max((len(l.title) for l in found), default=20)
    for lab in found:
        rec = progress.lab(lab.number)
        total = len(lab.checks)
        if rec:
            state = f"{rec['passed']}/{rec.get('total', total)} checks, {_when(rec['time'])}"
            if rec.get("done"):
                state += " — passed" if rec["passed"] == rec.get("total") else \
                    f" (passed {_when(rec['done'])})"
        elif labs.Workspace(lab.number, create=False).exists():
            state = f"started, not checked (0/{total})"
        else:
            state = f"not started (0/{total})"
        print(f"{lab.number:>2}  {lab.title:<{width}}  {state}")
        print(f"    {_rel(lab.student, root)}   after notebook {lab.follows}")
    return 0


def _rel(path, root) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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


def _solution(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sandbox import config
    from sandbox.course import labs
    numbers = ([l.number for l in labs.discover()] if args.number == "all"
               else [labs.get(args.number).number])
    out = Path(args.out) if args.out else None
    for n in numbers:
        dest = labs.write_solution(n, out)
        print(f"wrote the reference solution of lab {n}: {_rel(dest, config.project_root())}")
    if out is None:
        print("(git ignores these files; open one in JupyterLab beside the lab's own notebook)")
    return 0
