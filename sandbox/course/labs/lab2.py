"""Lab 2: sign, trust a prefix, watch a tampered copy be refused (slide 15; signatures.md).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.errors import SandboxError
from sandbox.course.labs.authoring import code, footer, header, md, todo

NUMBER = 2
SLUG = "sign-and-trust"
TITLE = "Sign an image, trust a prefix, refuse a tampered copy"
FOLLOWS = "03"
INTRO = """
Slide 15: *Signed By: Alice*. appc signs the `.aci` file with a detached, armored OpenPGP
signature (`hello.aci.asc`), and the runtime accepts it only when the signer's key is trusted for
the image's name — for the whole name space (root) or for a *prefix* like `example.com`."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    'hello.aci has a signature next to it',
    "Alice's key is trusted for a prefix of example.com/hello (not as root)",
    'the signed image is accepted',
    'a tampered copy is refused as a bad signature',
    'you recorded why it was refused',
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = 'no hello.aci.asc yet'

CELLS = [
    *header(NUMBER, TITLE, INTRO),
    code('''
import shutil

from sandbox.course import labs
from sandbox.course.labs import lab1, lab2

from sandbox.trust import pgp, truststore as trust
ws = labs.workspace(2)
aci_path = lab2.lab2_image(ws)        # example.com/hello, uncompressed so one byte is easy to change
trusted = lab2.trust_store(ws)        # the lab's own trust store (rkt's root.d / prefix.d layout)
aci_path
'''),
    md("## 1. Alice's key\n\n**TODO**: make Alice a key (`pgp.generate_key(\"Alice <alice@example.com>\", "
       "type=\"ed25519\")`) and save her public key to `ws.path / \"alice.pub.asc\"`."),
    todo('''
alice = pgp.generate_key("Alice <alice@example.com>", type="ed25519")
(ws.path / "alice.pub.asc").write_bytes(alice.public().armored())
alice.public().fingerprint
''', '''
alice = None  # TODO: pgp.generate_key(...), then save alice.public().armored()
'''),
    md("## 2. Sign\n\n**TODO**: `pgp.sign(aci_path, alice)` returns the armored signature; write "
       "it where appc looks for it: `trust.signature_path_for(aci_path)`."),
    todo('''
signature = pgp.sign(aci_path, alice)
trust.signature_path_for(aci_path).write_bytes(signature)
print(signature.decode())
''', '''
# TODO: sign aci_path with alice and write the signature to trust.signature_path_for(aci_path)
'''),
    md("Bob (the runtime) does not know Alice yet:"),
    code('lab2.verdict(trusted, aci_path)'),
    md("## 3. Trust Alice — for `example.com` only\n\n**TODO**: `trusted.add(prefix, key)` with the "
       "prefix `example.com` (not as a root key: she should not be able to sign `other.org/…`)."),
    todo('''
trusted.add("example.com", alice.public().armored())
trusted.list()
''', '''
# TODO: trusted.add("example.com", <Alice's armored public key>)
'''),
    code('lab2.verdict(trusted, aci_path)'),
    md("## 4. Mallory changes one byte\n\n**TODO**: make `ws.path / \"tampered.aci\"`: a copy of "
       "hello.aci with one byte of `Hello, world!` changed (`lab1.flip_byte(src, dst, b\"Hello, world!\")`), "
       "and put Alice's signature next to it as `tampered.aci.asc`."),
    todo('''
tampered = ws.path / "tampered.aci"
lab1.flip_byte(aci_path, tampered, b"Hello, world!")
shutil.copy(trust.signature_path_for(aci_path), trust.signature_path_for(tampered))
''', '''
tampered = ws.path / "tampered.aci"
# TODO: copy aci_path to tampered with one byte changed, and copy the signature next to it
'''),
    md("**TODO**: verify the tampered copy with `trusted.verify_image(tampered)`; catch the "
       "`pgp.SignatureError` and record its class name with `ws.answer(\"refused_because\", …)`."),
    todo('''
try:
    trusted.verify_image(tampered)
except pgp.SignatureError as e:
    print(f"{type(e).__name__}: {e}")
    ws.answer("refused_because", type(e).__name__)
''', '''
# TODO: try trusted.verify_image(tampered); record type(e).__name__ of the refusal
'''),
    *footer(NUMBER),
]


LAB2_IMAGE = "example.com/hello"


def lab2_image(ws: Workspace) -> Path:
    """Build the image to sign: ``example.com/hello`` as an *uncompressed* ACI (so one byte of
    hello.txt can be changed without breaking the archive)."""
    from sandbox.image import aci
    layout = ws.path / "hello"
    (layout / "rootfs").mkdir(parents=True, exist_ok=True)
    (layout / "rootfs" / "hello.txt").write_text("Hello, world!\n")
    (layout / "manifest").write_text(json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": LAB2_IMAGE,
        "labels": [{"name": "version", "value": "1.0.0"}]}, indent=2))
    out = ws.path / "hello.aci"
    aci.build(layout, out, compression="none", overwrite=True)
    return out


