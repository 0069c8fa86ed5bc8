"""OpenPGP data from untrusted hands: every cut, every bad parameter and every malformed
subpacket is a SignatureError with one sentence, never an IndexError, a ValueError from
``cryptography`` or an OverflowError from a date (each case below raised one before).

Where gpg is the oracle, it refuses the same bytes too."""
from __future__ import annotations

import hashlib

import pytest

from sandbox.trust import pgp
from sandbox.trust.pgp import SignatureError

from .conftest import needs_gpg

RSA = pgp.generate_key("Rsa <rsa@example.com>", bits=2048, created=1_700_000_000)
ED = pgp.generate_key("Ed <ed@example.com>", type="ed25519", created=1_700_000_000)


def packets(key: pgp.SecretKey) -> list[pgp.Packet]:
    return pgp.parse_packets(key.public().to_bytes())


def cert_with_primary(key: pgp.SecretKey, body: bytes) -> bytes:
    """The certificate of ``key`` with its primary key body replaced (user ID and its
    signatures kept, so only the key packet is wrong)."""
    rest = packets(key)[1:]
    return pgp.encode_packet(6, body) + b"".join(pgp.encode_packet(p.tag, p.body) for p in rest)


@pytest.mark.parametrize("key", [RSA, ED], ids=["rsa", "ed25519"])
def test_every_cut_of_a_key_packet_is_a_signature_error(key: pgp.SecretKey) -> None:
    body = packets(key)[0].body
    for cut in range(1, len(body)):
        with pytest.raises(SignatureError):
            pgp.read_keys(cert_with_primary(key, body[:cut]))
        item = pgp.dump(pgp.encode_packet(6, body[:cut]))[0]      # inspect-signature shows it
        assert item.fields[0][0] == "error", (cut, item.fields)


def rsa_body(n: int, e: int) -> bytes:
    return bytes([4]) + (1_700_000_000).to_bytes(4, "big") + b"\x01" + pgp.encode_mpi(n) + pgp.encode_mpi(e)


@pytest.mark.parametrize("e", [1, 2, 65536, 0])
def test_rsa_keys_with_impossible_exponents_are_refused(e: int) -> None:
    n = RSA.cert.primary.params["n"]
    with pytest.raises(pgp.InvalidKey, match="RSA parameters no real key has"):
        pgp.read_keys(cert_with_primary(RSA, rsa_body(n, e)))


def test_a_short_ed25519_point_is_refused() -> None:
    body = packets(ED)[0].body
    oid_end = 6 + 1 + body[6]
    for point in (b"\x40" + b"\x01" * 16, b"\x40" + b"\x01" * 33, b"\x41" + b"\x01" * 32, b""):
        bad = body[:oid_end] + pgp.encode_mpi(int.from_bytes(point, "big") or 0)[:2] + point
        with pytest.raises(SignatureError, match="Ed25519 public point|cut short"):
            pgp.read_keys(cert_with_primary(ED, bad))


def test_a_signature_claiming_a_bad_key_is_a_sentence_not_a_crash() -> None:
    """verify() used to build the key object only when checking the math: ValueError."""
    n = RSA.cert.primary.params["n"]
    body = rsa_body(n, 1)
    fpr = __import__("hashlib").sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
    sig = bytearray(pgp.read_signature(pgp.sign(b"data", RSA)).body)
    hl = int.from_bytes(sig[4:6], "big")
    issuer = pgp.Subpacket(33, False, b"\x04" + bytes.fromhex(fpr)).encode()
    new = bytes(sig[:4]) + len(issuer).to_bytes(2, "big") + issuer + bytes(sig[6 + hl:])
    with pytest.raises(SignatureError):
        keyring = pgp.read_keys(cert_with_primary(RSA, body))
        pgp.verify(b"data", pgp.encode_packet(2, new), keyring)


# --------------------------------------------------------------------------------- subpackets

def signature_with(extra: pgp.Subpacket, hashed: bool = True) -> bytes:
    """A valid signature by RSA over b"data" carrying one more subpacket, hashed or not
    (made by hand: the kit's own signer writes only well-formed subpackets)."""
    key = RSA.signing_key()
    hs = pgp._common_subpackets(key, 1_700_000_100)
    us = [pgp.Subpacket(16, False, bytes.fromhex(key.key_id))]
    (hs if hashed else us).append(extra)
    hsub, usub = b"".join(x.encode() for x in hs), b"".join(x.encode() for x in us)
    head = bytes([4, 0, key.algo, 8]) + len(hsub).to_bytes(2, "big") + hsub
    h = hashlib.sha256(b"data" + head + b"\x04\xff" + len(head).to_bytes(4, "big")).digest()
    mpis = key.sign_digest("SHA256", h)
    body = (head + len(usub).to_bytes(2, "big") + usub + h[:2]
            + b"".join(pgp.encode_mpi(m) for m in mpis))
    return pgp.encode_packet(2, body)


