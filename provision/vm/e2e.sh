#!/usr/bin/env bash
# `make vm-e2e`: prove the workshop VM by a real boot (slow: ~25-35 min under TCG; opt-in, not in
# `make test`).
#
#   1. build the local box if it is missing (provision/vm/build-box.sh)
#   2. a fresh `git clone` of this repo's HEAD (what a learner gets)
#   3. in a NEW network + mount namespace made here: a private libvirtd/virtlogd (config, state,
#      images, logs all in a temp dir), and `vagrant up --provider=libvirt` (TCG by default).
#      The guest's private addresses (libvirt's NAT network) exist only in that namespace; its
#      only way out is slirp4netns (user-mode networking: host sockets, no host NAT, ip_forward
#      untouched), used by the guest's provisioning for Debian and PyPI downloads.
#   4. wait until JupyterLab answers through Vagrant's forwarded port on 127.0.0.1 (token needed)
#   5. the smoke tests inside the guest (`vagrant ssh -c ...`)
#   6. `vagrant destroy`, box removed, and checks that no domain, network, pool, volume, process,
#      iptables chain or link is left and that the host's ip_forward is as it was - also on failure.
#
# Knobs: LAB_LIBVIRT_DRIVER (default qemu here), LAB_EXTRA_CA_DIR (default: this host's
# /usr/local/share/ca-certificates when it holds certificates, i.e. a TLS-inspecting proxy),
# LAB_E2E_TESTS (the smoke test paths), LAB_E2E_SOURCE=worktree (use the working tree, not a clone),
# LAB_E2E_BOOT_ONLY=1 (boot, ssh and the clean-up checks only: ~5 min).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
box_file=${LAB_BOX_FILE:-$top/build/vm/lab-bookworm64.box}
box_name=lab/bookworm64-local
mounts=(/etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirt)

