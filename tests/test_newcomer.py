"""A newcomer's first hour (issue 20), played for real: a fresh `git clone` of this repository
with the shared material beside it, `make install` in it, the README's tour — the commands
parsed out of README.md and run as written, in order — then each mistake the issue lists, and
at the end a look at the machine: no pod, netns, link, mount, cgroup, process or state file of
theirs is left.

What is replaced, and why:
* the tour's working directory `/tmp/sbx-tour` becomes a temporary one (the only path the
  README block names); the state goes to a temporary `$SANDBOX_DIR`;
* `make install` links `sandbox` into a temporary bin directory (`SANDBOX_BIN_DIR`) put first on
  the PATH, not into /usr/local/bin: the machine's own `sandbox` stays as it is;
* pip installs the clone's `.venv` offline, from wheels rebuilt out of this `.venv`'s installed
  packages (`PIP_NO_INDEX`, `PIP_FIND_LINKS`): a test may only talk to loopback. Go's build cache
  is this checkout's (`GOCACHE`), as a second clone on one machine would share it.
* the tour runs in a network namespace of its own that has only `lo`: it cannot reach any other
  address, and the pods it starts live in namespaces the kit makes below it.

Cost: about 2-3 min here (most of it pip installing the second `.venv`, ~1.5 min at load 7;
rebuilding the wheels ~10 s; the tour ~15 s; the mistakes ~30 s), marked ``slow``.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
from terminal import in_pty

from sandbox._sys import cgroupfs, mountinfo

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- tests/test_newcomer.py runs this block"
TOUR_DIR = "/tmp/sbx-tour"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"      # no /usr/local/bin: its sandbox is not ours
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def tour_lines(readme: Path = ROOT / "README.md") -> list[str]:
    """The commands of the README's tour: the ```sh block after the marker comment."""
    text = readme.read_text()
    assert MARKER in text, "README.md lost the tour's marker comment"
    block = re.search(r"```sh\n(.*?)```", text[text.index(MARKER):], re.S)
    assert block, "no ```sh block after the tour's marker in README.md"
    return [l for l in block.group(1).splitlines() if l.strip()]


# ---------------------------------------------------------------- an offline wheelhouse

