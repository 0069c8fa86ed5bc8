"""Lab 2: sign, trust a prefix, watch a tampered copy be refused (slide 15; signatures.md).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, checks_for, gate
from sandbox.errors import SandboxError

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


@checks_for(2)
def _checks_2(ws: Workspace) -> Iterable[Result]:
    from sandbox.trust import pgp
    from sandbox.trust.truststore import signature_path_for
    img = ws.path / "hello.aci"
    sig = signature_path_for(img)
    if not img.is_file():
        yield gate("hello.aci exists", False, "run the setup cell (lab2.lab2_image(ws))")
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
