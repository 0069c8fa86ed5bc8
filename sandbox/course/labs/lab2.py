"""Lab 2: why was it refused? Three images that Bob's trust store refuses, each for another
reason — diagnose them (slide 15; signatures.md, rkt's trust store, RFC 4880 §5.2.3.23).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Iterable

from sandbox.course.labs import LabError, Result, Workspace, gate
from sandbox.course.labs.authoring import code, footer, header, md, todo
from sandbox.errors import SandboxError

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 2
SLUG = "sign-and-trust"
TITLE = "Why was it refused? Diagnose three signed images"
FOLLOWS = "03"
OBJECTIVES = (
    'make a key, sign an ACI and put the signature where appc looks for it',
    'trust the key for a prefix, not as root',
    'watch a one-byte change be refused, and record why',
)
INTRO = """
Slide 15: *Signed By: Alice*. appc signs the `.aci` file with a detached, armored OpenPGP
signature (`hello.aci.asc`), and the runtime accepts it only when the signature is good **and**
its key is trusted for the image's *name* — for the whole name space (root) or for a *prefix* of
it, whole path segments only — **and** the key is still valid for a signature of that date.

Bob's trust store (this lab's own) trusts Alice and Dave for `example.com`. Three images arrive,
each signed, each refused. Your job is Bob's on-call: find out *why* each one was refused, from
the evidence, and answer two follow-up questions. The keys are RSA (the kit's default: rkt's
verifier cannot read Ed25519 keys)."""

CHECKS = [
    "you recorded a diagnosis for every case",
    "each diagnosis matches the evidence",
    "you found the file that was changed in the tampered copy",
    "you said whether the revoked key's older signatures still count",
    "the trust store was not loosened to let a refused image in",
]
STUDENT_HINT = "record a diagnosis for each case"

CAUSES = ("wrong prefix", "revoked key", "tampered copy")

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab2
from sandbox.image import aci
from sandbox.trust import pgp, truststore as trust

ws = labs.workspace(2)
trusted, cases = lab2.setup(ws)      # Bob's trust store, and three refused images
print(lab2.evidence(trusted, cases))
'''),
    md("""## 1. What does Bob trust?

