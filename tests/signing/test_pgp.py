"""OpenPGP building blocks, each checked against an independent oracle (GnuPG, pysequoia, the
CRC catalogue, hashlib)."""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from sandbox.trust import pgp

from .conftest import needs_gpg

KEYS: dict[str, pgp.SecretKey] = {}


def key(kind: str) -> pgp.SecretKey:
    """One key per kind for the module (RSA 2048 keeps the suite fast)."""
    if kind not in KEYS:
        KEYS[kind] = pgp.generate_key(f"Test {kind} <{kind}@example.com>", kind, bits=2048)
    return KEYS[kind]


# ---------------------------------------------------------------- armor, packets


def test_crc24_catalogue_check_value() -> None:
    # CRC-24/OPENPGP from the CRC catalogue: check value of b"123456789" is 0x21CF02.
    assert pgp.crc24(b"123456789") == 0x21CF02
    assert pgp.crc24(b"") == 0xB704CE


def test_armor_roundtrip_and_damaged_checksum() -> None:
    data = bytes(range(256)) * 3
    text = pgp.armor(data, "SIGNATURE")
    assert pgp.dearmor(text) == data
    lines = text.decode().splitlines()
    assert lines[0] == "-----BEGIN PGP SIGNATURE-----" and lines[-1] == "-----END PGP SIGNATURE-----"
    assert all(len(l) <= 64 for l in lines[2:-2])
    crc_line = lines[-2]
    assert crc_line.startswith("=") and base64.b64decode(crc_line[1:]) == pgp.crc24(data).to_bytes(3, "big")
    # flip one base64 character in the body: the CRC-24 catches it
    body = lines[2]
    lines[2] = ("B" if body[0] != "B" else "C") + body[1:]
    with pytest.raises(pgp.MalformedSignature, match="CRC-24"):
        pgp.dearmor("\n".join(lines))


@needs_gpg
def test_gpg_dearmors_our_armor(gnupg, tmp_path: Path) -> None:
    data = bytes(range(200))
    (tmp_path / "x.asc").write_bytes(pgp.armor(data, "MESSAGE"))
    out = gnupg.run("--dearmor", "--output", "-", str(tmp_path / "x.asc")).stdout
    assert out == data


def test_new_format_lengths_and_partial_bodies() -> None:
    for n in (0, 191, 192, 8383, 8384, 100_000):
        body = bytes([7]) * n
        pkt = pgp.encode_packet(11, body)
        (p,) = pgp.parse_packets(pkt)
        assert (p.tag, p.body, p.new_format) == (11, body, True)
    # partial body lengths (RFC 9580 §4.2.1.4), built by hand: 0xE1 = 2 bytes, then 0xE0 = 1, then final 3
    raw = bytes([0xC0 | 11, 0xE1]) + b"ab" + bytes([0xE0]) + b"c" + bytes([3]) + b"def"
    (p,) = pgp.parse_packets(raw)
    assert p.body == b"abcdef" and p.partial


def test_old_format_headers() -> None:
    # old format: tag in bits 5-2, length type in bits 1-0 (0: one octet, 1: two, 2: four, 3: to the end)
    for ltype, length in ((0, b"\x03"), (1, b"\x00\x03"), (2, b"\x00\x00\x00\x03")):
        raw = bytes([0x80 | (2 << 2) | ltype]) + length + b"xyz"
        (p,) = pgp.parse_packets(raw)
        assert (p.tag, p.body, p.new_format) == (2, b"xyz", False)
    (p,) = pgp.parse_packets(bytes([0x80 | (11 << 2) | 3]) + b"until the end")
    assert p.body == b"until the end"
    with pytest.raises(pgp.MalformedSignature):
        pgp.parse_packets(bytes([0x80 | (2 << 2)]) + b"\x09abc")


# ---------------------------------------------------------------- keys and fingerprints


