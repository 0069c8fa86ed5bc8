"""The VM's shell scripts parse (bash -n) and pass shellcheck, and the JupyterLab unit's command line
is one the installed JupyterLab really accepts (token required, news off)."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((TOP / "provision" / "vm").glob("*.sh")) + [TOP / "provision" / "bootstrap.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_parses(script: Path) -> None:
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (provision/packages/vm.txt)")
def test_shellcheck_clean() -> None:
    vm_scripts = [str(p) for p in SCRIPTS if p.parent.name == "vm"]
    r = subprocess.run(["shellcheck", "--severity=warning", *vm_scripts], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _exec_start(lab_dir: Path) -> list[str]:
    unit = (TOP / "provision" / "vm" / "jupyterlab.service").read_text()
    unit = unit.replace("\\\n", " ").replace("@LAB_DIR@", str(lab_dir))
    [line] = [l for l in unit.splitlines() if l.startswith("ExecStart=")]
    return shlex.split(line[len("ExecStart="):])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int, token: str | None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
def test_unit_command_runs_jupyterlab_with_a_token_and_a_kernel(tmp_path: Path) -> None:
    argv = _exec_start(TOP)
    assert argv[0] == f"{TOP}/.venv/bin/jupyter" and argv[1] == "lab"
    assert "--LabApp.news_url=None" in argv
    # The real command, except bound to loopback on a free port (in the guest it is 0.0.0.0:8888).
    port = _free_port()
    argv = [a for a in argv if not a.startswith(("--ip=", "--port="))]
    argv[0] = str(Path(sys.executable).with_name("jupyter"))
    argv += ["--ip=127.0.0.1", f"--port={port}"]
    token = "sbx" + os.urandom(8).hex()
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    log = (tmp_path / "jl.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        code = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                code = _status(port, token)
                break
            except OSError:
                time.sleep(0.5)
        assert code == 200, (tmp_path / "jl.log").read_text()[-3000:]
        assert _status(port, None) == 403  # no token, no Lab
        assert _status(port, "wrong") == 403
        # The e2e's browser-side check against this server: a kernel runs a cell over the websocket.
        check = TOP / "provision" / "vm" / "jupyter_check.py"
        r = subprocess.run([sys.executable, str(check), str(port), token, os.uname().machine],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"lab-kernel {os.uname().machine} {os.geteuid()} sandbox" in r.stdout
        other = "aarch64" if os.uname().machine != "aarch64" else "x86_64"
        r = subprocess.run([sys.executable, str(check), str(port), token, other],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode != 0 and "expected" in r.stderr  # it checks the guest's architecture
        assert _status(port, "wrong") == 403
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert not re.search(r"Traceback", (tmp_path / "jl.log").read_text().split("received signal")[0])


def _self_signed_pem(cn: str) -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.root
@pytest.mark.skipif(shutil.which("update-ca-certificates") is None, reason="Debian's ca-certificates missing")
def test_extra_ca_provisioner_makes_openssl_trust_the_ca(tmp_path: Path) -> None:
    # Run the guest provisioner in a private mount namespace whose CA store is a throwaway copy,
    # then ask OpenSSL (through Python's ssl) whether the CA is now in the system bundle.
    src = tmp_path / "ca"
    src.mkdir()
    pem = _self_signed_pem("sbx extra CA")
    (src / "room-proxy.pem").write_bytes(pem)
    (src / "notes.crt").write_text("not a certificate\n")
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    before = bundle.read_bytes()
    script = f"""
set -e
for d in /etc/ssl/certs /usr/local/share/ca-certificates; do
  mkdir -p {tmp_path}/fs$d; cp -a $d/. {tmp_path}/fs$d/; mount --bind {tmp_path}/fs$d $d
done
bash {TOP}/provision/vm/install-extra-ca.sh {src}
python3 - <<'PY'
import ssl
ctx = ssl.create_default_context()
ctx.load_verify_locations(cafile="/etc/ssl/certs/ca-certificates.crt")
names = [dict(x[0] for x in c["subject"]).get("commonName") for c in ctx.get_ca_certs()]
assert "sbx extra CA" in names, "the extra CA is not in the system bundle"
print("trusted")
PY
"""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 certificate(s)" in r.stdout and "trusted" in r.stdout
    assert "skipping" in r.stderr and "notes.crt" in r.stderr
    assert not src.exists()  # the uploaded copy is removed after install
    assert bundle.read_bytes() == before  # the host's own store was never touched


@pytest.mark.parametrize("script,args,message", [
    ("build-box.sh", ["--arch", "sparc"], "--arch must be amd64 or arm64, not 'sparc'"),
    ("build-box.sh", ["--frob"], "unknown option '--frob'"),
    ("e2e.sh", [], "LAB_ARCH must be amd64 or arm64, not sparc"),
])
def test_vm_scripts_refuse_bad_arguments_in_one_sentence(script: str, args: list[str], message: str) -> None:
    # Refused before anything is made (no disk, namespace or daemon).
    env = {**os.environ, "LAB_ARCH": "sparc"} if script == "e2e.sh" else dict(os.environ)
    r = subprocess.run(["bash", str(TOP / "provision" / "vm" / script), *args], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _stamp(repo: Path) -> str:
    r = subprocess.run(["bash", str(repo / "provision" / "bootstrap.sh"), "--stamp"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_venv_stamp_follows_what_pip_installs_only(tmp_path: Path) -> None:
    # The lab box bakes .venv in; the bootstrap re-runs offline at `vagrant up` and must only go
    # to PyPI when what pip would install changed, not when a [tool.*] table did.
    repo = tmp_path / "repo"
    (repo / "provision").mkdir(parents=True)
    shutil.copy(TOP / "provision" / "bootstrap.sh", repo / "provision" / "bootstrap.sh")
    text = (TOP / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(text)
    base = _stamp(repo)
    assert base == _stamp(TOP) and re.fullmatch(r"[0-9a-f]{64}", base)
    (repo / "pyproject.toml").write_text(text + '\n[tool.sbx-vm-test]\nmarkers = ["new: a marker"]\n')
    assert _stamp(repo) == base
    assert '"tqdm>=' in text
    (repo / "pyproject.toml").write_text(text.replace('"tqdm>=', '"tqdm>=0.1,!=0.0.1,>='))
    assert _stamp(repo) != base
