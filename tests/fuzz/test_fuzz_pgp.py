"""OpenPGP: keys, signatures, secret keys and signed messages, binary and armored, random and
mutated (bytes, packet headers, packet bodies, armor lines), through every reader the kit has.
Nothing escapes but SignatureError (a SandboxError)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sandbox.trust import pgp

from .conftest import budget
from .kit import byte_mutation, only_kit_errors

RSA = pgp.generate_key("Fuzz RSA <rsa@example.com>", bits=1024 + 1024, created=1_700_000_000)
RSA = pgp.add_subkey(RSA, bits=2048, created=1_700_000_100)
ED = pgp.generate_key("Fuzz Ed <ed@example.com>", type="ed25519", created=1_700_000_000)
ED = pgp.revoke(ED, "superseded", code=1, created=1_700_000_200)
DOC = b"the document the signatures are over\n"
SAMPLES = {
    "rsa-public": RSA.public().to_bytes(), "ed-public": ED.public().to_bytes(),
    "rsa-secret": RSA.to_bytes(), "ed-secret": ED.to_bytes(),
    "rsa-sig": pgp.sign(DOC, RSA, armored=False, created=1_700_000_300),
    "ed-sig": pgp.read_signature(pgp.sign(DOC, pgp.generate_key("E2 <e2@x.org>", type="ed25519"),
                                          armored=False)).packet(),
}
KEYRING = [RSA.public(), ED.public()]


def readers(data: bytes) -> None:
    for fn in (pgp.parse_packets, pgp.read_keys, pgp.read_signatures, pgp.read_secret_key,
               pgp.dump_text, pgp.dearmor_blocks, pgp.read_signed_message):
        only_kit_errors(fn, data, show=data)
    only_kit_errors(pgp.verify, DOC, data, KEYRING, show=data)
    keys = only_kit_errors(pgp.read_keys, data, show=data)
    if isinstance(keys, list):
        for k in keys:
            only_kit_errors(k.status, show=data)
            only_kit_errors(pgp.verify, DOC, SAMPLES["rsa-sig"], [k], show=data)


@st.composite
def packet_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Change one packet: its header (tag, length form, length) or a byte of its body, or
    splice packets of another sample in."""
    packets = pgp.parse_packets(data)
    i = draw(st.integers(0, len(packets) - 1))
    p = packets[i]
    how = draw(st.sampled_from(["tag", "length", "body", "splice", "drop", "old-header"]))
    body = p.body
    if how == "body" and body:
        j = draw(st.integers(0, len(body) - 1))
        body = body[:j] + bytes([draw(st.integers(0, 255))]) + body[j + 1:]
    if how == "tag":
        enc = pgp.encode_packet(draw(st.integers(0, 63)), body)
    elif how == "length":
        enc = bytes([0xC0 | p.tag]) + draw(st.sampled_from(
            [b"\xff" + draw(st.binary(min_size=4, max_size=4)), bytes([draw(st.integers(0, 255))]),
             bytes([0xE0 | draw(st.integers(0, 31))])])) + body
    elif how == "old-header":
        enc = bytes([0x80 | (p.tag & 0xF) << 2 | draw(st.integers(0, 3))]) + \
            len(body).to_bytes(4, "big")[-draw(st.sampled_from([1, 2, 4])):] + body
    elif how == "drop":
        enc = b""
    elif how == "splice":
        other = pgp.parse_packets(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
        enc = b"".join(pgp.encode_packet(q.tag, q.body) for q in other[:draw(st.integers(1, 3))])
    else:
        enc = pgp.encode_packet(p.tag, body)
    return b"".join(pgp.encode_packet(q.tag, q.body) if k != i else enc
                    for k, q in enumerate(packets))


@budget(100)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_packets(name: str, data: st.DataObject) -> None:
    readers(data.draw(packet_mutation(SAMPLES[name])))


@budget(120)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_bytes(name: str, data: st.DataObject) -> None:
    readers(data.draw(byte_mutation(SAMPLES[name])))


@budget(80)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_armor(name: str, data: st.DataObject) -> None:
    kind = "PUBLIC KEY BLOCK" if "public" in name else "SIGNATURE" if "sig" in name else "PRIVATE KEY BLOCK"
    text = pgp.armor(SAMPLES[name], kind)
    if data.draw(st.booleans()):
        lines = text.split(b"\n")
        i = data.draw(st.integers(0, len(lines) - 1))
        lines[i] = data.draw(st.sampled_from([b"", b"=AAAA", b"-----END PGP SIGNATURE-----",
                                               b"Comment: x", b"!!!!", lines[i][:3], lines[i] * 2]))
        text = b"\n".join(lines)
    else:
        text = data.draw(byte_mutation(text))
    readers(text)


@budget(60)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    readers(data)


def test_the_samples_read_back() -> None:
    assert pgp.verify(DOC, SAMPLES["rsa-sig"], KEYRING).primary_fingerprint == RSA.fingerprint
    assert len(pgp.read_keys(SAMPLES["rsa-public"])[0].subkeys) == 1
