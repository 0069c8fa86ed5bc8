"""Manifests from untrusted hands: every input is a ManifestError (one sentence listing the
problems), never a RecursionError, a ValueError from Fraction, or a number no cgroup file holds.
Each case crashed or was accepted before sandbox.bounded."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from sandbox.image import manifest as M
from sandbox.image.manifest import ManifestError
from sandbox.pod import cgroups


def image_with_limit(value: str) -> str:
    """An ImageManifest whose resource/memory limit is ``value`` (raw JSON text)."""
    doc = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/q",
           "app": {"exec": ["/x"], "user": "0", "group": "0",
                   "isolators": [{"name": "resource/memory", "value": {"limit": "@"}}]}}
    return json.dumps(doc).replace('"@"', value)


@pytest.mark.parametrize("kind", ["ImageManifest", "PodManifest"])
def test_deeply_nested_json_is_a_manifest_error(kind: str) -> None:
    doc = '{"acKind": "%s", "annotations": %s}' % (kind, "[" * 50_000 + "]" * 50_000)
    parse = M.ImageManifest.from_json if kind == "ImageManifest" else M.PodManifest.from_json
    with pytest.raises(ManifestError, match="nested deeper than 64 levels"):
        parse(doc)
    assert M.validate_json(doc)[0].startswith("(root): nested deeper")
    with pytest.raises(ManifestError):
        M.parse_json(doc)
    assert M.ignored_fields(doc) == []


@pytest.mark.parametrize("value, why", [
    ("1e999", "beyond what a 64-bit float holds"),
    ("9" * 4300, "4300 digits"),
    ('"' + "9" * 4300 + '"', "larger than 2\\^63 - 1"),
    ('"' + "9" * 4290 + 'Ei"', "larger than 2\\^63 - 1"),
    ('"9223372036854775808"', "larger than 2\\^63 - 1"),
    ("1e300", "larger than 2\\^63 - 1"),
])
def test_quantities_beyond_int64_are_refused(value: str, why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        M.ImageManifest.from_json(image_with_limit(value))


@pytest.mark.parametrize("value, expect", [
    ('"9223372036854775807"', 2**63 - 1), ('"8Ei"', 8 * 2**60 - 0), ("0.5", Fraction(1, 2)),
    ('"512Mi"', 512 << 20), ("1048576", 1 << 20)])
def test_quantities_up_to_int64_are_read_exactly(value: str, expect: int) -> None:
    if expect == 8 * 2**60:    # 8Ei = 2^63 is one over: the largest is 7.99…Ei
        with pytest.raises(ManifestError, match="larger than 2"):
            M.ImageManifest.from_json(image_with_limit(value))
        return
    m = M.ImageManifest.from_json(image_with_limit(value))
    assert m.app.isolators[0].limit == expect
    limits = cgroups.limits_from_isolators(m.app.isolators)
    assert str(limits.memory_bytes) == str(int(Fraction(expect)))   # what the cgroup file gets


def test_a_pod_manifest_file_is_read_within_bounds(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "pod.json"
    p.write_text(json.dumps({"acKind": "PodManifest", "acVersion": "0.8.11", "apps": []}))
    assert M.read_document(p)["acKind"] == "PodManifest"
    p.write_text("[" * 100_000)
    with pytest.raises(ManifestError, match="nested deeper"):
        M.read_document(p)
    with pytest.raises(ManifestError, match="no such file"):
        M.read_document(tmp_path / "missing.json")
    with pytest.raises(ManifestError, match="is a directory"):
        M.read_document(tmp_path)
    p.write_text(json.dumps({"acKind": "PodManifest", "pad": "x" * 4096}))
    monkeypatch.setenv("SANDBOX_MAX_MANIFEST_BYTES", "1K")
    with pytest.raises(ManifestError, match="MANIFEST_BYTES"):
        M.read_document(p)


@pytest.mark.root
@pytest.mark.parametrize("text", ["[" * 100_000, "not json", "[1, 2]",
                                  '{"acKind": "PodManifest", "apps": "abc"}',
                                  '{"acKind": "PodManifest", "apps": [{"image": {"name": "x",'
                                  ' "labels": 5}}]}'])
def test_sandbox_prepare_with_a_bad_pod_manifest_says_one_sentence(run_cli, sandbox_dir, tmp_path,
                                                                   text: str) -> None:
    p = tmp_path / "pod.json"
    p.write_text(text)
    rc, out, err = run_cli("prepare", "--pod-manifest", p)
    assert rc != 0 and err.startswith("sandbox: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