say() { printf '\033[1m[vm-e2e %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[vm-e2e] %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "the e2e needs root (namespaces, libvirtd): run 'sudo make vm-e2e'."

# ----------------------------------------------------------------------------------------------
# Inner part: runs inside the namespaces made by the outer part.
# (globals, not locals: the EXIT trap runs after this function has returned)
tmp="" src="" lvpid="" vlpid="" rc=0
inner() {
  tmp=$1 src=$2
  export LIBVIRT_DEFAULT_URI=qemu:///system
  inner_cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$lvpid" ]; then
      say "vagrant destroy"
      (cd "$src" && timeout 300 vagrant destroy -f) || true
      vagrant box remove -f "$box_name" >/dev/null 2>&1
      # vagrant-libvirt keeps its storage pool and the uploaded box volume: remove them too.
      for pool in $(virsh pool-list --all --name); do
        for vol in $(virsh vol-list "$pool" 2>/dev/null | awk 'NR>2 && $1 {print $1}'); do
          virsh vol-delete --pool "$pool" "$vol" >/dev/null
        done
        virsh pool-destroy "$pool" >/dev/null 2>&1; virsh pool-undefine "$pool" >/dev/null
      done
      for dom in $(virsh list --all --name); do virsh destroy "$dom" >/dev/null 2>&1; virsh undefine --nvram "$dom" >/dev/null; done
      for net in $(virsh net-list --all --name); do virsh net-destroy "$net" >/dev/null 2>&1; virsh net-undefine "$net" >/dev/null; done
      {
        echo "domains: $(virsh list --all --name | xargs)"
        echo "networks: $(virsh net-list --all --name | xargs)"
        echo "pools: $(virsh pool-list --all --name | xargs)"
      } > "$tmp/libvirt-left.txt"
      kill -TERM "$lvpid" 2>/dev/null
    fi
    [ -n "$vlpid" ] && kill -TERM "$vlpid" 2>/dev/null
    for _ in $(seq 1 20); do
      { [ -n "$lvpid" ] && kill -0 "$lvpid" 2>/dev/null; } || { [ -n "$vlpid" ] && kill -0 "$vlpid" 2>/dev/null; } || break
      sleep 0.5
    done
    exit "$status"
  }
  trap inner_cleanup EXIT
  trap 'exit 130' INT TERM

  ip link set lo up
  : > "$tmp/netns-ready"
  for _ in $(seq 1 60); do ip -4 addr show tap0 2>/dev/null | grep -q inet && break; sleep 0.5; done
  ip -4 addr show tap0 | grep -q inet || die "slirp4netns did not configure tap0 in the namespace."

  # Private libvirt: host config copied (minus its autostarted default network), everything else empty.
  for d in "${mounts[@]}"; do
    mkdir -p "$tmp/fs$d"
    [ "$d" = /run/libvirt ] || cp -a "$d/." "$tmp/fs$d/"
    mount --bind "$tmp/fs$d" "$d"
  done
  rm -rf /etc/libvirt/qemu/networks /etc/libvirt/qemu/*.xml
  mkdir -p /etc/libvirt/qemu/networks/autostart
  cat >> /etc/libvirt/qemu.conf <<'EOF'
# vm-e2e: a throwaway daemon in a private namespace (provision/vm/e2e.sh)
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
EOF
  echo "nameserver 10.0.2.3" > "$tmp/resolv.conf"   # slirp4netns's DNS forwarder
  mount --bind "$tmp/resolv.conf" /etc/resolv.conf

  virtlogd -d -p "$tmp/virtlogd.pid"
  libvirtd -d -p "$tmp/libvirtd.pid"
  for _ in $(seq 1 60); do [ -s "$tmp/libvirtd.pid" ] && virsh -q version >/dev/null 2>&1 && break; sleep 0.5; done
  vlpid=$(cat "$tmp/virtlogd.pid"); lvpid=$(cat "$tmp/libvirtd.pid")
  virsh -q version >/dev/null || die "libvirtd did not start (see $tmp/fs/var/log/libvirt)."
  say "private libvirtd $lvpid, virtlogd $vlpid (in this namespace only)"

  export VAGRANT_HOME="$tmp/vagrant.d" VAGRANT_DOTFILE_PATH="$tmp/dot" VAGRANT_CHECKPOINT_DISABLE=1
  export VAGRANT_DEFAULT_PROVIDER=libvirt LAB_BOX="$box_name" LAB_BOX_VERSION=""
  export LAB_LIBVIRT_DRIVER=${LAB_LIBVIRT_DRIVER:-qemu}
  cd "$src"
  vagrant box add -f --name "$box_name" "$box_file" >/dev/null
  say "vagrant up --provider=libvirt (driver $LAB_LIBVIRT_DRIVER; TCG takes ~3 min to boot, then provisioning)"
  local t0=$SECONDS
  set +e
  timeout 5400 vagrant up --provider=libvirt ${LAB_E2E_BOOT_ONLY:+--no-provision} 2>&1 | tee "$tmp/vagrant-up.log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || die "vagrant up failed (rc=$rc, log above)."
  echo "vagrant_up_s=$((SECONDS - t0))" >> "$tmp/times"
  say "vagrant up done in $((SECONDS - t0)) s"
  if [ -n "${LAB_E2E_BOOT_ONLY:-}" ]; then  # boot + ssh + clean-up only (~5 min), no provisioning
    vagrant ssh -c 'uname -r; sudo systemctl is-active ssh'
    : > "$tmp/success"
    return 0
  fi

  local token url
  token=$(cat "$VAGRANT_DOTFILE_PATH/lab-token")
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/lab?token=[0-9a-f]*' "$tmp/vagrant-up.log" | tail -1)
  [ "$url" = "http://127.0.0.1:${LAB_HOST_PORT:-8888}/lab?token=$token" ] || die "post_up_message did not print the JupyterLab URL (got '$url')."
  say "waiting for JupyterLab through the forwarded port 127.0.0.1:${LAB_HOST_PORT:-8888}"
  python3 - "${LAB_HOST_PORT:-8888}" "$token" <<'PY' || die "JupyterLab did not answer through the forwarded port."
import sys, time, urllib.error, urllib.request
port, token = sys.argv[1], sys.argv[2]
def status(tok):
    h = {"Authorization": "token " + tok} if tok else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers=h), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
deadline = time.monotonic() + 300
while True:
    try:
        code = status(token)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(2)
assert code == 200, f"with the token: HTTP {code}"
assert status(None) == 403, "without a token JupyterLab must refuse"
with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab/tree/notebooks?token={token}", timeout=10) as r:
    assert r.status == 200 and b"JupyterLab" in r.read()
print(f"JupyterLab answers on 127.0.0.1:{port}: 200 with the token, 403 without")
PY

  local tests=${LAB_E2E_TESTS:-}
  if [ -z "$tests" ]; then
    for t in tests/test_cli.py tests/image tests/vm/test_environment_yml.py tests/vm/test_provision_scripts.py; do
      [ -e "$t" ] && tests="$tests $t"
    done
  fi
  say "smoke tests in the guest: pytest -m 'not slow'$tests"
  t0=$SECONDS
  set +e
  vagrant ssh -c "cd /vagrant && sudo .venv/bin/python -m pytest -p no:cacheprovider -q -m 'not slow'$tests" \
    2>&1 | tee "$tmp/guest-tests.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "guest_tests_s=$((SECONDS - t0))" >> "$tmp/times"
  [ "$rc" -eq 0 ] || die "smoke tests failed in the guest (rc=$rc)."
  say "smoke tests green in the guest"
  : > "$tmp/success"
}

if [ "${1:-}" = --inner ]; then
  inner "$2" "$3"
  exit 0
fi

# ----------------------------------------------------------------------------------------------
# Outer part: host namespaces. Makes the namespaces, gives them slirp4netns, checks the host after.
for tool in unshare slirp4netns libvirtd virtlogd virsh vagrant qemu-system-x86_64 git rsync; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run 'bash provision/bootstrap.sh --with vm-host'."
done
T0=$SECONDS
if [ ! -f "$box_file" ]; then
  say "no box at $box_file: building it (make vm-box)"
  bash "$here/build-box.sh" "$box_file"
fi

host_state() {
  echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
  iptables-save 2>/dev/null | grep -E 'LIBVIRT|virbr' || true
  ip -o link | awk -F': ' '{print $2}' | grep -E '^(virbr|vnet|tap)' || true
}
before=$(host_state)
tmp=$(mktemp -d /var/tmp/sbxvm-e2e.XXXXXX)
made_dirs=()
inner_pid="" slirp_pid="" netns_ino=""
outer_cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$inner_pid" ] && kill -0 "$inner_pid" 2>/dev/null; then
    kill -TERM "$inner_pid"; wait "$inner_pid" 2>/dev/null
  fi
  if [ -n "$netns_ino" ]; then  # anything still alive in our namespace was started by us
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$netns_ino" ] || continue
      echo "[vm-e2e] left in the namespace, stopping: ${p#/proc/} $(tr '\0' ' ' < "$p/cmdline")" >&2
      kill -KILL "${p#/proc/}" 2>/dev/null; status=1
    done
  fi
  [ -n "$slirp_pid" ] && { kill -TERM "$slirp_pid" 2>/dev/null; wait "$slirp_pid" 2>/dev/null; }
  for d in "${made_dirs[@]+"${made_dirs[@]}"}"; do rmdir "$d" 2>/dev/null; done
  after=$(host_state)
  if [ "$before" != "$after" ]; then
    echo "[vm-e2e] the host changed: before/after:" >&2; diff <(echo "$before") <(echo "$after") >&2; status=1
  fi
  if [ -f "$tmp/libvirt-left.txt" ]; then
    if grep -qvE '^[a-z]+: *$' "$tmp/libvirt-left.txt"; then
      echo "[vm-e2e] libvirt objects were left:" >&2; cat "$tmp/libvirt-left.txt" >&2; status=1
    fi
  fi
  if [ -f "$tmp/success" ] && [ "$status" -eq 0 ]; then
    say "PASSED in $((SECONDS - T0)) s ($(tr '\n' ' ' < "$tmp/times")); nothing left behind"
  else
    say "FAILED (rc=$status); logs were in $tmp"
    [ "$status" -eq 0 ] && status=1
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap outer_cleanup EXIT
trap 'exit 130' INT TERM

src="$top"
if [ "${LAB_E2E_SOURCE:-clone}" = clone ]; then
  git clone -q "$top" "$tmp/src"
  src="$tmp/src"
  say "fresh clone of $(git -C "$top" rev-parse --short HEAD) in $src"
fi
if [ -z "${LAB_EXTRA_CA_DIR+x}" ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  export LAB_EXTRA_CA_DIR=/usr/local/share/ca-certificates
  say "the guest will trust this host's extra CAs ($LAB_EXTRA_CA_DIR)"
fi
for d in "${mounts[@]}"; do
  [ -d "$d" ] || { mkdir -p "$d"; made_dirs+=("$d"); }
done

unshare --net --mount --propagation private -- bash "$0" --inner "$tmp" "$src" &
inner_pid=$!
for _ in $(seq 1 100); do [ -f "$tmp/netns-ready" ] && break; sleep 0.1; done
[ -f "$tmp/netns-ready" ] || die "the namespace did not come up."
netns_ino=$(readlink "/proc/$inner_pid/ns/net")
[ "$netns_ino" != "$(readlink /proc/self/ns/net)" ] || die "the inner part is not in its own network namespace."
slirp4netns --configure --mtu=65520 --disable-host-loopback "$inner_pid" tap0 > "$tmp/slirp.log" 2>&1 &
slirp_pid=$!
set +e
wait "$inner_pid"
rc=$?
set -e
inner_pid=""
exit "$rc"