MALFORMED = [(2, b""), (2, b"\xff" * 9), (3, b"\x01"), (9, b"\xff" * 9), (16, b"\x01\x02"),
             (33, b""), (33, b"\x04\x01"), (25, b""), (29, b""), (20, b"\x80\x00"),
             (20, b"\x80\x00\x00\x00\x00\x05\x00\x05ab"), (4, b"\x01\x01")]
IDS = [f"{t}-{len(d)}" for t, d in MALFORMED]


@pytest.mark.parametrize("typ, data", MALFORMED, ids=IDS)
@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "unhashed"])
def test_malformed_subpackets_are_shown_ignored_and_never_crash(typ: int, data: bytes,
                                                                hashed: bool, tmp_path,
                                                                run_cli) -> None:
    """inspect-signature crashed on these (an empty issuer fingerprint: IndexError; a 9-byte
    creation time: OverflowError). A malformed subpacket is shown as such and ignored, as gpg
    ignores it: the signature still verifies on its well-formed parts."""
    sig = signature_with(pgp.Subpacket(typ, False, data), hashed)
    assert pgp.verify(b"data", sig, [RSA.public()]).signer_fingerprint == RSA.fingerprint
    text = pgp.dump_text(sig)
    assert "malformed, ignored (" in text, text
    f = tmp_path / "odd.asc"
    f.write_bytes(pgp.armor(sig))
    rc, out, err = run_cli("inspect-signature", f)
    assert rc == 0 and "malformed, ignored" in out and not err


@pytest.mark.parametrize("typ, data", MALFORMED[:9], ids=IDS[:9])
def test_a_malformed_critical_subpacket_makes_the_signature_unusable(typ: int, data: bytes) -> None:
    """RFC 9580 §5.2.3.7: a critical subpacket the verifier cannot honour invalidates the
    signature. (gpg 2.2 still says "good" here, except for notations: the kit is stricter.)"""
    sig = signature_with(pgp.Subpacket(typ, True, data), True)
    with pytest.raises(pgp.UnsupportedSignature, match="critical .* subpacket that is"):
        pgp.verify(b"data", sig, [RSA.public()])


@needs_gpg
def test_gpg_and_the_kit_agree_on_malformed_non_critical_subpackets(gnupg, tmp_path) -> None:
    gnupg.import_(RSA.public().armored())
    data = tmp_path / "data"
    data.write_bytes(b"data")
    for typ, body in MALFORMED:
        for hashed in (True, False):
            sig = signature_with(pgp.Subpacket(typ, False, body), hashed)
            verdict, status = gnupg.verify(sig, data)
            try:
                pgp.verify(b"data", sig, [RSA.public()])
                ours = "good"
            except SignatureError as e:
                ours = type(e).__name__
            assert ours == verdict == "good", (typ, body, hashed, status)


def test_an_unreadable_embedded_back_signature_only_makes_the_subkey_unusable() -> None:
    key = pgp.add_subkey(RSA, bits=2048, created=1_700_000_100)
    cert = key.public()
    sk = cert.subkeys[0]
    binding = sk.sigs[0]
    # keep the binding's bytes but break the embedded signature inside it (a v9 packet)
    hl = int.from_bytes(binding.body[4:6], "big")
    subs = [s if s.type != 32 else pgp.Subpacket(32, False, b"\x09" + s.data[1:])
            for s in binding.hashed]
    area = b"".join(s.encode() for s in subs)
    body = binding.body[:4] + len(area).to_bytes(2, "big") + area + binding.body[6 + hl:]
    sk.sigs[0] = pgp.parse_signature_body(body)
    statuses = cert.status(at=1_700_000_200)
    assert statuses[0].usable and not statuses[1].usable       # no exception, a verdict


def test_one_good_signature_many_times_hashes_the_image_once(tmp_path, monkeypatch) -> None:
    """A .asc holding the same good signature 2,000 times (KEY_FILE_BYTES allows about 8,000 of
    an Ed25519 one) used to hash the image 2,000 times: a mirror could make a fetch take hours."""
    from sandbox.trust import pgp as _pgp
    key = _pgp.generate_key("Many <many@example.com>", "ed25519")
    image = tmp_path / "image.aci"
    image.write_bytes(b"x" * (1 << 20))
    one = _pgp.sign(image, key, armored=False)
    reads = []
    real = _pgp._hash_source
    monkeypatch.setattr(_pgp, "_hash_source", lambda h, src, *a, **k: reads.append(src) or real(h, src, *a, **k))
    v = _pgp.verify(image, one * 2000, [key.public()])
    assert v.primary_fingerprint == key.fingerprint
    assert len(reads) == 1, len(reads)
    image.write_bytes(b"y" * (1 << 20))          # and a changed file still fails
    with pytest.raises(_pgp.BadSignature):
        _pgp.verify(image, one * 3, [key.public()])