@needs_gpg
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_fingerprint_and_secret_key_match_gpg(gnupg, kind: str) -> None:
    k = key(kind)
    imp = gnupg.import_(k.armored())
    assert b"secret keys imported: 1" in imp.stderr, imp.stderr
    assert gnupg.fpr(k.uids[0]) == k.fingerprint
    # the v4 fingerprint, computed here from the packet bytes independently
    body = k.public().primary.body
    assert hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest() == k.fingerprint
    assert re.fullmatch(r"[0-9a-f]{40}", k.public().fingerprint)


@needs_gpg
@pytest.mark.parametrize("algo", ["rsa3072", "ed25519"])
def test_read_gpg_certificates(gnupg, algo: str) -> None:
    fpr = gnupg.gen(f"G {algo} <g@example.com>", algo, "sign")
    for armor in (True, False):
        (cert,) = pgp.read_keys(gnupg.export(fpr, armor=armor))
        assert cert.fingerprint == fpr
        assert cert.uids == [f"G {algo} <g@example.com>"]
        assert cert.status()[0].usable, cert.status()[0].problem


def test_secret_key_roundtrip_and_lab_label() -> None:
    for kind in ("rsa", "ed25519"):
        k = key(kind)
        text = k.armored()
        assert pgp.LAB_KEY_COMMENT.encode() in text
        again = pgp.read_secret_key(text)
        assert again.fingerprint == k.fingerprint
        sig = pgp.sign(b"hello", again)
        assert pgp.verify(b"hello", sig, [k.public()]).primary_fingerprint == k.fingerprint


def test_self_signature_is_checked() -> None:
    """Changing the user ID breaks the 0x13 self-signature: the key no longer counts."""
    k = key("rsa")
    cert = k.public()
    forged = pgp.PublicKey(cert.primary, [], [pgp.UserID("Mallory <m@example.com>", b"Mallory <m@example.com>",
                                                         list(cert.user_ids[0].sigs))], [])
    sig = pgp.sign(b"data", k)
    with pytest.raises(pgp.InvalidKey, match="no valid self-signature"):
        pgp.verify(b"data", sig, [forged])


def test_key_without_signing_flag_is_refused() -> None:
    k = pgp.generate_key("Cert only <c@example.com>", bits=2048, flags=pgp.FLAG_CERTIFY)
    with pytest.raises(pgp.KeyProblem, match="not marked for signing"):
        pgp.sign(b"data", k)
    # a signature made anyway (by hand, below the public API) is refused by verify
    p = k.cert.primary
    sig = pgp._make_signature(p, 0x00, "SHA256", [], pgp._common_subpackets(p, p.created), data=b"data")
    with pytest.raises(pgp.NotSigningKey, match="not marked for signing"):
        pgp.verify(b"data", sig.armored(), [k.public()])


def test_subkey_needs_cross_certification() -> None:
    k = pgp.generate_key("Primary <p@example.com>", bits=2048)
    good = pgp.add_subkey(k, bits=2048)
    v = pgp.verify(b"x", pgp.sign(b"x", good), [good.public()])
    assert v.signer_fingerprint == good.cert.subkeys[0].fingerprint != v.primary_fingerprint
    bad = pgp.add_subkey(k, bits=2048, cross_certify=False)
    sk = bad.cert.subkeys[0].key
    sig = pgp._make_signature(sk, 0x00, "SHA256", [], pgp._common_subpackets(sk, sk.created), data=b"x")
    with pytest.raises(pgp.InvalidKey, match="not cross-certified"):
        pgp.verify(b"x", sig.armored(), [bad.public()])


# ---------------------------------------------------------------- what is hashed


