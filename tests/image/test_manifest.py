"""sandbox.image.manifest: appc 0.8.11 ImageManifest / PodManifest parsing and validation.

* a corpus (manifest_cases/cases.json) of valid and invalid manifests, one per rule, with the
  exact problems we must report;
* the oracle: actool 0.8.11 must give the same verdict on every case, except for the cases listed
  in docs/appc-vs-actool.md, where it must give the opposite one;
* our own equivalents of the spec's examples (image.json, pod_runtime.json, pod_template.json);
* properties: canonical round trip of generated manifests.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.image import manifest as M
from sandbox.image import types as T
from sandbox.image.actool import verdict as actool_verdict
from sandbox.steps import Steps

HERE = Path(__file__).parent
CASES_DIR = HERE / "manifest_cases"
REPO = HERE.parent.parent
ACTOOL = REPO / ".tools" / "bin" / "actool"
DIFF_DOC = REPO / "docs" / "appc-vs-actool.md"

CORPUS = json.loads((CASES_DIR / "cases.json").read_text())
CASES = {c["id"]: c for c in CORPUS["cases"]}


def _tokens(path: str) -> list[str | int]:
    return [int(x[1:-1]) if x.startswith("[") else x for x in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


def build(case: dict) -> str:
    """The manifest text of a case: its literal ``doc``, or a base manifest with edits."""
    if "doc" in case:
        return case["doc"] if isinstance(case["doc"], str) else json.dumps(case["doc"])
    d = copy.deepcopy(CORPUS["bases"][case["kind"]])
    for path, value in case.get("set", []):
        *head, last = _tokens(path)
        cur = d
        for k in head:
            cur = cur[k]
        if isinstance(last, int) and last == len(cur):
            cur.append(value)
        else:
            cur[last] = value
    for path in case.get("delete", []):
        *head, last = _tokens(path)
        cur = d
        for k in head:
            cur = cur[k]
        del cur[last]
    return json.dumps(d)


def documented_differences() -> dict[str, tuple[str, str]]:
    """case id -> (our verdict, actool's verdict) from the table in docs/appc-vs-actool.md."""
    rows = {}
    for line in DIFF_DOC.read_text().splitlines():
        m = re.match(r"^\| `([a-z0-9_.K-]+)` \|.*\| (accepts|rejects) \| (accepts|rejects) \|\s*$", line)
        if m:
            assert m[1] not in rows, f"{m[1]} is listed twice in {DIFF_DOC.name}"
            rows[m[1]] = (m[2], m[3])
    return rows


DIFFS = documented_differences()


def actool_accepts(text: str, tmp_path: Path) -> tuple[bool, str]:
    f = tmp_path / "manifest.json"
    f.write_text(text)
    r = subprocess.run([str(ACTOOL), "validate", "--type=manifest", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1, 2), (r.returncode, r.stdout, r.stderr)  # 2: Go panic
    return r.returncode == 0, (r.stdout + r.stderr).strip()


# --------------------------------------------------------------------------- corpus

@pytest.mark.parametrize("cid", sorted(CASES))
def test_corpus_problems(cid: str) -> None:
    case = CASES[cid]
    text = build(case)
    assert M.validate_json(text) == case["problems"]
    cls = M.PodManifest if case["kind"] == "pod" else M.ImageManifest
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    # from_json reports the same problems when the document is of the class's kind, or is no
    # JSON object at all.
    kind_matches = not isinstance(doc, dict) or doc.get("acKind") == cls.ac_kind
    if not case["problems"]:
        m = cls.from_json(text)
        assert cls.from_json(m.to_json()) == m          # canonical round trip
        assert cls.from_json(json.dumps(m.to_json()).encode()) == m
        assert M.validate_json(m.to_json()) == []
    elif kind_matches:
        with pytest.raises(M.ManifestError) as e:
            cls.from_json(text)
        assert e.value.problems == case["problems"]


def test_corpus_covers_both_kinds_and_outcomes() -> None:
    kinds = {(c["kind"], not c["problems"]) for c in CASES.values()}
    assert kinds == {("image", True), ("image", False), ("pod", True), ("pod", False)}
    assert len(CASES) >= 150


@pytest.fixture(scope="module")
def actool() -> Path:
    if not ACTOOL.exists():
        pytest.fail(f"{ACTOOL} is missing; run `bash provision/bootstrap.sh` to build it")
    return ACTOOL


@pytest.mark.parametrize("cid", sorted(CASES))
def test_oracle_actool(cid: str, actool: Path, tmp_path: Path) -> None:
    """Our verdict equals actool's, except exactly where docs/appc-vs-actool.md says it differs."""
    case = CASES[cid]
    text = build(case)
    ours = "accepts" if not M.validate_json(text) else "rejects"
    ok, out = actool_accepts(text, tmp_path)
    theirs = "accepts" if ok else "rejects"
    if cid in DIFFS:
        assert (ours, theirs) == DIFFS[cid], f"{cid}: documented as {DIFFS[cid]}, actool said {out!r}"
        assert ours != theirs
    else:
        assert ours == theirs, (f"{cid}: we {ours}, actool {theirs} ({out[:200]!r}); "
                                f"follow the spec and add a row to {DIFF_DOC.name}, or fix the code")


def test_every_documented_difference_is_a_corpus_case() -> None:
    assert len(DIFFS) >= 40
    assert set(DIFFS) <= set(CASES), set(DIFFS) - set(CASES)


# --------------------------------------------------------------------------- spec examples

def _example(name: str) -> str:
    return (CASES_DIR / name).read_text()


def test_image_example_typed(actool: Path, tmp_path: Path) -> None:
    text = _example("image.json")
    assert actool_accepts(text, tmp_path)[0]
    m = M.ImageManifest.from_json(text)
    raw = json.loads(text)
    assert m.name == "example.org/log-shipper" and m.ac_version == "0.8.11"
    assert m.labels == {"version": "2.3.1", "os": "linux", "arch": "amd64"}
    assert list(m.labels) == ["version", "os", "arch"]           # insertion order kept
    a = m.app
    assert isinstance(a, M.App)
    assert a.exec == ["/usr/bin/log-shipper", "--batch=500"]
    assert (a.user, a.group, a.supplementary_gids) == ("shipper", "1200", [4, 1201])
    assert a.event_handler("pre-start").exec == ["/usr/bin/log-shipper", "--check-config"]
    assert a.event_handler("post-stop").exec == ["/usr/bin/flush-queue"]
    assert a.working_directory == "/var/lib/shipper"
    assert a.environment == {"SHIPPER_LEVEL": "info", "TZ": "UTC"}
    cpu, mem, caps, nnp = a.isolators
    assert (cpu.request, cpu.limit) == (Fraction(1, 10), Fraction(1))
    assert (mem.request, mem.limit) == (64 * 2**20, 256 * 2**20)
    assert caps.set == ["CAP_MKNOD", "CAP_SYS_CHROOT"] and nnp.value is True
    assert a.mount_points == [M.MountPoint("spool", "/var/spool/shipper", False),
                              M.MountPoint("config", "/etc/shipper", True)]
    assert a.ports == [M.Port("metrics", "tcp", 9102), M.Port("syslog", "udp", 5140, 4, True)]
    assert (a.user_annotations, a.user_labels) == ({"team": "observability"}, {"tier": "infra"})
    d0, d1 = m.dependencies
    assert d0.image_name == "example.org/base-libc"
    assert d0.image_id == "sha512-" + hashlib.sha512(b"base-libc").hexdigest()
    assert (d0.labels, d0.size) == ({"os": "linux", "arch": "amd64"}, 5242880)
    assert (d1.image_id, d1.size, d1.labels) == (None, None, {"channel": "stable"})
    assert m.path_whitelist == raw["pathWhitelist"]
    assert m.annotations["created"] == "2016-03-04T11:22:33.445566Z"
    assert m.raw == raw
    assert m.label_list[0] == M.Label("version", "2.3.1")
    assert m.annotation_list[-1] == M.Annotation("documentation", "https://example.org/log-shipper/docs")
    assert m.to_json() == raw                                    # the example is in canonical form
    assert M.ImageManifest.from_json(m.to_bytes()) == m


def test_pod_runtime_example(actool: Path, tmp_path: Path) -> None:
    text = _example("pod_runtime.json")
    assert actool_accepts(text, tmp_path)[0]
    pod = M.PodManifest.from_json(text)
    shipper, web = pod.apps
    assert shipper.image.id == "sha512-" + hashlib.sha512(b"log-shipper").hexdigest()
    assert shipper.app is None and shipper.annotations == {"role": "sidecar"}
    assert web.read_only_rootfs and web.app.exec == ["/bin/httpd", "-f", "-p", "8080"]
    assert web.app.isolators[0].limit == 128 * 2**20
    spool, cfg = pod.volumes
    assert (spool.kind, spool.mode, spool.uid, spool.gid, spool.source) == ("empty", "0750", 1200, 1200, None)
    assert (cfg.kind, cfg.source, cfg.read_only, cfg.recursive) == ("host", "/etc/lab/shipper", True, None)
    assert pod.ports == [M.ExposedPort("http", 8080, "127.0.0.1")]
    assert pod.isolators[0].limit == 512 * 2**20
    assert pod.annotations == {"ip-address": "10.88.0.5"} and pod.user_labels == {"lab": "pods"}
    assert pod.to_json() == json.loads(text)
    # The shipper's mountPoints come from its image: reified once the image manifests are known.
    image = M.ImageManifest.from_json(_example("image.json"))
    assert pod.reification_problems({shipper.image.id: image}) == []
    assert pod.is_reified({shipper.image.id: image})
    # A mount that no longer finds its volume breaks reification.
    broken = M.PodManifest.from_json(text)
    broken.volumes = broken.volumes[:1]
    assert broken.reification_problems() == [
        "apps[0].mounts[1].volume: no volume named 'shipper-config' in volumes"]


def test_pod_template_example(actool: Path, tmp_path: Path) -> None:
    text = _example("pod_template.json")
    assert actool_accepts(text, tmp_path)[0]
    pod = M.PodManifest.from_json(text)
    assert [a.image.id for a in pod.apps][:2] == [None, None]
    assert not pod.is_reified()
    assert pod.reification_problems() == [
        "apps[0].image.id: app 'shipper' has no image ID; a runtime pod manifest must name every image by ID",
        "apps[1].image.id: app 'web' has no image ID; a runtime pod manifest must name every image by ID",
        "apps[1].app.mountPoints[0]: mountPoint 'logs' (/var/log/httpd) of app 'web' has no mount/volume",
    ]


def test_empty_volume_defaults_and_port_count_default() -> None:
    pod = M.PodManifest.from_json(build(CASES["pod-empty-volume-defaults"]))
    v = pod.volumes[0]
    assert (v.mode, v.uid, v.gid, v.read_only, v.recursive) == ("0755", 0, 0, None, None)
    img = M.ImageManifest.from_json(build(CASES["img-ports"]))
    assert [p.count for p in img.app.ports] == [1, 1000, 1]
    assert img.app.ports[0].socket_activated and not img.app.ports[1].socket_activated


def test_resource_request_defaults_to_limit() -> None:
    iso = M.Isolator("resource/memory", {"limit": "1Gi"})
    assert iso.request == iso.limit == 2**30
    assert M.Isolator("resource/memory", {"limit": 1000}).limit == 1000


# --------------------------------------------------------------------------- API and messages

def test_error_names_path_and_rule_and_collects_all() -> None:
    doc = json.loads(build(CASES["img-many-problems"]))
    with pytest.raises(M.ManifestError) as e:
        M.ImageManifest.from_json(doc)
    assert len(e.value.problems) == 4
    assert "app.ports[0].port: 70000 is outside 1..65535" in e.value.problems
    msg = str(e.value)
    assert msg.startswith("image manifest is invalid (4 problems): name: 'Bad Name'")
    assert "app.workingDirectory: 'rel' is not an absolute path" in msg


def test_invalid_json_and_wrong_kind() -> None:
    assert M.validate_json(b"\xff") [0].startswith("(root): not valid JSON")
    assert M.validate_json('{"a": NaN}')[0].startswith("(root): not valid JSON")
    pod_text = build(CASES["pod-minimal"])
    with pytest.raises(M.ManifestError) as e:
        M.ImageManifest.from_json(pod_text)
    assert "acKind: must be 'ImageManifest', not 'PodManifest'" in e.value.problems
    assert M.validate_json(pod_text, kind="ImageManifest")[0] == \
        "acKind: must be 'ImageManifest', not 'PodManifest'"
    assert isinstance(M.parse_json(pod_text), M.PodManifest)
    assert isinstance(M.parse_json(build(CASES["img-minimal"])), M.ImageManifest)


def test_unknown_fields_are_ignored_and_not_kept() -> None:
    m = M.ImageManifest.from_json(build(CASES["img-unknown-fields"]))
    assert "extra" not in m.to_json() and "futureField" not in m.to_json()["app"]
    assert m.raw["extra"] == {"x": 1}          # the original document stays available


def test_built_in_code_and_dict_app_is_parsed() -> None:
    m = M.ImageManifest(name="example.com/tool", labels={"version": "1"},
                        app={"exec": ["/bin/tool"], "user": "0", "group": "0"},
                        dependencies=[{"imageName": "example.com/base"}])
    assert isinstance(m.app, M.App) and isinstance(m.dependencies[0], M.Dependency)
    assert m.problems() == []
    assert M.ImageManifest.from_json(m.to_json()) == m
    assert m.raw == m.to_json()                 # code that reads .raw sees the canonical document
    with pytest.raises(M.ManifestError) as e:
        M.ImageManifest(name="x", app={"exec": ["/bin/tool"]})
    assert e.value.problems == ["app.user: is required", "app.group: is required"]
    m.name = "Bad"
    assert m.problems() == ["name: 'Bad' is not an AC Identifier (lowercase letters and digits, "
                            "separated by single '-', '.', '_', '~' or '/')"]


def test_steps_are_recorded() -> None:
    steps = Steps()
    M.ImageManifest.from_json(build(CASES["img-minimal"]), steps=steps)
    with pytest.raises(M.ManifestError):
        M.PodManifest.from_json(build(CASES["pod-duplicate-app"]), steps=steps)
    assert [(s.action, s.detail["kind"], s.detail["problems"]) for s in steps] == [
        ("check", "ImageManifest", 0), ("check", "PodManifest", 1)]


def test_repr_html_shows_name_labels_exec_deps() -> None:
    m = M.ImageManifest.from_json(_example("image.json"))
    h = m._repr_html_()
    assert h.startswith("<table") and h.endswith("</table>")
    for part in ("example.org/log-shipper", "version=2.3.1", "/usr/bin/log-shipper --batch=500",
                 "example.org/base-libc", "example.org/ca-bundle", "shipper:1200"):
        assert part in h
    evil = M.ImageManifest(name="a", labels={"x": "<script>"})
    assert "<script>" not in evil._repr_html_()


# --------------------------------------------------------------------------- types

@pytest.mark.parametrize("s,ok", [("database", True), ("example.com/ourapp", True),
                                  ("sub-domain.example.com/org/product/release", True),
                                  ("a", True), ("", False), ("-a", False), ("a_", False),
                                  ("a/~b", False), ("A", False), ("a b", False)])
def test_ac_identifier(s: str, ok: bool) -> None:
    assert (T.check_ac_identifier(s) is None) is ok


@pytest.mark.parametrize("s,ok", [("database", True), ("product-database-release", True),
                                  ("a1", True), ("a.b", False), ("a--b", False), ("-a", False), ("", False)])
def test_ac_name(s: str, ok: bool) -> None:
    assert (T.check_ac_name(s) is None) is ok


@pytest.mark.parametrize("s,value", [("128974848", 128974848), ("125952Ki", 128974848),
                                     ("123Mi", 128974848), ("0.3", Fraction(3, 10)),
                                     ("300m", Fraction(3, 10)), ("2K", 2000), ("1E", 10**18),
                                     ("1.5Gi", 3 * 2**29), ("1k", None), ("", None), ("5 M", None)])
def test_quantity(s: str, value: Fraction | None) -> None:
    assert T.parse_quantity(s) == value


@pytest.mark.parametrize("s,ok", [("2015-05-18T13:49:28.351729952-04:00", True), ("2014-10-27T19:32:27Z", True),
                                  ("2014-02-30T00:00:00Z", False), ("2014-10-27T24:00:00Z", False),
                                  ("2014-10-27T19:32:27", False), ("2014-10-27T19:32:27+25:00", False),
                                  ("2000-02-29T00:00:00Z", True), ("1900-02-29T00:00:00Z", False),
                                  ("0000-02-29T00:00:00Z", True), ("2014-10-27T19:32:27-00:60", False)])
def test_timestamp(s: str, ok: bool) -> None:
    assert (T.check_timestamp(s) is None) is ok
    if s[:4] != "0000":
        assert (T.parse_timestamp(s) is not None) is ok


def test_timestamp_value() -> None:
    a = T.parse_timestamp("2015-05-18T13:49:28.351729952-04:00")
    b = T.parse_timestamp("2015-05-18T17:49:28.351729Z")
    assert a == b


# --------------------------------------------------------------------------- properties

ac_name = st.from_regex(T.AC_NAME_RE, fullmatch=True).filter(lambda s: len(s) < 40)
ac_ident = st.from_regex(T.AC_IDENTIFIER_RE, fullmatch=True).filter(lambda s: len(s) < 60)
text = st.text(max_size=20)
abs_path = st.lists(st.from_regex(r"[a-z0-9._-]{1,8}", fullmatch=True), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts))
image_id = st.binary(max_size=8).map(lambda b: "sha512-" + hashlib.sha512(b).hexdigest())
quantity = st.builds(lambda n, s: f"{n}{s}", st.integers(0, 5000),
                     st.sampled_from(["", "m", "M", "G", "Ki", "Mi", "Gi"]))  # no "K": actool rejects it (see docs)


def _labels(keys=ac_ident):
    return st.dictionaries(keys.filter(lambda k: k not in ("name", "os", "arch")), text, max_size=3)


@st.composite
def apps(draw) -> M.App:
    ports = draw(st.lists(st.builds(M.Port, ac_name, st.sampled_from(["tcp", "udp"]), st.integers(1, 60000),
                                    st.integers(1, 100), st.booleans()),
                          max_size=3, unique_by=lambda p: p.name))
    isolators = draw(st.lists(st.one_of(
        st.builds(lambda r, l: M.Isolator("resource/memory", {"limit": l}), st.none(), quantity),
        st.builds(lambda v: M.Isolator("os/linux/no-new-privileges", v), st.booleans()),
        st.builds(lambda s: M.Isolator("os/linux/capabilities-retain-set", {"set": s}),
                  st.lists(st.sampled_from(["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"]), min_size=1))),
        max_size=3))
    return M.App(
        user=draw(st.text(min_size=1, max_size=8)), group=draw(st.text(min_size=1, max_size=8)),
        exec=draw(st.lists(text, max_size=3)),
        supplementary_gids=draw(st.lists(st.integers(0, 2**32 - 1), max_size=3)),
        event_handlers=draw(st.lists(st.builds(M.EventHandler, st.just("pre-start"),
                                               st.lists(text, min_size=1, max_size=2)), max_size=1)),
        working_directory=draw(st.none() | abs_path),
        environment=draw(st.dictionaries(st.from_regex(T.ENV_NAME_RE, fullmatch=True), text, max_size=3)),
        isolators=isolators,
        mount_points=draw(st.lists(st.builds(M.MountPoint, ac_name, abs_path, st.booleans()), max_size=2)),
        ports=ports,
        user_annotations=draw(st.dictionaries(text, text, max_size=2)),
        user_labels=draw(st.dictionaries(text, text, max_size=2)))


image_manifests = st.builds(
    M.ImageManifest, name=ac_ident, ac_version=st.sampled_from(["0.8.11", "0.5.2", "0.1.0"]),
    labels=_labels(), app=st.none() | apps(),
    dependencies=st.lists(st.builds(M.Dependency, ac_ident, st.none() | image_id, _labels(),
                                    st.none() | st.integers(0, 2**40)), max_size=3),
    path_whitelist=st.lists(abs_path, max_size=3),
    annotations=st.dictionaries(ac_ident.filter(lambda k: k not in ("created", "homepage", "documentation")),
                                text, max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_manifests)
def test_property_image_round_trip(m: M.ImageManifest) -> None:
    j = m.to_json()
    assert M.validate_json(j) == []
    back = M.ImageManifest.from_json(json.dumps(j))
    assert back == m
    assert back.to_json() == j


volumes = st.one_of(
    st.builds(M.Volume, ac_name, st.just("empty"), st.none(), st.none() | st.booleans(), st.none(),
              st.sampled_from(["0755", "0700", "1777", None]), st.none() | st.integers(0, 65535),
              st.none() | st.integers(0, 65535)),
    st.builds(M.Volume, ac_name, st.just("host"), abs_path, st.none() | st.booleans(),
              st.none() | st.booleans()))


@st.composite
def pod_manifests(draw) -> M.PodManifest:
    names = draw(st.lists(ac_name, min_size=1, max_size=3, unique=True))
    apps_ = [M.RuntimeApp(n, M.RuntimeImage(draw(st.none() | image_id), draw(st.none() | ac_ident), draw(_labels())),
                          None, draw(st.booleans()),
                          draw(st.lists(st.builds(M.Mount, ac_name, abs_path, st.none() | volumes), max_size=2)),
                          draw(st.dictionaries(ac_name, text, max_size=2)))
             for n in names]
    return M.PodManifest(
        apps=apps_, volumes=draw(st.lists(volumes, max_size=3, unique_by=lambda v: v.name)),
        isolators=draw(st.lists(st.builds(lambda q: M.Isolator("resource/cpu", {"limit": q}), quantity), max_size=1)),
        annotations=draw(st.dictionaries(ac_name, text, max_size=2)),
        ports=draw(st.lists(st.builds(M.ExposedPort, ac_name, st.integers(1, 65535),
                                      st.none() | st.ip_addresses(v=4).map(str)), max_size=2)),
        user_annotations=draw(st.dictionaries(text, text, max_size=2)),
        user_labels=draw(st.dictionaries(text, text, max_size=2)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_manifests())
def test_property_pod_round_trip(pod: M.PodManifest) -> None:
    j = pod.to_json()
    assert M.validate_json(j) == []
    back = M.PodManifest.from_json(json.dumps(j))
    assert back == pod
    assert back.to_json() == j


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(image_manifests)
def test_property_generated_manifests_pass_actool(actool: Path, tmp_path: Path, m: M.ImageManifest) -> None:
    """Generated manifests stay inside what both validators accept."""
    ok, out = actool_accepts(json.dumps(m.to_json()), tmp_path)
    assert ok, out


def test_pod_repr_html_and_free_form_key_paths() -> None:
    pod = M.PodManifest.from_json(_example("pod_runtime.json"))
    h = pod._repr_html_()
    for part in ("shipper", "web", "example.org/log-shipper", "/bin/httpd -f -p 8080",
                 "spool→/var/spool/shipper", "shipper-config (host: /etc/lab/shipper)", "http→127.0.0.1:8080"):
        assert part in h
    doc = json.loads(build(CASES["pod-minimal"]))
    doc["userLabels"] = {"a.b": 1, "plain": 2}
    doc["isolators"] = [{"name": "os/unix/sysctl", "value": {"net.ipv4.ip_forward": 0}}]
    assert M.validate_json(doc) == ['isolators[0].value["net.ipv4.ip_forward"]: must be a string, not a number',
                                    'userLabels["a.b"]: must be a string, not a number',
                                    'userLabels.plain: must be a string, not a number']


def test_ignored_fields_and_case_hints() -> None:
    doc = json.loads(build(CASES["img-supplementary-gids-case"]))
    doc["extra"] = 1
    doc["labels"][0]["Value"] = "x"
    assert M.ignored_fields(doc) == [
        "labels[0].Value: not an appc field, ignored (did you mean 'value'? JSON keys are case-sensitive)",
        "app.supplementaryGids: not an appc field, ignored (did you mean 'supplementaryGIDs'? "
        "JSON keys are case-sensitive)",
        "extra: not an appc field, ignored"]
    assert M.ignored_fields(_example("pod_runtime.json")) == []
    assert M.ignored_fields(_example("image.json")) == []
    assert M.validate_json(build(CASES["img-key-case"])) == [
        "name: is required (found 'Name': JSON keys are case-sensitive)"]


def test_reification_sees_mount_points_of_the_image() -> None:
    pod = M.PodManifest.from_json(_example("pod_runtime.json"))
    image = M.ImageManifest.from_json(_example("image.json"))
    pod.apps[0].mounts = pod.apps[0].mounts[:1]
    assert pod.reification_problems({pod.apps[0].image.id: image}) == [
        "apps[0].image.app.mountPoints[1]: mountPoint 'config' (/etc/shipper) of app 'shipper' has no mount/volume"]
    assert pod.is_reified()   # without the image manifests only the pod itself can be checked


@pytest.mark.parametrize("cid", ["img-minimal", "img-port-too-big", "img-kind-missing", "pod-image-id-short"])
def test_actool_verdict_helper(cid: str, actool: Path, tmp_path: Path) -> None:
    steps = Steps()
    ok, msg = actool_verdict(build(CASES[cid]), steps=steps)
    assert ok == actool_accepts(build(CASES[cid]), tmp_path)[0]
    assert steps[0].action == "exec"
    if cid == "img-port-too-big":
        assert msg == "invalid ImageManifest: port must be in 1-65535 range"
    if cid == "img-kind-missing":
        assert not ok and "\n" not in msg       # a Go panic, cut to its first line
