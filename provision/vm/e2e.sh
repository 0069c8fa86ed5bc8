#!/usr/bin/env bash
# `make vm-e2e`: prove the workshop VM by a real boot of the lab box, with the guest's network cut
# off (opt-in, slow under TCG; not in `make test`).
#
#   1. build the lab box if it is missing (provision/vm/build-box.sh)
#   2. a fresh `git clone` of this repo's HEAD (what a learner gets)
#   3. in a NEW network + mount namespace made here: a private libvirtd/virtlogd (config, state,
#      images, logs all in a temp dir), and `vagrant up --provider=libvirt` (TCG by default).
#      The guest's addresses (libvirt's NAT network) exist only in that namespace, and by default
#      the namespace has no way out at all: no route, no resolver - the guest is offline, as in a
#      room without Wi-Fi. (LAB_E2E_ONLINE=1 gives it slirp4netns instead - user-mode networking:
#      host sockets, no host NAT, ip_forward untouched - for the base box, which downloads.)
#   4. wait until JupyterLab answers through Vagrant's forwarded port on 127.0.0.1 (token needed)
#      and a kernel runs a cell in the guest (jupyter_check.py); the time from `vagrant up` to
#      this answer is the learner's wait
#   5. provision/vm/guest-tests.sh in the guest (`vagrant ssh`): systemd + cgroup v2, offline,
#      the root tests of netns/CNI/pods/overlay, notebooks 05-07 headless, `sandbox doctor`
#   6. `vagrant destroy`, box removed, and checks that no domain, network, pool, volume, process,
#      iptables chain or link is left and that the host's ip_forward is as it was - also on failure.
#
# Knobs: LAB_ARCH (amd64|arm64, default this machine's; arm64 here is emulated), LAB_BOX_FILE,
# LAB_LIBVIRT_DRIVER (default qemu here), LAB_E2E_ONLINE=1 (see 3; also passes this host's extra
# CAs, LAB_EXTRA_CA_DIR, to the guest), LAB_GUEST_TESTS / LAB_GUEST_NOTEBOOKS (guest-tests.sh),
# LAB_E2E_SOURCE=worktree (use the working tree, not a clone), LAB_E2E_BOOT_ONLY=1 (boot, ssh and the
# clean-up checks only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
case "${LAB_ARCH:-$(uname -m)}" in
  amd64|x86_64) arch=amd64 machine=x86_64 qemu=qemu-system-x86_64 ;;
  arm64|aarch64) arch=arm64 machine=aarch64 qemu=qemu-system-aarch64 ;;
  *) printf '[vm-e2e] LAB_ARCH must be amd64 or arm64, not %s.\n' "$LAB_ARCH" >&2; exit 1 ;;