@needs_gpg
def test_hashed_bytes_match_gpg_digest_prefix(gnupg, payload: Path) -> None:
    """gpg writes the first two digest octets into the packet: our account of the hashed bytes
    (document ‖ hashed part ‖ 04 FF len32), computed here with hashlib, must reproduce them."""
    fpr = gnupg.gen("H <h@example.com>")
    for digest_name in ("SHA256", "SHA512"):
        sig = pgp.read_signature(gnupg.sign(payload, fpr, digest=digest_name))
        assert sig.hash_name == digest_name
        parts = pgp.signed_bytes(sig)
        suffix = b"".join(b for _, b in parts)
        assert suffix[-6:] == b"\x04\xff" + (len(suffix) - 6).to_bytes(4, "big")
        h = hashlib.new(digest_name.lower(), payload.read_bytes() + suffix).digest()
        assert h[:2] == sig.left16
        listed = gnupg.run("--list-packets", input=sig.packet()).stdout.decode()
        assert f"begin of digest {sig.left16[0]:02x} {sig.left16[1]:02x}" in listed


def test_dump_lists_packets_and_subpackets() -> None:
    k = key("rsa")
    text = pgp.dump_text(k.public().armored())
    assert "packet 6 Public-Key" in text and "packet 13 User ID" in text
    assert "0x13 positive certification" in text and "key flags: certify, sign" in text
    sig_text = pgp.dump_text(pgp.sign(b"abc", k))
    assert "0x00 binary document" in sig_text and "issuer fingerprint" in sig_text


# ---------------------------------------------------------------- interop with GnuPG


@needs_gpg
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
@pytest.mark.parametrize("armored", [True, False])
def test_gpg_verifies_our_signatures(gnupg, payload: Path, kind: str, armored: bool) -> None:
    k = key(kind)
    gnupg.import_(k.public().armored())
    sig = pgp.sign(payload, k, armored=armored)
    assert pgp.is_armored(sig) == armored
    verdict, status = gnupg.verify(sig, payload)
    assert verdict == "good", status
    assert f"VALIDSIG {k.fingerprint.upper()}" in status
    payload.write_bytes(payload.read_bytes() + b"!")
    assert gnupg.verify(sig, payload)[0] == "bad"


@needs_gpg
@pytest.mark.parametrize("algo", ["rsa2048", "ed25519"])
@pytest.mark.parametrize("armored", [True, False])
def test_we_verify_gpg_signatures(gnupg, payload: Path, algo: str, armored: bool) -> None:
    fpr = gnupg.gen(f"Signer <s-{algo}@example.com>", algo)
    ring = pgp.read_keys(gnupg.export(fpr))
    sig = gnupg.sign(payload, fpr, armor=armored)
    (pkt,) = pgp.parse_packets(pgp.dearmor(sig) if armored else sig)
    # gpg 2.2 writes old-format headers: 0x88 | length type (0: one length octet, 1: two)
    assert (pkt.tag, pkt.new_format, pkt.header[0] & 0xFC) == (2, False, 0x88)
    assert len(pkt.header) == 1 + (1, 2, 4)[pkt.header[0] & 3]
    v = pgp.verify(payload, sig, ring)
    assert v.signer_fingerprint == fpr and v.hash_algo in pgp.ACCEPTED_HASHES
    with pytest.raises(pgp.BadSignature):
        pgp.verify(payload.read_bytes() + b"!", sig, ring)


@needs_gpg
def test_sha1_data_signatures_are_refused_although_gpg_accepts_them(gnupg, payload: Path) -> None:
    """A deliberate difference: gpg 2.2 still accepts SHA-1 data signatures; we do not."""
    fpr = gnupg.gen("Old <old@example.com>")
    sig = gnupg.sign(payload, fpr, digest="SHA1")
    assert gnupg.verify(sig, payload)[0] == "good"
    with pytest.raises(pgp.WeakHash, match="SHA1"):
        pgp.verify(payload, sig, pgp.read_keys(gnupg.export(fpr)))


@needs_gpg
def test_we_sign_with_a_gpg_secret_key(gnupg, payload: Path) -> None:
    fpr = gnupg.gen("Exported <exp@example.com>")
    sk = pgp.read_secret_key(gnupg.export(fpr, secret=True))
    sig = pgp.sign(payload, sk)
    assert gnupg.verify(sig, payload)[0] == "good"


