"""``sandbox key gen``, ``sandbox sign``, ``sandbox verify``, ``sandbox inspect-signature``.

A thin layer over :mod:`sandbox.trust.pgp` and :mod:`sandbox.trust.truststore` (appc aci.md: an image is signed
with an ASCII-armored detached signature ``<file>.aci.asc``).
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from sandbox import _progress
from sandbox.cli import command_group
from sandbox.errors import SandboxError, UsageError

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("key", "sign", "verify", "inspect-signature")


def _slug(uid: str) -> str:
    m = re.search(r"<([^>]+)>", uid)
    base = (m.group(1) if m else uid).split("@")[0]
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "key"


# what to do when a file is missing, by what it should have been
_MAKE = {"secret key file": "make a key pair with `sandbox key gen --uid NAME --out DIR` and give "
                            "its DIR/NAME.secret.asc",
         "key file": "give a public key file (`sandbox key gen` writes NAME.public.asc)",
         "signature": "sign the image first (`sandbox sign IMAGE.aci --key SECRET.asc`) or "
                      "give the signature with --signature FILE",
         "file": "give a signature (.asc, .sig) or key file"}


def _read(path: str, what: str) -> bytes:
    """A key or signature file, at most KEY_FILE_BYTES (sandbox.bounded)."""
    from sandbox import bounded
    bounded.check_file(path, f"The {what}", _MAKE.get(what, "check the path"))
    return bounded.read_file(path, bounded.KEY_FILE_BYTES, f"the {what} {path}")


def cmd_key_gen(args: argparse.Namespace) -> int:
    from sandbox.trust import pgp
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or _slug(args.uid)
    sec_path, pub_path = out / f"{name}.secret.asc", out / f"{name}.public.asc"
    for p in (sec_path, pub_path):
        if p.exists() and not args.overwrite:
            raise SandboxError(f"{p} already exists; choose another --name or pass --overwrite.")
    expires = int(args.expires_days * 86400) if args.expires_days else None
    key = pgp.generate_key(args.uid, args.type, bits=args.bits, expires=expires)
    fd = os.open(sec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.armored())
    pub_path.write_bytes(key.public().armored())
    print(f"Generated {key.cert.primary.algo_name} key for {args.uid}")
    print(f"  fingerprint: {pgp.group_fingerprint(key.fingerprint)}")
    print(f"  public key:  {pub_path}   (give this to people who verify your images)")
    print(f"  secret key:  {sec_path}   (UNPROTECTED lab key: no passphrase, workshop use only)")
    if args.type == "ed25519":
        print("  note: rkt's verifier cannot read Ed25519 keys; use --type rsa for images rkt should accept.")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from sandbox import bounded
    from sandbox.trust import pgp
    from sandbox.trust import truststore as trust
    if args.hash not in pgp.ACCEPTED_HASHES:
        raise UsageError(f"--hash {args.hash} is not accepted for signatures; use one of "
                         f"{', '.join(sorted(pgp.ACCEPTED_HASHES))}.")
    key = pgp.read_secret_key(_read(args.key, "secret key file"))
    aci = Path(args.aci)
    bounded.check_file(aci, "The image", "give the path of an .aci file (`sandbox image export "
                       "REF OUT.aci` writes one from the store)")
    out = Path(args.output) if args.output else (
        trust.signature_path_for(aci) if args.armor else Path(str(aci) + ".sig"))
    sig = pgp.sign(aci, key, armored=args.armor, hash_algo=args.hash, progress=_progress.wanted())
    out.write_bytes(sig)
    print(f"Signed {aci} with key {pgp.group_fingerprint(key.signing_key().fingerprint)} ({', '.join(key.uids)})")
    print(f"  signature: {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from sandbox.trust import pgp
    from sandbox.trust import truststore as trust
    store = trust.TrustStore()
    if args.keyring:
        ring = [c for k in args.keyring for c in pgp.read_keys(_read(k, "key file"))]
        sig_path = Path(args.signature) if args.signature else trust.signature_path_for(args.aci)
        v = pgp.verify(args.aci, _read(str(sig_path), "signature"), ring, progress=_progress.wanted())
    else:
        v = store.verify_image(args.aci, args.signature, args.name, progress=_progress.wanted())
    name = args.name or (None if args.keyring else trust.image_name_of(args.aci))
    print(f"Good signature{' for ' + name if name else ''}")
    print(f"  signed by:   {', '.join(v.uids) or '(no user ID)'}")
    print(f"  key:         {pgp.group_fingerprint(v.signer_fingerprint)}")
    if v.signer_fingerprint != v.primary_fingerprint:
        print(f"  primary key: {pgp.group_fingerprint(v.primary_fingerprint)}")
    print(f"  made:        {v.created.strftime('%Y-%m-%d %H:%M:%S UTC')} with {v.hash_algo}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from sandbox.trust import pgp
    print(pgp.dump_text(_read(args.file, "file")))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    # an argparse table: the same add_parser/add_argument shape as every cli module's, other
    # options; tables stay per command (sandbox.cli.command_group holds what they share)
    key = command_group(subparsers, "key", "make OpenPGP keys for signing images")
    gen = key.add_parser("gen", help="generate a signing key (writes NAME.secret.asc and NAME.public.asc)")
    gen.add_argument("--uid", required=True, help='user ID, e.g. "Alice <alice@example.com>"')
    gen.add_argument("--out", required=True, metavar="DIR", help="directory for the key files")
    gen.add_argument("--type", choices=["rsa", "ed25519"], default="rsa",
                     help="rsa (default; rkt can verify it) or ed25519")
    gen.add_argument("--bits", type=int, default=3072, help="RSA key size (default 3072)")
    gen.add_argument("--name", help="file name stem (default: from the e-mail address)")
    gen.add_argument("--expires-days", type=float, metavar="DAYS", help="the key expires after DAYS")
    gen.add_argument("--overwrite", action="store_true", help="replace existing key files")
    gen.set_defaults(func=cmd_key_gen)

    s = subparsers.add_parser("sign", help="sign an image: writes the detached signature IMAGE.aci.asc")
    s.add_argument("aci", metavar="ACI")
    s.add_argument("--key", required=True, metavar="SECRET.asc", help="armored secret key file")
    s.add_argument("--output", "-o", metavar="FILE", help="where to write the signature")
    s.add_argument("--binary", dest="armor", action="store_false",
                   help="write a binary signature (default: ASCII-armored)")
    s.add_argument("--hash", default="SHA256", type=str.upper,
                   help="digest algorithm: SHA256 (default), SHA384, SHA512, SHA224, SHA3-256, SHA3-512")
    s.set_defaults(func=cmd_sign)

    v = subparsers.add_parser("verify", help="verify an image's signature against the trust store")
    v.add_argument("aci", metavar="ACI")
    v.add_argument("--signature", metavar="FILE", help="signature file (default: ACI.asc beside the image)")
    v.add_argument("--name", help="image name to pick trusted keys for (default: the manifest's name)")
    v.add_argument("--keyring", action="append", metavar="KEYFILE",
                   help="verify against these public keys instead of the trust store")
    v.set_defaults(func=cmd_verify)

    i = subparsers.add_parser("inspect-signature", help="show the OpenPGP packets of a signature or key file")
    i.add_argument("file", metavar="FILE")
    i.set_defaults(func=cmd_inspect)
