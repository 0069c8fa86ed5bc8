"""``sandbox doctor``: is this machine ready for the workshop? (see sandbox.course.doctor)"""
from __future__ import annotations

import argparse

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("doctor",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor", help="check this machine for the workshop: root, kernel, tools, state, leftovers",
        description="Run every readiness check and print one line each, with what to do. "
                    "Exit 1 when a check fails (! lines are warnings).")
    p.add_argument("checks", nargs="*", metavar="CHECK",
                   help="run only these (root netns overlay cgroups openat2 tools widgets state "
                        "clock proxy kernels leftovers)")
    p.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from sandbox.course import doctor
    findings = doctor.run(args.checks or None)
    width = max(len(f.check) for f in findings)
    for f in findings:
        print(f.line(width))
    failed = [f for f in findings if not f.ok]
    if failed:
        print(f"{len(failed)} check(s) failed: fix them (the line says how), then run "
              "`sandbox doctor` again.")
    return 1 if failed else 0
