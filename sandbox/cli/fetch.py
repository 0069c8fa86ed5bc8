"""``sandbox fetch`` and ``sandbox discover``: appc discovery and rkt's fetch order.

    sandbox fetch APP|FILE|URL [--insecure-options=image,http,tls,pubkey,all-fetch]
                               [--discovery-port N] [--ca-file CA.pem] [--no-cache]
                               [--max-size SIZE] [--deadline SECONDS]
    sandbox discover APP [--discovery-port N] [--insecure-options=http] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys

from sandbox import _progress
from sandbox.errors import UsageError
from sandbox.steps import Steps

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("fetch", "discover")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure-options", default="", metavar="OPTS",
                   help="comma list of relaxations: image (no signature check), http (allow plain "
                        "HTTP), tls (no certificate check), pubkey, all-fetch")
    p.add_argument("--discovery-port", type=int, metavar="N",
                   help="put this port on the image name's host for discovery (like actool "
                        "--port), e.g. for `sandbox serve` on localhost")
    p.add_argument("--ca-file", metavar="PEM", help="also trust this CA (e.g. from `sandbox serve --tls`)")


def cmd_fetch(args: argparse.Namespace) -> int:
    from sandbox.dist import fetch
    steps = Steps() if args.steps else None
    labels = {}
    for kv in args.label or []:
        if "=" not in kv:
            raise UsageError(f"--label {kv!r} must be written NAME=VALUE.")
        k, v = kv.split("=", 1)
        labels[k] = v
    max_size = None
    if args.max_size is not None:
        from sandbox.bounded import parse_size
        max_size = parse_size(args.max_size)
        if not max_size:
            raise UsageError(f"--max-size {args.max_size!r} is not a size; write bytes with an "
                             "optional K, M or G, e.g. --max-size 4G.")
    res = fetch.fetch(args.ref, labels or None, options=args.insecure_options,
                      discovery_port=args.discovery_port, ca_file=args.ca_file,
                      cache=not args.no_cache, max_size=max_size, deadline=args.deadline,
                      steps=steps, progress=_progress.wanted())
    if steps is not None:
        print(steps, file=sys.stderr)
    print(res.id)
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    from sandbox.dist import discovery, fetch
    opts = fetch.InsecureOptions.parse(args.insecure_options)
    app = discovery.parse_app(args.app)
    if not args.no_defaults:
        app = app.with_platform_defaults()
    t = opts.transport(args.ca_file)
    d = discovery.discover(app, transport=t, port=args.discovery_port)
    if args.json:
        print(json.dumps({"app": str(app), "prefix": d.prefix,
                          "endpoints": [{"aci": e.aci, "asc": e.asc} for e in d.endpoints],
                          "publicKeys": d.public_keys,
                          "candidates": [{"template": c.template, "result": c.reason,
                                          "aci": c.endpoint.aci if c.endpoint else None}
                                         for c in d.candidates]}, indent=2))
    else:
        print(d.summary())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    p = subparsers.add_parser("fetch", help="discover, verify and import an image (APP, FILE.aci or URL)")
    p.add_argument("ref", metavar="APP|FILE|URL",
                   help="name[:version][,label=value...], a local .aci (its .aci.asc beside it), "
                        "or an https URL of an .aci")
    _common(p)
    p.add_argument("--label", action="append", metavar="K=V", help="require a label (repeatable)")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not fill the HTTP cache")
    p.add_argument("--max-size", metavar="SIZE",
                   help="refuse an image larger than this, e.g. 500M or 4G (default 2G, "
                        "$SANDBOX_MAX_DOWNLOAD_BYTES)")
    p.add_argument("--deadline", type=float, metavar="SECONDS",
                   help="give up on an image download that takes longer than this in all "
                        "(default 3600, $SANDBOX_DOWNLOAD_SECONDS); a stall of 20 s ends it anyway")
    p.add_argument("--steps", action="store_true", help="print every request and check to stderr")
    p.set_defaults(func=cmd_fetch)

    d = subparsers.add_parser("discover", help="show the ACI, signature and key URLs for an app (actool discover)")
    d.add_argument("app", metavar="APP", help="name[:version][,label=value...]")
    _common(d)
    d.add_argument("--no-defaults", action="store_true",
                   help="do not add this machine's os/arch labels")
    d.add_argument("--json", action="store_true", help="print JSON, with every template and its fate")
    d.set_defaults(func=cmd_discover)