Every file in the trust store is one key for one prefix (rkt's layout). Look at them — what they
say, and what the keys themselves say (`trust.describe` shows a key's own warnings):"""),
    code('''
for k in trusted.list():
    print(k.scope, k.prefix, k.fingerprint[:16], k.uids, "|", k.problem or "can sign")
'''),
    md(f"""## 2. Diagnose

For each case, decide which of {", ".join(repr(c) for c in CAUSES)} explains the refusal,
from evidence you gather yourself: the image's manifest name (`aci.read_manifest`), the
signature's issuer (`pgp.read_signature(...).issuer_fingerprint`), what the signer's key says
about itself, and what `trusted.verify_image(...)` raises. Record
`ws.answer("diagnosis", {{"case-1": …, "case-2": …, "case-3": …}})`."""),
    todo('''
diagnosis = {}
for name, path in cases.items():
    try:
        trusted.verify_image(path)
    except pgp.KeyRevoked:
        diagnosis[name] = "revoked key"
    except pgp.BadSignature:
        diagnosis[name] = "tampered copy"
    except trust.UntrustedSigner:
        diagnosis[name] = "wrong prefix"
ws.answer("diagnosis", diagnosis)
''', '''
diagnosis = {}
ws.answer("diagnosis", diagnosis)
'''),
    md("""## 3. Two follow-up questions

**The tampered copy.** Alice still has the original (`lab2.original(ws)`). Which file *inside*
the tampered archive was changed? Compare the two archives entry by entry (they are tar files
inside gzip: `tarfile.open(path)` reads them) and record its path as the image sees it
(`ws.answer("changed_file", "/…")`).

**The revoked key.** A revocation carries a *reason*. Would a signature this key made *before*
its revocation still be accepted? Read the revocation from the key (`pgp.read_keys(...)`,
`.status()`; the revocation's `revocation_reason` and `hard_revocation`) and record
`ws.answer("older_signatures_count", True or False)`."""),
    todo('''
import tarfile, hashlib

def digests(path):
    with tarfile.open(path) as t:
        return {m.name: hashlib.sha256(t.extractfile(m).read()).hexdigest()
                for m in t if m.isfile()}

tampered = next(cases[n] for n, why in diagnosis.items() if why == "tampered copy")
a, b = digests(lab2.original(ws)), digests(tampered)
ws.answer("changed_file", next("/" + n.removeprefix("rootfs/") for n in a if a[n] != b.get(n)))

revoked_case = next(cases[n] for n, why in diagnosis.items() if why == "revoked key")
signer = pgp.read_signature(trust.signature_path_for(revoked_case).read_bytes()).issuer_fingerprint
key = next(c for c in trusted.keyring_for("example.com/x") if c.find(signer))
ws.answer("older_signatures_count", not key.status()[0].revocation.hard_revocation)
''', '''
'''),
    *footer(NUMBER),
]


# ------------------------------------------------------------------------------- the lab's world


def trust_store(ws: Workspace):
    """Bob's trust store: the lab's own (``trustedkeys`` in the workspace, no system keys)."""
    from sandbox.trust.truststore import TrustStore
    return TrustStore(root=ws.path / "trustedkeys", system_root=ws.path / "no-system-keys")


def setup(ws: Workspace) -> tuple[Any, dict[str, Path]]:
    """Alice's and Dave's keys (RSA), Bob's trust store trusting both for ``example.com``, and
    three refused images under shuffled names ``case-1..3``: one named outside Alice's prefix
    (``examples.com/…``), one signed by Dave whose key now carries a revocation (at random a
    soft or a hard one), one changed after Alice signed it. Idempotent per workspace."""
    from sandbox.image import catalog
    from sandbox.trust import pgp
    from sandbox.trust.truststore import signature_path_for
    store = trust_store(ws)
    d = ws.path / "cases"
    if (d / "cases.json").is_file():
        names = json.loads((d / "cases.json").read_text())
        return store, {n: d / n / "hello.aci" for n in sorted(names)}
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(os.urandom(8))
    now = int(__import__("time").time())
    day = 86400
    alice = pgp.generate_key("Alice <alice@example.com>", bits=2048, created=now - 90 * day)
    dave = pgp.generate_key("Dave <dave@example.com>", bits=2048, created=now - 90 * day)
    names = ["case-1", "case-2", "case-3"]
    rng.shuffle(names)
    causes = dict(zip(names, CAUSES))
    files = {"hello.txt": "hello, world!\n", "etc/hello.conf": "greeting=hello\n",
             "bin/hello": "#!/bin/sh\ncat /hello.txt\n"}      # each holds "hello": one letter changes
    # the original, as Alice signed it
    orig = catalog.small_image(d / "original.aci", "example.com/hello", files)
    signature_path_for(orig).write_bytes(pgp.sign(orig, alice, created=now - 30 * day))
    for name, cause in causes.items():
        (d / name).mkdir()
        target = d / name / "hello.aci"
        if cause == "wrong prefix":
            catalog.small_image(target, "examples.com/hello", files)
            signature_path_for(target).write_bytes(pgp.sign(target, alice, created=now - 20 * day))
        elif cause == "revoked key":
            catalog.small_image(target, "example.com/hello-tools", files)
            signature_path_for(target).write_bytes(pgp.sign(target, dave, created=now - 2 * day))
        else:
            changed = rng.choice(sorted(files))
            bad = dict(files)
            bad[changed] = files[changed].replace("hello", "hellO", 1)
            catalog.small_image(target, "example.com/hello", bad)
            signature_path_for(target).write_bytes(signature_path_for(orig).read_bytes())
            (d / name / ".changed").write_text("/" + changed)
    soft = rng.random() < 0.5
    dave_revoked = pgp.revoke(dave, "moved to a new key" if soft else "laptop stolen",
                              code=pgp.REASON_SUPERSEDED if soft else pgp.REASON_COMPROMISED,
                              created=now - 10 * day)
    store.add("example.com", alice.public().armored())
    store.add("example.com", dave_revoked.public().armored())
    (ws.path / "alice.pub.asc").write_bytes(alice.public().armored())
    (d / "cases.json").write_text(json.dumps(causes))
    return store, {n: d / n / "hello.aci" for n in sorted(names)}


def original(ws: Workspace) -> Path:
    """Alice's image as she signed it (for the comparison)."""
    p = ws.path / "cases" / "original.aci"
    if not p.is_file():
        raise LabError("Run the lab's first cell: the cases are not made yet.")
    return p


def evidence(store: Any, cases: dict[str, Path]) -> str:
    """What Bob's on-call sees first: each case's verdict in one line."""
    return "\n".join(f"{name}: {store.verdict(path)}" for name, path in cases.items())


def verdict(store: Any, aci_path: str | os.PathLike[str]) -> str:
    """Verify an image against a trust store and say what happened, never raising."""
    return store.verdict(aci_path)


# ------------------------------------------------------------------------------- the checks


def _truth(ws: Workspace) -> dict[str, str]:
    try:
        return json.loads((ws.path / "cases" / "cases.json").read_text())
    except (OSError, ValueError):
        return {}


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.image import aci
    from sandbox.trust import pgp
    from sandbox.trust.truststore import signature_path_for
    truth = _truth(ws)
    if not truth:
        yield gate(CHECKS[0], False, "run the lab's first cell: lab2.setup(ws) makes the cases")
        return
    a = ws.answers()
    diag = a.get("diagnosis") or {}
    missing = sorted(set(truth) - set(diag))
    yield gate(CHECKS[0], not missing,
               f"record a diagnosis for each case ({', '.join(missing)} missing): "
               f"ws.answer('diagnosis', {{'case-1': …}}) with one of {', '.join(CAUSES)}")
    if missing:
        return
    store = trust_store(ws)
    cases = {n: ws.path / "cases" / n / "hello.aci" for n in truth}
    hints = []
    for n in sorted(truth):
        if diag[n] == truth[n]:
            continue
        path = cases[n]
        try:
            name = aci.read_manifest(path).name
        except SandboxError:
            name = "(unreadable)"
        sig = pgp.read_signature(signature_path_for(path).read_bytes())
        if truth[n] == "wrong prefix":
            hints.append(f"{n}: the signature is good and Alice's key is trusted — but the manifest "
                         f"says {name}, and 'example.com' is not a whole-segment prefix of it")
        elif truth[n] == "revoked key":
            key = next((c for c in store.keyring_for("example.com/x") if c.find(sig.issuer_fingerprint or "")), None)
            why = key.status()[0].problem if key else "the key is gone"
            hints.append(f"{n}: the bytes match the signature, but {why}")
        else:
            hints.append(f"{n}: the name and the signer are fine, but the file's bytes no longer hash "
                         "to what the signature covers (BadSignature)")
        if diag[n] not in CAUSES:
            hints[-1] += f" (and {diag[n]!r} is not one of {', '.join(CAUSES)})"
    yield Result(CHECKS[1], not hints, "; ".join(hints))
    tampered = next(n for n, c in truth.items() if c == "tampered copy")
    changed = (ws.path / "cases" / tampered / ".changed").read_text()
    said = a.get("changed_file")
    yield Result(CHECKS[2], said == changed,
                 "compare the two archives entry by entry and record the path the image sees, "
                 "like '/etc/hello.conf': ws.answer('changed_file', …)" if said is None else
                 f"you said {said!r}; in {tampered}, a different file's bytes differ from the "
                 "original's" + (" (write it as the image sees it: /path, not rootfs/path)"
                                 if isinstance(said, str) and said.startswith("rootfs") else ""))
    revoked = next(n for n, c in truth.items() if c == "revoked key")
    sig = pgp.read_signature(signature_path_for(cases[revoked]).read_bytes())
    key = next((c for c in store.keyring_for("example.com/x") if c.find(sig.issuer_fingerprint or "")), None)
    rev = key.status()[0].revocation if key else None
    said = a.get("older_signatures_count")
    real = rev is not None and not rev.hard_revocation
    yield Result(CHECKS[3], said is real,
                 "record ws.answer('older_signatures_count', True or False)" if said is None else
                 f"the revocation says '{rev.revocation_reason if rev else '?'}': "
                 + ("a soft reason (superseded, retired) withdraws only signatures made after it"
                    if real else "a hard reason withdraws every signature the key ever made"))
    loosened = [f"{k.scope} {k.prefix or ''}".strip() for k in store.list()
                if k.scope == "root" or (k.prefix and k.prefix != "example.com")]
    orig_ok = True
    try:
        store.verify_image(original(ws))
    except SandboxError:
        orig_ok = False
    yield Result(CHECKS[4], not loosened and orig_ok,
                 (f"the store now trusts keys for {', '.join(loosened)}: a refusal is diagnosed, not "
                  "fixed by trusting more — remove those (trusted.remove(fingerprint, prefix))"
                  if loosened else "Alice's original image no longer verifies: was her key removed?"))


def mistake(ws: Workspace) -> str:
    """A mistake learners make on the finished lab: take the tampered copy for a revocation."""
    truth = _truth(ws)
    d = dict(ws.answers()["diagnosis"])
    tampered = next(n for n, c in truth.items() if c == "tampered copy")
    d[tampered] = "revoked key"
    ws.answer("diagnosis", d)
    return "the file's bytes no longer hash to what the signature covers"