# ---------------------------------------------------------------- interop with pysequoia


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_pysequoia_verifies_ours_and_we_verify_pysequoia(payload: Path, kind: str) -> None:
    sq = pytest.importorskip("pysequoia")
    k = key(kind)
    cert = sq.Cert.from_bytes(k.public().armored())
    assert cert.fingerprint == k.fingerprint
    data = payload.read_bytes()
    for armored in (True, False):
        sig = pgp.sign(data, k, armored=armored)
        res = sq.verify(bytes=data, store=lambda ids: [cert], signature=sq.Sig.from_bytes(sig))
        assert [s.certificate for s in res.valid_sigs] == [k.fingerprint]
        with pytest.raises(RuntimeError):
            sq.verify(bytes=data + b"!", store=lambda ids: [cert], signature=sq.Sig.from_bytes(sig))
    # the other way: a pysequoia key (primary + signing subkey) signs, we verify
    tsk = sq.Tsk.generate("Seq <seq@example.com>")
    sq_sig = sq.sign(tsk.signer(), data, mode=sq.SignatureMode.DETACHED)
    sq_cert = tsk.extract_certificate()
    ring = pgp.read_keys(str(sq_cert).encode())
    v = pgp.verify(data, sq_sig, ring)
    assert v.primary_fingerprint == sq_cert.fingerprint != v.signer_fingerprint   # signed by its subkey
    with pytest.raises(pgp.BadSignature):
        pgp.verify(data + b"!", sq_sig, ring)


@needs_gpg
def test_read_keys_several_certificates(gnupg) -> None:
    a = gnupg.gen("A <a@example.com>")
    b = gnupg.gen("B <b@example.com>", "ed25519")
    both_binary = gnupg.run("--export", a, b).stdout
    assert [c.fingerprint for c in pgp.read_keys(both_binary)] == [a, b]
    two_blocks = gnupg.export(a) + b"\n" + key("rsa").public().armored()
    assert [c.fingerprint for c in pgp.read_keys(two_blocks)] == [a, key("rsa").fingerprint]
    with pytest.raises(pgp.MalformedSignature):
        pgp.read_keys(b"not a key")


@needs_gpg
def test_long_subpackets_and_packets_are_encoded_right(gnupg, payload: Path) -> None:
    """Notations of 300 and 9,000 bytes need two-octet subpacket lengths and make the packet need a
    five-octet length; gpg verifying the signature (and reading the notations back) checks our
    encoders. (gpg refuses hashed areas over 10,000 bytes, so longer ones are not tried.)"""
    k = key("ed25519")
    gnupg.import_(k.public().armored())
    notes = {"short@example.com": "s", "medium@example.com": "m" * 300, "long@example.com": "l" * 9_000}
    sig = pgp.sign(payload, k, armored=False, notations=notes)
    (pkt,) = pgp.parse_packets(sig)
    assert pkt.header[1] == 0xFF                    # five-octet body length
    assert {n: v for n, v in (sp.describe().split("=", 1) for sp in pgp.read_signature(sig).hashed
                              if sp.type == 20)} == notes
    verdict, status = gnupg.verify(sig, payload)
    assert verdict == "good", status
    assert status.count("NOTATION_NAME") == 3 and "NOTATION_NAME long@example.com" in status


@pytest.mark.parametrize("bits", [1024, 4097, 99_999_999])
def test_rsa_key_sizes_outside_gpgs_range_are_refused_at_once(run_cli, tmp_path, bits) -> None:
    """`key gen --bits 99999999` generated for ever (no bound, no progress); 1024 is too weak."""
    import time
    t0 = time.monotonic()
    rc, out, err = run_cli("key", "gen", "--uid", "A <a@example.com>", "--bits", str(bits),
                           "--out", str(tmp_path))
    assert rc == 1 and time.monotonic() - t0 < 5
    assert err == f"sandbox: RSA keys are 2048 to 4096 bits here (got {bits:,}); the default, 3072, is what gpg makes.\n"
    assert not list(tmp_path.iterdir())