def trust_store(ws: Workspace):
    """The lab's own trust store (``trustedkeys`` in the workspace, no system keys)."""
    from sandbox.trust.truststore import TrustStore
    return TrustStore(root=ws.path / "trustedkeys", system_root=ws.path / "no-system-keys")


def verdict(store: Any, aci_path: str | os.PathLike[str]) -> str:
    """Verify an image against a trust store and say what happened, never raising."""
    try:
        v = store.verify_image(aci_path)
    except SandboxError as e:
        return f"REFUSED ({type(e).__name__}): {e}"
    except OSError as e:
        return f"REFUSED: {e}"
    return (f"ACCEPTED: {Path(aci_path).name} is signed by {', '.join(v.uids) or '?'} "
            f"(key {v.primary_fingerprint}), trusted for its name")


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.trust import pgp
    from sandbox.trust.truststore import signature_path_for
    img = ws.path / "hello.aci"
    sig = signature_path_for(img)
    if not img.is_file():
        yield gate("hello.aci has a signature next to it", False,
                   "there is no hello.aci to sign yet: run the setup cell (lab2.lab2_image(ws))")
        return
    yield gate("hello.aci has a signature next to it", sig.is_file(),
                f"no {sig.name} yet: sign with pgp.sign(aci_path, alice) and write the bytes to "
                "trust.signature_path_for(aci_path)")
    if not sig.is_file():
        return
    store = trust_store(ws)
    keys = store.list()
    root_keys = [k for k in keys if k.scope == "root" and not k.masked]
    prefixed = [k for k in keys if k.scope == "prefix" and k.prefix and not k.masked]
    if not keys:
        yield gate("Alice's key is trusted for a prefix", False,
                    "the lab's trust store is empty: trusted.add('example.com', "
                    "alice.public().armored())")
        return
    hint = ""
    if root_keys:
        hint = ("a key is trusted as a root key (for every name); trust Alice only for the "
                "prefix example.com: trusted.remove(fingerprint, root=True), then "
                "trusted.add('example.com', …)")
    elif not any(LAB2_IMAGE == k.prefix or LAB2_IMAGE.startswith(k.prefix + "/")
                 for k in prefixed):
        hint = (f"the trusted prefixes ({', '.join(k.prefix for k in prefixed)}) do not cover "
                f"{LAB2_IMAGE}: a prefix is whole path segments, e.g. 'example.com'")
    yield Result("Alice's key is trusted for a prefix of example.com/hello (not as root)",
                 not hint, hint)
    try:
        store.verify_image(img)
        yield Result("the signed image is accepted", True)
    except SandboxError as e:
        yield Result("the signed image is accepted", False, str(e))
    tampered = ws.path / "tampered.aci"
    if not tampered.is_file():
        yield Result("a tampered copy is refused", False,
                     "no tampered.aci yet: copy hello.aci, change one byte of hello.txt inside "
                     "it, and copy the signature next to it as tampered.aci.asc")
        return
    if tampered.read_bytes() == img.read_bytes():
        yield Result("a tampered copy is refused", False,
                     "tampered.aci is byte-for-byte hello.aci: change one byte")
        return
    if not signature_path_for(tampered).is_file():
        yield Result("a tampered copy is refused", False,
                     "tampered.aci has no tampered.aci.asc: copy hello.aci.asc there, so the "
                     "signature claims to be for it")
        return
    try:
        store.verify_image(tampered)
        yield Result("a tampered copy is refused", False,
                     "tampered.aci was ACCEPTED: is it really different from the signed bytes?")
    except pgp.BadSignature:
        yield Result("a tampered copy is refused as a bad signature", True)
    except SandboxError as e:
        yield Result("a tampered copy is refused as a bad signature", False,
                     f"it was refused, but for another reason ({type(e).__name__}: {e})")
    said = ws.answers().get("refused_because")
    yield Result("you recorded why it was refused", said == "BadSignature",
                 "catch the error of trusted.verify_image(tampered) and record its class name: "
                 "ws.answer('refused_because', type(e).__name__)" if said is None else
                 f"you recorded {said!r}; the refusal raised pgp.BadSignature")
    # failcheck: the signature's key is gone for good
    try:
        signer = pgp.read_signature(sig.read_bytes()).issuer_fingerprint
    except Exception:  # noqa: BLE001
        signer = None
    have = {k.fingerprint for k in keys}
    if signer and signer not in have and not (ws.path / "alice.pub.asc").is_file():
        yield Result("the key that signed hello.aci is still known", False,
                     "hello.aci.asc was made by a key that is neither trusted nor saved "
                     "(alice.pub.asc); run `sandbox lab reset 2` and do the lab again",
                     "failcheck")


def mistake(ws: Workspace) -> str:
    """A mistake learners make on the finished lab: a "tampered" copy that is not changed.
    Returns what the check then says."""
    (ws.path / "tampered.aci").write_bytes((ws.path / "hello.aci").read_bytes())
    return "tampered.aci is byte-for-byte hello.aci"
