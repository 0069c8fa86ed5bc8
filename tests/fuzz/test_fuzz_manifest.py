"""appc manifests (ImageManifest, PodManifest): random and mutated documents never raise
anything but ManifestError, and whatever parses also serializes and validates again."""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sandbox.image import manifest as M

from .conftest import budget
from .kit import JSON, byte_mutation, mutated_json, only_kit_errors

IMAGE = {
    "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/fuzz",
    "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"},
               {"name": "arch", "value": "amd64"}],
    "app": {"exec": ["/bin/app", "--flag"], "user": "0", "group": "0", "supplementaryGIDs": [1, 2],
            "eventHandlers": [{"name": "pre-start", "exec": ["/bin/pre"]}],
            "workingDirectory": "/srv", "environment": [{"name": "PATH", "value": "/bin"}],
            "isolators": [{"name": "resource/memory", "value": {"limit": "512Mi", "request": "256M"}},
                          {"name": "resource/cpu", "value": {"limit": 2}},
                          {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_BIND_SERVICE"]}},
                          {"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPERM"}}],
            "mountPoints": [{"name": "data", "path": "/data", "readOnly": True}],
            "ports": [{"name": "http", "protocol": "tcp", "port": 80, "count": 2}],
            "userAnnotations": {"a": "b"}, "userLabels": {"c": "d"}},
    "dependencies": [{"imageName": "example.com/base", "labels": [{"name": "version", "value": "1"}],
                      "size": 10, "imageID": "sha512-" + "a" * 128}],
    "pathWhitelist": ["/bin/app"],
    "annotations": [{"name": "created", "value": "2016-01-01T00:00:00Z"},
                    {"name": "homepage", "value": "https://example.com/"}]}

POD = {
    "acKind": "PodManifest", "acVersion": "0.8.11",
    "apps": [{"name": "web", "image": {"name": "example.com/fuzz", "id": "sha512-" + "b" * 128,
                                       "labels": [{"name": "version", "value": "1.0.0"}]},
              "app": IMAGE["app"], "readOnlyRootFS": False,
              "mounts": [{"volume": "data", "path": "/data"}],
              "annotations": [{"name": "x", "value": "y"}]}],
    "volumes": [{"name": "data", "kind": "empty", "mode": "0755", "uid": 0, "gid": 0},
                {"name": "host", "kind": "host", "source": "/tmp", "readOnly": True}],
    "isolators": [{"name": "os/unix/sysctl", "value": {"net.ipv4.ip_forward": "1"}}],
    "annotations": [{"name": "owner", "value": "lab"}],
    "ports": [{"name": "http", "hostPort": 8080, "hostIP": "127.0.0.1",
               "podPort": {"name": "http", "protocol": "tcp", "port": 80}}],
    "userAnnotations": {}, "userLabels": {}}


def exercise(data: bytes) -> None:
    """Every entry point that takes manifest text."""
    for fn in (M.validate_json, M.ignored_fields, M.parse_json):
        only_kit_errors(fn, data, show=data)
    for cls in (M.ImageManifest, M.PodManifest):
        got = only_kit_errors(cls.from_json, data, show=data)
        if isinstance(got, (M.ImageManifest, M.PodManifest)):
            again = type(got).from_json(got.to_bytes())        # what parses round-trips
            assert again.to_json() == got.to_json()
            assert M.validate_json(got.to_bytes()) == []


def test_the_bases_are_valid() -> None:
    assert M.validate_json(json.dumps(IMAGE)) == [] and M.validate_json(json.dumps(POD)) == []


@budget(250)
@given(st.one_of(mutated_json(IMAGE), mutated_json(POD)))
def test_mutated_manifests(data: bytes) -> None:
    exercise(data)


@budget(100)
@given(st.one_of(JSON.map(lambda d: json.dumps(d).encode()),
                 st.binary(max_size=200),
                 st.builds(lambda d: json.dumps({"acKind": "ImageManifest", **d}).encode(),
                           st.dictionaries(st.sampled_from(list(IMAGE)), JSON, max_size=6)),
                 st.builds(lambda d: json.dumps({"acKind": "PodManifest", **d}).encode(),
                           st.dictionaries(st.sampled_from(list(POD)), JSON, max_size=6))))
def test_random_documents(data: bytes) -> None:
    exercise(data)


@budget(60)
@given(st.data())
def test_damaged_text(data: st.DataObject) -> None:
    base = json.dumps(data.draw(st.sampled_from([IMAGE, POD]))).encode()
    exercise(data.draw(byte_mutation(base, max_edits=8)))