def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def rewheel(site: Path, out: Path, skip: set[str]) -> int:
    """A wheel of every distribution installed in ``site``, from the files its RECORD lists
    (what pip installed, byte for byte; scripts that are entry points are left for pip to make
    again, data files outside site-packages go back under ``NAME.data/``). Returns how many."""
    made = 0
    for dist in importlib.metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        if not name or re.sub(r"[-_.]+", "-", name).lower() in skip:
            continue
        info = Path(str(dist._path))                    # NAME-VERSION.dist-info
        tags = [l.split(":", 1)[1].strip() for l in (info / "WHEEL").read_text().splitlines()
                if l.startswith("Tag:")] or ["py3-none-any"]
        py, abi, plat = (".".join(sorted({t.split("-")[i] for t in tags})) for i in range(3))
        stem = f"{re.sub(r'[-_.]+', '_', name)}-{dist.version}"
        entry = {e.name for e in dist.entry_points if e.group in ("console_scripts", "gui_scripts")}
        files = {str(f) for f in dist.files or []}
        files |= {f"{info.name}/{p.name}" for p in info.iterdir() if p.is_file()}
        record = []
        with zipfile.ZipFile(out / f"{stem}-{py}-{abi}-{plat}.whl", "w", zipfile.ZIP_STORED) as z:
            for rel in sorted(files):
                if rel.endswith(".pyc") or "__pycache__" in rel or rel in (
                        f"{info.name}/{n}" for n in ("INSTALLER", "REQUESTED", "RECORD",
                                                     "direct_url.json")):
                    continue
                src = (site / rel).resolve()
                if not src.is_file():
                    continue
                data = src.read_bytes()
                if rel.startswith("../../../bin/"):
                    if src.name in entry:
                        continue                        # pip writes these again
                    arc = f"{stem}.data/scripts/{src.name}"
                    first, _, rest = data.partition(b"\n")
                    if first.startswith(b"#!") and b"python" in first:
                        data = b"#!python\n" + rest     # pip points it at the new interpreter
                elif rel.startswith("../../../"):
                    arc = f"{stem}.data/data/{rel[len('../../../'):]}"
                elif rel.startswith("../"):
                    continue
                else:
                    arc = rel
                z.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), data)
                record.append(f"{arc},{_record_hash(data)},{len(data)}")
            record.append(f"{info.name}/RECORD,,")
            z.writestr(zipfile.ZipInfo(f"{info.name}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)),
                       "\n".join(record) + "\n")
        made += 1
    return made


# ---------------------------------------------------------------- the fresh clone

@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory):
    """A fresh clone of this checkout's HEAD with ../shared beside it, after `make install`."""
    base = tmp_path_factory.mktemp("sbx-newcomer")
    repo, bin_dir, wheels = base / "repo", base / "bin", base / "wheels"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", head], check=True)
    (base / "shared").symlink_to((ROOT.parent / "shared").resolve())
    wheels.mkdir()
    t0 = time.monotonic()
    n = rewheel(Path(sysconfig.get_paths()["purelib"]), wheels, {"container-standards-lab"})
    t_wheels = time.monotonic() - t0
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "SANDBOX_", "VIRTUAL_ENV", "GOCACHE"))
           # a newcomer's shell, not `make test`'s recipe: no make[1] "Leaving directory" lines
           and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    # the wheels hold what this very interpreter runs already, so their Requires-Python (one
    # installed package here claims >=3.11.5 on Debian's 3.11.2) is not asked again
    env.update(PATH=f"{bin_dir}:{SYSTEM_PATH}", SANDBOX_BIN_DIR=str(bin_dir), PIP_NO_INDEX="1",
               PIP_FIND_LINKS=str(wheels), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_IGNORE_REQUIRES_PYTHON="1")
    if (ROOT / ".tools" / "gocache").is_dir():
        env["GOCACHE"] = str(ROOT / ".tools" / "gocache")
    try:
        t0 = time.monotonic()
        first = subprocess.run(["make", "install"], cwd=repo, env=env, capture_output=True,
                               text=True, timeout=900)
        t_install = time.monotonic() - t0
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        shutil.rmtree(wheels)
        print(f"\nnewcomer: {n} wheels rebuilt in {t_wheels:.0f} s, first make install "
              f"{t_install:.0f} s")
        yield {"base": base, "repo": repo, "bin": bin_dir, "env": env, "first": first}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_make_install_puts_sandbox_on_the_path_and_says_how(newcomer) -> None:
    repo, env = newcomer["repo"], newcomer["env"]
    last = newcomer["first"].stdout.strip().splitlines()[-1]
    assert "`sandbox` is on your PATH" in last and "`sandbox --help`" in last, last
    assert "make lab" in last and "PORT=" in last and "make test" in last, last
    # `sandbox` as a newcomer types it: found on the PATH, and it is the clone's
    found = subprocess.run(["bash", "-c", "command -v sandbox"], env=env, capture_output=True,
                           text=True).stdout.strip()
    assert found == str(newcomer["bin"] / "sandbox")
    assert Path(found).resolve() == (repo / ".venv" / "bin" / "sandbox").resolve()
    p = subprocess.run(["sandbox", "--version"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("sandbox "), p.stderr
    # idempotent: a second run only checks
    t0 = time.monotonic()
    again = subprocess.run(["make", "install"], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "virtualenv .venv: up to date" in again.stdout
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------- what is left

class Traces:
    """What a newcomer's commands made, by name, to look for afterwards on a shared machine
    (others' objects come and go meanwhile: only these names count)."""

    def __init__(self, base: Path, state: Path) -> None:
        from sandbox.pod import stage0
        self.base, self.state = base, state
        self.uuids: set[str] = set()
        self.netns = {stage0.node_name(state), "sbx-c1"}
        self.default_state = self._default_state()

    @staticmethod
    def _default_state() -> list[str]:
        """The machine's default state directory, two levels deep (its pods, its images)."""
        d = Path("/var/lib/sandbox")
        if not d.is_dir():
            return []
        return sorted(str(q) for p in d.iterdir() for q in ([p, *p.iterdir()] if p.is_dir() else [p]))

    def saw(self, text: str) -> None:
        from sandbox.pod import stage0
        for u in UUID.findall(text):
            self.uuids.add(u)
            self.netns.add(stage0.netns_name(u))

    def left(self) -> list[str]:
        problems = []
        pods = self.state / "pods"
        for d in pods.iterdir() if pods.is_dir() else []:
            problems += [f"pod {p}" for p in d.iterdir()]
        handles = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        problems += [f"netns {n}" for n in sorted(self.netns & handles)]
        problems += [f"mount {m}" for m in mountinfo.mount_points()
                     if m.startswith(str(self.base)) or any(u in m for u in self.uuids)
                     or m in {f"/run/netns/{n}" for n in self.netns}]
        for h in cgroupfs.hierarchies():
            problems += [f"cgroup {h.root / 'sandbox' / u}" for u in self.uuids
                         if (h.root / "sandbox" / u).exists()]
        problems += [f"CNI state {p}" for p in Path("/var/lib/cni").rglob("*")
                     if any(u in p.name for u in self.uuids)] if Path("/var/lib/cni").is_dir() else []
        for pid in (int(x) for x in os.listdir("/proc") if x.isdigit()):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(self.base) in cmd and "pytest" not in cmd:
                problems.append(f"process {pid} {cmd[:80]}")
        host = set(os.listdir("/sys/class/net"))
        problems += [f"host link {n}" for n in sorted(host) if n in self.netns]
        if self._default_state() != self.default_state:
            problems.append("/var/lib/sandbox changed (the tour must use $SANDBOX_DIR)")
        return problems


# ---------------------------------------------------------------- the tour

def test_the_readme_tour_runs_verbatim_and_leaves_nothing(newcomer) -> None:
    base, env = newcomer["base"], dict(newcomer["env"])
    state, tour = base / "tour-state", base / "tour"
    env["SANDBOX_DIR"] = str(state)
    lines = tour_lines()
    assert any(TOUR_DIR in l for l in lines)
    traces = Traces(base, state)
    if os.path.exists("/run/netns/sbx-c1"):
        pytest.fail("a netns sbx-c1 exists already (the tour makes and removes one): "
                    "`sandbox netns del sbx-c1`, then run the test again")
    # one shell runs the lines as written (a variable set by one line is there for the next);
    # a marker before each line, on both streams, tells the outputs apart
    script = ["set -e"]
    for i, line in enumerate(lines):
        script += [f"printf '\\n@@@ {i}\\n'; printf '\\n@@@ {i}\\n' >&2",
                   line.replace(TOUR_DIR, str(tour))]
    (base / "tour.sh").write_text("\n".join(script) + "\n")
    t0 = time.monotonic()
    try:
        p = subprocess.run(["unshare", "--net", "--", "bash", "-c",
                            f"ip link set lo up && exec bash {base / 'tour.sh'}"],
                           env=env, capture_output=True, text=True, timeout=600, cwd=base)
    finally:        # a tour that stopped half-way leaves its pods and namespace: remove them
        took = time.monotonic() - t0
        subprocess.run(["bash", "-c", "for u in $(sandbox list --json | python3 -c 'import json,"
                        "sys; print(*(p[\"uuid\"] for p in json.load(sys.stdin)))'); do "
                        "sandbox stop $u; sandbox rm $u; done; sandbox gc --grace 0; "
                        "[ -e /run/netns/sbx-c1 ] && sandbox netns del sbx-c1"],
                       env=env, capture_output=True, timeout=300)
    traces.saw(p.stdout + p.stderr)

    def split(text: str) -> dict[int, str]:
        parts = re.split(r"\n@@@ (\d+)\n", "\n" + text)
        return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    out, err = split(p.stdout), split(p.stderr)
    ran = max(out, default=-1)
    assert p.returncode == 0 and ran == len(lines) - 1, (
        f"the tour stopped at line {ran + 1}: {lines[ran] if ran >= 0 else ''}\n"
        f"stdout: {out.get(ran, '')[-2000:]}\nstderr: {err.get(ran, '')[-2000:]}")
    for i, line in enumerate(lines):
        assert "Traceback" not in err.get(i, "") and "failed inside the kit" not in err.get(i, ""), \
            (line, err.get(i))

    def output(command: str) -> str:
        """What the first tour line whose command (before its comment) starts so printed."""
        i = next(i for i, l in enumerate(lines) if l.split("  #")[0].strip().startswith(command))
        return out.get(i, "")
    # a few of the promises in the tour's comments, checked independently
    aci = next((tour / "cat").glob("busybox-*.aci"))
    assert output("sandbox image id").strip() == \
        "sha512-" + hashlib.sha512(gzip.decompress(aci.read_bytes())).hexdigest()
    deps = output("sandbox image deps")
    assert "├─ example.com/busybox" in deps and "└─ example.com/worker-base" in deps, deps
    status = output("sandbox status")
    assert len(re.findall(r"^  app ", status, re.M)) == 3, status
    gc = output("sandbox gc")                   # the first: without --grace
    assert len(re.findall(r"^kept pod [0-9a-f]{8}: exited .* grace period", gc, re.M)) == 2, gc
    assert "Good signature for example.com/busybox" in output("sandbox verify")
    oci = output("sandbox oci export")
    assert len(json.loads(oci[oci.index("{"):])["Layers"]) == 3, oci
    print(f"\nnewcomer: the README tour ran in {took:.1f} s")
    assert took < 120, f"the tour took {took:.0f} s; the README says about 15 s of commands"
    left = traces.left()
    assert not left, "the tour left: " + "; ".join(left)


# ---------------------------------------------------------------- the mistakes

def test_each_mistake_is_one_sentence_and_leaves_nothing(newcomer) -> None:
    """The mistakes issue 20 lists, with the clone's `sandbox` as a newcomer types it."""
    base, env = newcomer["base"], dict(newcomer["env"])
    state, work = base / "mistakes-state", base / "mistakes"
    work.mkdir()
    env["SANDBOX_DIR"] = str(state)
    traces = Traces(base, state)
    tag = f"sbx-nw{os.getpid() % 100000:x}"             # this run's netns and network names
    node, c1 = f"{tag}-node", f"{tag}-c1"
    traces.netns |= {node, c1}

    def sandbox(cmd: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(["bash", "-c", cmd], env={**env, **(extra or {})}, cwd=work,
                           capture_output=True, text=True, timeout=300)
        traces.saw(p.stdout + p.stderr)
        assert "Traceback" not in p.stderr and "failed inside the kit" not in p.stderr, \
            (cmd, p.stderr)
        return p

    def refused(cmd: str, rc: int, *needles: str, report: str = "") -> str:
        """``cmd`` fails with exit ``rc`` and one `sandbox: …` sentence holding each needle
        (after the sub-command's usage for an argument mistake, or the ``report`` lines of a
        command that reports problems, each starting so)."""
        p = sandbox(cmd)
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        assert p.returncode == rc and last.startswith("sandbox: "), (cmd, p.returncode, p.stderr)
        assert all(n in last for n in needles), (cmd, last)
        others = p.stderr.strip().splitlines()[:-1]
        assert all(l.startswith(("usage:", " ") + ((report,) if report else ()))
                   for l in others), (cmd, p.stderr)
        return last

    def ok(cmd: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        p = sandbox(cmd, extra)
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        return p

    try:
        _mistakes(sandbox, refused, ok, env, state, work, tag, node, c1)
    finally:        # also when an assertion failed half-way: stop and remove what it made
        for p in json.loads(sandbox("sandbox list --json").stdout or "[]"):
            sandbox(f"sandbox stop {p['uuid']}; sandbox rm {p['uuid']}")
        sandbox(f"sandbox gc --grace 0; sandbox netns del {c1}; sandbox netns del {node}")
    left = traces.left()
    assert not left, "the mistakes left: " + "; ".join(left)


def _mistakes(sandbox, refused, ok, env: dict[str, str], state: Path, work: Path, tag: str,
              node: str, c1: str) -> None:
    ok("sandbox catalog build --offline --out cat --import 2> catalog.log")
    # progress bars are for terminals: none in a log file
    assert "\r" not in (work / "catalog.log").read_text()
    # a typo in an image name: a sentence with a did-you-mean, and no pod left behind
    refused("sandbox run example.com/busybx", 1, "Did you mean 'example.com/busybox'?")
    assert json.loads(ok("sandbox list --json").stdout) == []
    # what an older kit left for that typo: logs says why there is nothing, rm removes it
    ghost = "0badc0de-0000-4000-8000-000000000000"
    (state / "pods" / "garbage" / ghost).mkdir(parents=True)
    refused(f"sandbox logs {ghost[:8]}", 1, "has no app output to show", "`sandbox rm 0badc0de`")
    ok(f"sandbox rm {ghost[:8]}")
    # argument handling: globals after the command, the sub-command's usage, did-you-mean
    assert json.loads(ok(f"sandbox image list --json --dir {state}").stdout)
    refused("sandbox imgae list", 2, "Did you mean 'image'?")
    refused("sandbox run --detatch example.com/busybox", 2, "`sandbox run` has no option "
            "--detatch. Did you mean '--detach'?")
    refused("sandbox --dir /proc/nope list", 1, "cannot create /proc/nope", "--dir")
    # names and types checked where they are accepted
    refused("sandbox netns add bad/name", 2, "is not a network namespace name", "plain name")
    assert list(work.iterdir()) == [work / "cat", work / "catalog.log"] or \
        not (work / "bad").exists()
    ok("sandbox key gen --uid 'Alice <alice@example.com>' --out keys --type ed25519")
    refused("sandbox trust --prefix example.com keys/alice.secret.asc --yes", 1, "SECRET key")
    refused("sandbox sign cat/busybox-*.aci --key keys/nope.asc", 1, "does not exist",
            "sandbox key gen")
    # trust: one sentence without a terminal; on one, y is yes
    refused("sandbox trust --prefix example.com keys/alice.public.asc < /dev/null", 1,
            "No terminal to ask on", "--yes")
    rc, seen = in_pty(["sandbox", "trust", "--prefix", "example.com", "keys/alice.public.asc"],
                      env, ((b"(yes/no)?", b"y\n"),), work)
    assert rc == 0 and "Added key for prefix 'example.com'" in seen, seen
    # junk handed to image validate
    (work / "junk.aci").write_bytes(b"not an image")
    last = refused("sandbox image validate junk.aci", 1, "not valid", "fix",
                   report="sandbox: junk.aci: ")
    assert last.startswith("sandbox: 1 of 1 path(s)")
    # a stopped pod: what to do next; gc says what it keeps and why
    uuid = ok("sandbox run --detach example.com/busybox --net none --exec 'sleep 60'").stdout.strip()
    ok(f"sandbox stop {uuid}")
    refused(f"sandbox stop {uuid}", 1, "is not running (exited-garbage)", f"`sandbox rm {uuid[:8]}`")
    kept = ok("sandbox gc").stdout
    assert f"kept pod {uuid[:8]}: exited" in kept and "--grace 0" in kept, kept
    assert f"removed (exited-garbage)" in ok("sandbox gc --grace 0").stdout
    # a long APPS column is wrapped, not cut
    seed = ok("sandbox prepare example.com/reduce-worker example.com/worker-backup "
              "example.com/reduce-worker-register").stdout.strip()
    listed = ok("sandbox list", {"COLUMNS": "60"}).stdout
    assert set(re.findall(r"[a-z-]*worker[a-z-]*", listed)) == {
        "reduce-worker", "worker-backup", "reduce-worker-register"}, listed
    ok(f"sandbox rm {seed}")
    # a CNI ADD that cannot work (/33) leaves no bridge; DEL and GC of it succeed
    conf = work / "net.d"
    conf.mkdir()
    (conf / "10-bad.conf").write_text(json.dumps({
        "cniVersion": "1.1.0", "name": f"{tag}-bad", "type": "bridge", "bridge": f"{tag}b",
        "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.99.0.0/33",
                                    "dataDir": str(work / "ipam")}}))
    ok(f"sandbox netns add {node} --node && sandbox netns add {c1}")
    cni = (f"--conf-dir {conf} --cni-path $(sandbox net plugin-dir) --cache-dir {work}/cache "
           f"--node {node}")
    refused(f"sandbox net add {tag}-bad {c1} {cni}", 1, "CNI error 7", "10.99.0.0/33")
    links = subprocess.run(["ip", "-j", "-n", node, "link"], capture_output=True, text=True,
                           check=True).stdout
    assert f"{tag}b" not in {l["ifname"] for l in json.loads(links)}
    ok(f"sandbox net del {tag}-bad {c1} {cni}")
    ok(f"sandbox net gc {cni}")
    ok(f"sandbox netns del {c1} && sandbox netns del {node}")
