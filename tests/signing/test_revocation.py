"""Revocation reasons (RFC 4880 §5.2.3.23, RFC 9580 §5.2.3.31) and the trust store's merge.

* A *hard* revocation (key compromised, no reason, an unknown reason, no reason subpacket at all)
  withdraws every signature the key ever made; a *soft* one (superseded, retired) only those made
  at or after it. Sequoia (pysequoia, an independent implementation) is the oracle.
* Re-adding an old copy of a revoked key must not un-revoke it: the store merges copies the way a
  keyring does; GnuPG's own import is the oracle for that.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandbox.trust import pgp
from sandbox.trust import truststore as trust

from .conftest import GnuPG, needs_gpg, our_verdict

DAY = 86400
NOW = int(time.time())
NO_SUBPACKET = -1        # a revocation that carries no Reason for Revocation subpacket at all

# (reason code, soft?)
REASONS = [(pgp.REASON_SUPERSEDED, True), (pgp.REASON_RETIRED, True),
           (pgp.REASON_COMPROMISED, False), (pgp.REASON_NONE, False), (99, False),
           (NO_SUBPACKET, False)]


def _revoke_without_reason(secret: pgp.SecretKey, created: int) -> pgp.SecretKey:
    prim = secret.cert.primary
    sig = pgp._make_signature(prim, 0x20, "SHA256", [prim.hash_prefix()],
                              pgp._common_subpackets(prim, created),
                              [pgp.Subpacket(16, False, bytes.fromhex(prim.key_id))])
    c = secret.cert
    return pgp.SecretKey(pgp.PublicKey(prim, c.direct_sigs + [sig], c.user_ids, c.subkeys))


def _sequoia_accepts(data: Path, sig: bytes, cert: pgp.PublicKey) -> bool:
    sq = pytest.importorskip("pysequoia")
    try:
        res = sq.verify(bytes=data.read_bytes(), store=lambda ids: [sq.Cert.from_bytes(cert.armored())],
                        signature=sq.Sig.from_bytes(sig))
        return bool(res.valid_sigs)
    except RuntimeError:
        return False


@pytest.fixture(scope="module")
def key() -> pgp.SecretKey:
    return pgp.generate_key("Alice <alice@example.com>", bits=2048, created=NOW - 10 * DAY)


@pytest.mark.parametrize("code,soft", REASONS, ids=lambda v: str(v))
def test_hard_and_soft_key_revocations(key: pgp.SecretKey, payload: Path, code: int, soft: bool) -> None:
    before = pgp.sign(payload, key, created=NOW - 5 * DAY)     # made before the revocation
    after = pgp.sign(payload, key, created=NOW - 1 * DAY)      # made after it
    revoked_at = NOW - 3 * DAY
    r = (_revoke_without_reason(key, revoked_at) if code == NO_SUBPACKET
         else pgp.revoke(key, "laptop stolen" if not soft else "new key", code=code, created=revoked_at))
    pub = r.public()
    # after the revocation: refused whatever the reason
    with pytest.raises(pgp.KeyRevoked):
        pgp.verify(payload, after, [pub])
    assert not _sequoia_accepts(payload, after, pub)
    # before it: still good only when the revocation is soft
    err = None
    try:
        v = pgp.verify(payload, before, [pub])
    except pgp.SignatureError as e:
        err = e
    assert our_verdict(err) == ("good" if soft else "revoked"), err
    assert _sequoia_accepts(payload, before, pub) == soft
    if soft:
        assert v.notes and "retired" in v.notes[0] and "still counts" in v.notes[0]
        st = pub.status()[0]
        assert st.kind == "revoked" and not st.usable        # new signatures: refused
        assert pub.status(signed_at=NOW - 5 * DAY)[0].usable  # a signature made before: fine
    else:
        assert "hard revocation" in str(err) and "every signature" in str(err)
        assert not pub.status(signed_at=NOW - 5 * DAY)[0].usable


def test_a_signature_made_the_second_of_a_soft_revocation_is_withdrawn(key: pgp.SecretKey,
                                                                       payload: Path) -> None:
    sig = pgp.sign(payload, key, created=NOW - 2 * DAY)
    pub = pgp.revoke(key, "", code=pgp.REASON_RETIRED, created=NOW - 2 * DAY).public()
    with pytest.raises(pgp.KeyRevoked, match="retired by its owner"):
        pgp.verify(payload, sig, [pub])


def test_hard_wins_over_soft(key: pgp.SecretKey, payload: Path) -> None:
    """Two revocations: an early soft one and a later hard one. The hard one decides."""
    sig = pgp.sign(payload, key, created=NOW - 5 * DAY)
    r = pgp.revoke(key, "", code=pgp.REASON_SUPERSEDED, created=NOW - 3 * DAY)
    r = pgp.revoke(r, "the old laptop was stolen", code=pgp.REASON_COMPROMISED, created=NOW - 1 * DAY)
    with pytest.raises(pgp.KeyRevoked, match="key compromised: the old laptop was stolen"):
        pgp.verify(payload, sig, [r.public()])
    assert not _sequoia_accepts(payload, sig, r.public())


@pytest.mark.parametrize("code,soft", REASONS[:3], ids=lambda v: str(v))
def test_subkey_revocations_follow_the_same_rule(payload: Path, code: int, soft: bool) -> None:
    k = pgp.add_subkey(pgp.generate_key("Sub <sub@example.com>", bits=2048, flags=pgp.FLAG_CERTIFY,
                                        created=NOW - 10 * DAY), bits=2048, created=NOW - 10 * DAY)
    before = pgp.sign(payload, k, created=NOW - 5 * DAY)
    r = pgp.revoke(k, "", code=code, subkey=k.cert.subkeys[0].fingerprint, created=NOW - 3 * DAY)
    pub = r.public()
    err = None
    try:
        pgp.verify(payload, before, [pub])
    except pgp.SignatureError as e:
        err = e
    assert our_verdict(err) == ("good" if soft else "revoked")
    assert _sequoia_accepts(payload, before, pub) == soft


def test_revoke_rejects_a_code_that_is_not_one_octet(key: pgp.SecretKey) -> None:
    with pytest.raises(pgp.SignatureError, match="one octet"):
        pgp.revoke(key, "", code=256)


# ------------------------------------------------------------------------------- merging


def test_merge_is_the_union_and_refuses_another_key(key: pgp.SecretKey) -> None:
    old = key.public()
    newer = pgp.add_subkey(key, bits=2048)                        # a subkey the old copy lacks
    revoked = pgp.revoke(key, "", code=pgp.REASON_COMPROMISED).public()
    m = pgp.merge(old, newer.public(), revoked)
    assert len(m.subkeys) == 1 and len(m.direct_sigs) == 1 and m.uids == old.uids
    assert len(m.user_ids[0].sigs) == 1                          # the same self-signature once
    assert m.status()[0].kind == "revoked"
    assert pgp.merge(m, old).to_bytes() == m.to_bytes()          # idempotent
    with pytest.raises(pgp.SignatureError, match="different keys"):
        pgp.merge(old, pgp.generate_key("Bob <bob@example.com>", bits=2048).public())


def _store(tmp_path: Path) -> trust.TrustStore:
    return trust.TrustStore(tmp_path / "local", tmp_path / "system")


def test_re_adding_an_old_copy_does_not_unrevoke(key: pgp.SecretKey, payload: Path, tmp_path: Path) -> None:
    store = _store(tmp_path)
    old = key.public().armored()
    revoked = pgp.revoke(key, "laptop stolen", code=pgp.REASON_COMPROMISED).public().armored()
    sig = pgp.sign(payload, key, created=NOW - 5 * DAY)
    store.add("example.com", old)
    store.verify(payload, sig, "example.com/app")                # trusted and good
    store.add("example.com", revoked)                            # Bob refreshes the key
    with pytest.raises(pgp.KeyRevoked):
        store.verify(payload, sig, "example.com/app")
    path = store.add("example.com", old)                         # ... and re-adds the old copy
    with pytest.raises(pgp.KeyRevoked):
        store.verify(payload, sig, "example.com/app")
    assert pgp.read_keys(path.read_bytes())[0].status()[0].kind == "revoked"
    listed = [k for k in store.list() if k.fingerprint == key.fingerprint]
    assert listed and all("revoked" in (k.problem or "") for k in listed)


def test_every_copy_of_a_key_is_one_key(key: pgp.SecretKey, payload: Path, tmp_path: Path) -> None:
    """The revocation filed under one prefix reaches a copy filed under another (and root.d)."""
    store = _store(tmp_path)
    sig = pgp.sign(payload, key, created=NOW - 5 * DAY)
    store.add("other.org", key.public().armored())
    store.add(None, key.public().armored(), root=True)
    store.add("example.com", pgp.revoke(key, "", code=pgp.REASON_COMPROMISED).public().armored())
    for name in ("other.org/x", "example.com/app", "anything.net/y"):
        with pytest.raises(pgp.KeyRevoked):
            store.verify(payload, sig, name)


def test_a_keyring_merges_two_files_of_one_key(key: pgp.SecretKey, payload: Path, tmp_path: Path) -> None:
    """Even when the files were written behind the store's back (an old unrevoked copy in
    root.d, the revoked one under a prefix), the keyring holds one merged key."""
    store = _store(tmp_path)
    sig = pgp.sign(payload, key, created=NOW - 5 * DAY)
    for d, data in ((tmp_path / "local" / "root.d", key.public().armored()),
                    (tmp_path / "local" / "prefix.d" / "example.com",
                     pgp.revoke(key, "", code=pgp.REASON_COMPROMISED).public().armored())):
        d.mkdir(parents=True)
        (d / key.fingerprint).write_bytes(data)
    ring = store.keyring_for("example.com/app")
    assert len(ring) == 1 and ring[0].status()[0].kind == "revoked"
    with pytest.raises(pgp.KeyRevoked):
        store.verify(payload, sig, "example.com/app")


def test_a_soft_revocation_merged_in_keeps_old_images_valid(key: pgp.SecretKey, payload: Path,
                                                            tmp_path: Path) -> None:
    store = _store(tmp_path)
    sig = pgp.sign(payload, key, created=NOW - 5 * DAY)
    store.add("example.com", key.public().armored())
    store.add("example.com", pgp.revoke(key, "moved to a new key", code=pgp.REASON_SUPERSEDED,
                                        created=NOW - 3 * DAY).public().armored())
    v = store.verify(payload, sig, "example.com/app")
    assert "retired" in v.notes[0]
    late = pgp.sign(payload, key, created=NOW - DAY)
    with pytest.raises(pgp.KeyRevoked, match="retired"):
        store.verify(payload, late, "example.com/app")


@needs_gpg
def test_gnupg_also_keeps_the_revocation_when_the_old_copy_comes_back(key: pgp.SecretKey, payload: Path,
                                                                      tmp_path: Path) -> None:
    """The behaviour the store copies: gpg --import of the revoked key, then of the old copy."""
    sig = pgp.sign(payload, key, created=NOW - 5 * DAY)
    g = GnuPG()
    try:
        g.import_(key.public().armored())
        assert g.verify(sig, payload)[0] == "good"
        g.import_(pgp.revoke(key, "", code=pgp.REASON_COMPROMISED).public().armored())
        g.import_(key.public().armored())
        assert g.verify(sig, payload)[0] == "revoked"
    finally:
        g.close()
    store = _store(tmp_path)
    store.add("example.com", pgp.revoke(key, "", code=pgp.REASON_COMPROMISED).public().armored())
    store.add("example.com", key.public().armored())
    with pytest.raises(pgp.KeyRevoked):
        store.verify(payload, sig, "example.com/app")


@needs_gpg
def test_the_library_gpg_check_reads_gpgs_verdicts(key: pgp.SecretKey, payload: Path, tmp_path: Path) -> None:
    """sandbox.trust.gnupg (the notebook's cross-check): good with VALIDSIG's fingerprint, bad
    for a changed file, unknown without the key, revoked for a revoked key."""
    from sandbox.trust import gnupg
    sig = pgp.sign(payload, key)
    good = gnupg.verify(sig, payload, [key.public().armored()])
    assert good.verdict == "good" and good.fingerprint == key.fingerprint
    assert good.keywords()[:2] == ["GOODSIG", "VALIDSIG"]
    changed = tmp_path / "changed"
    changed.write_bytes(payload.read_bytes() + b"!")
    assert gnupg.verify(sig, changed, [key.public().armored()]).verdict == "bad"
    assert gnupg.verify(sig, payload, []).verdict == "unknown"
    revoked = pgp.revoke(key, "", code=pgp.REASON_COMPROMISED).public().armored()
    assert gnupg.verify(sig, payload, [revoked]).verdict == "revoked"
    assert gnupg.parse_status(b"noise\n[GNUPG:] GOODSIG AB \xff\n") == [("GOODSIG", ["AB", "\ufffd"])]