esac
export LAB_ARCH=$arch
box_file=${LAB_BOX_FILE:-$top/build/vm/lab-bookworm-$arch.box}
box_name=lab/bookworm-$arch
online=${LAB_E2E_ONLINE:-}
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
  if [ -n "$online" ]; then
    for _ in $(seq 1 60); do ip -4 addr show tap0 2>/dev/null | grep -q inet && break; sleep 0.5; done
    ip -4 addr show tap0 | grep -q inet || die "slirp4netns did not configure tap0 in the namespace."
  else
    # Offline: the namespace has loopback only - no route anywhere, so neither can the guest.
    [ "$(ip -o link | awk -F': ' '{print $2}' | xargs)" = lo ] || die "the namespace has links besides lo."
    [ -z "$(ip route show default)" ] || die "the namespace has a default route."
  fi

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
  # online: slirp4netns's DNS forwarder; offline: no resolver, so libvirt's dnsmasq answers no
  # name outside the VM
  if [ -n "$online" ]; then echo "nameserver 10.0.2.3"; else echo "# offline (vm-e2e)"; fi > "$tmp/resolv.conf"
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
  say "vagrant up --provider=libvirt ($arch, driver $LAB_LIBVIRT_DRIVER, guest $([ -n "$online" ] && echo online || echo offline))"
  local t0=$SECONDS
  set +e
  timeout 5400 vagrant up --provider=libvirt ${LAB_E2E_BOOT_ONLY:+--no-provision} 2>&1 |
    while IFS= read -r line; do  # time-stamped, without the box upload's progress meter
      printf '%s %s\n' "$(date +%T)" "${line//*Progress: [0-9]*%/}"
    done | tee "$tmp/vagrant-up.log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || die "vagrant up failed (rc=$rc, log above)."
  echo "vagrant_up_s=$((SECONDS - t0))" >> "$tmp/times"
  say "vagrant up done in $((SECONDS - t0)) s"
  if [ -n "${LAB_E2E_BOOT_ONLY:-}" ]; then  # boot + ssh + clean-up only, no provisioning
    vagrant ssh -c 'uname -rm; sudo systemctl is-active ssh'
    : > "$tmp/success"
    return 0
  fi

  local token url port=${LAB_HOST_PORT:-8888}
  token=$(cat "$VAGRANT_DOTFILE_PATH/lab-token")
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/lab?token=[0-9a-f]*' "$tmp/vagrant-up.log" | tail -1)
  [ "$url" = "http://127.0.0.1:$port/lab?token=$token" ] || die "post_up_message did not print the JupyterLab URL (got '$url')."
  say "JupyterLab through the forwarded port 127.0.0.1:$port"
  "$top/.venv/bin/python" "$here/jupyter_check.py" "$port" "$token" "$machine" ||
    die "JupyterLab did not work through the forwarded port (above)."
  echo "up_to_jupyter_s=$((SECONDS - t0))" >> "$tmp/times"
  say "vagrant up -> JupyterLab answering: $((SECONDS - t0)) s"

  say "guest tests (provision/vm/guest-tests.sh)"
  t0=$SECONDS
  local genv="LAB_EXPECT_OFFLINE=1"
  [ -n "$online" ] && genv="LAB_EXPECT_OFFLINE=0"
  [ -n "${LAB_GUEST_TESTS:-}" ] && genv="$genv LAB_GUEST_TESTS='$LAB_GUEST_TESTS'"
  [ -n "${LAB_GUEST_NOTEBOOKS:-}" ] && genv="$genv LAB_GUEST_NOTEBOOKS='$LAB_GUEST_NOTEBOOKS'"
  set +e
  vagrant ssh -c "sudo $genv bash /vagrant/provision/vm/guest-tests.sh" 2>&1 | tee "$tmp/guest-tests.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "guest_tests_s=$((SECONDS - t0))" >> "$tmp/times"
  tr -d '\r' < "$tmp/guest-tests.log" | sed -n 's/^guest-times: //p' | tr ' ' '\n' | sed 's/^/guest_/; s/$/s/' | grep -v '^guest_s$' >> "$tmp/times" || true
  [ "$rc" -eq 0 ] || die "guest tests failed (rc=$rc)."
  say "guest tests green"
  : > "$tmp/success"
}

if [ "${1:-}" = --inner ]; then
  inner "$2" "$3"
  exit 0
fi

# ----------------------------------------------------------------------------------------------
# Outer part: host namespaces. Makes the namespaces, gives them slirp4netns, checks the host after.
for tool in unshare libvirtd virtlogd virsh vagrant "$qemu" git rsync ${online:+slirp4netns}; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run 'make vm-host ARCH=$arch'."
done
[ -x "$top/.venv/bin/python" ] || die "$top/.venv is missing (the JupyterLab check uses it): run 'make install'."
T0=$SECONDS
if [ ! -f "$box_file" ]; then
  say "no box at $box_file: building it (make vm-box)"
  bash "$here/build-box.sh" --arch "$arch" "$box_file"
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
if [ -n "$online" ] && [ -z "${LAB_EXTRA_CA_DIR+x}" ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
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
if [ -n "$online" ]; then
  slirp4netns --configure --mtu=65520 --disable-host-loopback "$inner_pid" tap0 > "$tmp/slirp.log" 2>&1 &
  slirp_pid=$!
fi
set +e
wait "$inner_pid"
rc=$?
set -e
inner_pid=""
exit "$rc"
