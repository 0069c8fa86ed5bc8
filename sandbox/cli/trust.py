"""``sandbox trust``: decide which keys may sign which image names (rkt trust, rkt/trust.go).

    sandbox trust --prefix example.com/app KEYFILE|URL [--yes]
    sandbox trust --root KEYFILE|URL [--yes]
    sandbox trust --list
    sandbox trust --rm FINGERPRINT [--prefix P | --root]
"""
from __future__ import annotations

import argparse
import sys

from sandbox.errors import SandboxError, UsageError

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("trust",)


def _confirm(prompt: str) -> bool:
    """Ask until the answer is yes or no (y / n, any case, as other prompts accept them)."""
    while True:
        print(prompt, end="", flush=True)
        answer = sys.stdin.readline()
        if not answer:
            return False
        answer = answer.strip().lower()
        if answer in ("yes", "y", "no", "n"):
            return answer.startswith("y")
        print("Please answer yes or no.")


def cmd_trust(args: argparse.Namespace) -> int:
    from sandbox.trust import pgp
    from sandbox.trust import truststore as trust
    store = trust.TrustStore()
    if args.list:
        keys = store.list()
        if not keys:
            print("No trusted keys. Add one with `sandbox trust --prefix NAME KEYFILE`.")
        for k in keys:
            where = "root (every image)" if k.scope == "root" else f"prefix {k.prefix}"
            if k.masked:
                print(f"{k.fingerprint}  {where}  masked (empty local file hides the system key)")
            else:
                print(f"{k.fingerprint}  {where}  [{k.origin}]  {', '.join(k.uids)}"
                      + (f"  (cannot sign: {k.problem})" if k.problem else ""))
        return 0
    if args.rm:
        for p in store.remove(args.rm, args.prefix, root=args.root):
            print(f"Removed trust: {p}")
        return 0
    if args.root and args.prefix:
        raise UsageError("--root and --prefix cannot be used together; give --prefix NAME for "
                         "images under NAME, or --root for every image.")
    if args.root and not args.keys:
        raise UsageError("--root needs a key file or URL; keys are only discovered for a --prefix.")
    if not args.root and not args.prefix:
        if not args.keys:
            raise UsageError("Give --prefix NAME with a key file or URL (or --list, --rm FINGERPRINT).")
        raise UsageError("Refusing implicit unbounded trust: give --prefix NAME (or --root for every image).")
    prefix = None if args.root else trust.check_prefix(args.prefix)
    sources = args.keys or _discover_keys(prefix, args)
    for source in sources:
        data = trust.fetch_key(source, insecure_allow_http=args.insecure_allow_http, ca_file=args.ca_file)
        trust.refuse_secret(data, source)
        certs = pgp.read_keys(data)
        if len(certs) != 1:
            raise SandboxError(f"{source} holds {len(certs)} keys; trust them one file at a time.")
        cert = certs[0]
        scope = "every image (root)" if prefix is None else f'images under prefix "{prefix}"'
        print(f"Key from {source}, for {scope}:")
        print(trust.describe(cert))
        if not args.yes:
            if not sys.stdin.isatty():
                raise SandboxError("No terminal to ask on (a script, a notebook's ! cell), so "
                                   "nothing was trusted: check the fingerprint above, then run "
                                   "the same command with --yes.")
            if not _confirm("Are you sure you want to trust this key (yes/no)? "):
                print("Not trusted.")
                return 1
        path = store.add(prefix, data, root=prefix is None)
        print(f'Added key for {"root" if prefix is None else "prefix " + repr(prefix)} at "{path}"')
    return 0


def _discover_keys(prefix: str, args: argparse.Namespace) -> list[str]:
    """rkt trust with no key: meta discovery of ``ac-discovery-pubkeys`` for the prefix."""
    from sandbox.dist import discovery

    d = discovery.discover_public_keys(prefix, allow_http=args.insecure_allow_http, ca_file=args.ca_file,
                                       port=args.discovery_port)
    print(f"Discovered public keys for {prefix}: {', '.join(d.public_keys)}")
    return d.public_keys


def register(subparsers: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    p = subparsers.add_parser("trust", help="trust a public key for an image name prefix (or list/remove)")
    p.add_argument("keys", nargs="*", metavar="KEYFILE|URL",
                   help="armored public key file or https URL (none: discover the prefix's ac-discovery-pubkeys)")
    p.add_argument("--prefix", help="image name prefix the key may sign, e.g. example.com/app")
    p.add_argument("--root", action="store_true", help="trust the key for every image name")
    p.add_argument("--yes", action="store_true", help="do not ask; I have checked the fingerprint")
    p.add_argument("--insecure-allow-http", action="store_true", help="allow fetching the key over http")
    p.add_argument("--ca-file", metavar="PEM", help="CA certificate(s) for https key URLs (e.g. sandbox serve --tls)")
    p.add_argument("--discovery-port", type=int, metavar="N",
                   help="port for meta discovery when no key is given (lab servers on localhost)")
    p.add_argument("--list", action="store_true", help="list trusted keys")
    p.add_argument("--rm", metavar="FINGERPRINT", help="stop trusting a key")
    p.set_defaults(func=cmd_trust)
