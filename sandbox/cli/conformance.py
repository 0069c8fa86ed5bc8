"""``sandbox conformance`` (alias ``ace-validate``): appc's ACE validator run as a pod by this
runtime — a thin layer over :mod:`sandbox.pod.conformance`."""
from __future__ import annotations

import argparse
import json

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("conformance", "ace-validate")


def cmd_conformance(args: argparse.Namespace) -> int:
    from sandbox.pod import conformance
    nets = [n for part in (args.net or ["default"]) for n in part.split(",") if n]
    r = conformance.run(net=nets, keep=args.keep)
    if args.json:
        print(json.dumps({"uuid": r.uuid, "passed": r.passed, "podExitCode": r.pod_exit_code,
                          "checks": {m: {"exitCode": c.exit_code, "verdict": c.verdict,
                                         "reasons": c.reasons} for m, c in r.checks.items()}},
                         indent=2))
    else:
        print(r)
        if args.keep:
            print(f"kept: `sandbox logs {r.uuid}`, then `sandbox rm {r.uuid}`")
    return 0 if r.passed else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conformance", aliases=["ace-validate"],
                       help="run appc's ACE validator (main + sidekick images) as a pod here")
    p.add_argument("--net", action="append", metavar="NET",
                   help="the pod's network, as for `sandbox run` (default: default)")
    p.add_argument("--keep", action="store_true", help="keep the exited pod to inspect it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_conformance)
