#!/usr/bin/env bash
# `make vm-box`: build the workshop's Debian 12 (bookworm) Vagrant box for libvirt, locally, from
# Debian's archive and PyPI only, so an instructor can hand it out on a USB stick.
#
#   provision/vm/build-box.sh [--arch amd64|arm64] [--base] [OUT.box]        (needs root)
#
#   --arch   the guest's architecture (default: this machine's). arm64 on an x86_64 machine runs
#            the target's programs through Debian's qemu-user-static (see "Foreign architecture").
#   --base   a plain box like debian/bookworm64 (Vagrant's provisioning then installs everything
#            over the network); the default is the ready-to-run *lab* box.
#   OUT.box  default build/vm/lab-bookworm-ARCH.box (base-bookworm-ARCH.box with --base)
#
# Steps: raw disk (amd64: MBR + ext4, GRUB for BIOS; arm64: GPT with an EFI system partition (FAT,
# written with mtools) + ext4, GRUB for UEFI on the removable-media path) -> loop device ->
# debootstrap (kernel, GRUB, openssh, sudo, python3, rsync) -> user `vagrant` with Vagrant's
# insecure public key (taken from Debian's vagrant package, never downloaded) and password-less sudo
# -> for the lab box, the repo copied to /vagrant and provision/bootstrap.sh run inside (Debian
# packages, the .venv, actool and the ACE validator), the image catalogue built and imported, the
# JupyterLab unit installed -> GRUB -> compressed qcow2 -> .box = tar of metadata.json + Vagrantfile
# + box.img.
#
# Foreign architecture: debootstrap's second stage and everything run inside the target go through
# a child *user namespace* with its own binfmt_misc instance (Linux >= 6.7) in which Debian's
# qemu-aarch64 handler is registered; the host's binfmt_misc is never touched.
# All mounts happen in a private mount namespace, so other processes never see them; the loop
# device is detached and the work directory removed on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

say() { printf '\033[1m[vm-box %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[vm-box] %s\n' "$*" >&2; exit 1; }

host_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64|arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}
arch=$(host_arch) kind=lab out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:-}; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    --base) kind=base; shift ;;
    -*) die "unknown option '$1' (use --arch amd64|arm64, --base, OUT.box)." ;;
    *) out=$1; shift ;;
  esac
done
case "$arch" in
  amd64) kernel=linux-image-amd64 grub=grub-pc console=ttyS0 qemu_arch="" ;;
  arm64) kernel=linux-image-arm64 grub=grub-efi-arm64-bin,grub2-common console=ttyAMA0 qemu_arch=aarch64 ;;
  *) die "--arch must be amd64 or arm64, not '$arch'." ;;
esac
out=${out:-$top/build/vm/$kind-bookworm-$arch.box}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
size_gb=${LAB_BOX_DISK_GB:-20}
hostname=container-standards-lab   # = the Vagrantfile's hostname: Vagrant need not change it

[ "$(id -u)" -eq 0 ] || die "building a box needs root (loop devices, debootstrap): run 'sudo make vm-box'."

# Re-run ourselves in a private mount namespace: the mounts below stay invisible to the host.
if [ "${_LAB_BOX_PRIVATE:-}" != 1 ]; then
  again=(--arch "$arch" "$out")
  [ "$kind" = base ] && again+=(--base)
  exec env _LAB_BOX_PRIVATE=1 unshare --mount --propagation private -- bash "$0" "${again[@]}"
fi

foreign=0
[ "$arch" = "$(host_arch)" ] || foreign=1
tools=(debootstrap qemu-img sfdisk losetup partx mkfs.ext4 blkid rsync)
[ "$arch" = arm64 ] && tools+=(mkfs.vfat mmd mcopy)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run 'bash provision/bootstrap.sh --with vm-host'."
done
binfmt_line=""
if [ "$foreign" = 1 ]; then
  # Debian's handler line (flags OPF: the interpreter is opened now, so it works inside the chroot)
  binfmt_line=$(sed -n "s/^:qemu-$qemu_arch:/:sbx-vm-$qemu_arch:/p" "/usr/lib/binfmt.d/qemu-$qemu_arch.conf" 2>/dev/null || true)
  [ -n "$binfmt_line" ] || die "building an $arch box here needs Debian's qemu-user-static: run 'bash provision/bootstrap.sh --with vm-host-arm64'."
fi
pubkey=$(dpkg -L vagrant 2>/dev/null | grep -m1 '/keys/vagrant\.pub$' || true)
[ -n "$pubkey" ] && [ -f "$pubkey" ] || die "Vagrant's insecure public key was not found: install Debian's 'vagrant' package."

work=$(mktemp -d /var/tmp/sbxvm-box.XXXXXX)
mnt="$work/mnt"
loop=""
cleanup() {
  set +e
  # A step still running in the target: its own session (see in_target), so a signal to this
  # script's process group does not reach it. Its PID is in a file: in_target may run in a
  # pipeline's subshell, whose variables this shell never sees.
  if [ -s "$work/target.pid" ]; then
    local tp; tp=$(cat "$work/target.pid")
    kill -TERM -- "-$tp" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 -- "-$tp" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$tp" 2>/dev/null
  fi
  for m in boot/efi dev/pts dev proc sys ""; do
    mountpoint -q "$mnt/$m" 2>/dev/null && umount -l "$mnt/$m"
  done
  [ -n "$loop" ] && { partx -d "$loop" 2>/dev/null; losetup -d "$loop"; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
T0=$SECONDS
times=()
lap() { times+=("$1=$((SECONDS - t_lap))s"); t_lap=$SECONDS; }
t_lap=$SECONDS

# in_target SCRIPT [ENV=VALUE...]: run a bash script inside the target's root, with a clean
# environment. Native: chroot. Foreign: chroot inside a child user namespace (all IDs mapped to
# themselves) that mounts its own binfmt_misc and registers the qemu-user handler there.
in_target() {
  local script=$1; shift
  install -m 0755 /dev/stdin "$mnt/tmp/sbx-step.sh" <<< "$script"
  local envv=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
              LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@")
  if [ "$foreign" = 0 ]; then
    chroot "$mnt" /usr/bin/env -i "${envv[@]}" bash /tmp/sbx-step.sh
  else
    local go="$work/go" pid rc
    rm -f "$go"; mkfifo "$go"
    # shellcheck disable=SC2016  # expanded by the inner bash
    setsid unshare --user --mount --propagation private -- bash -c '
      set -e
      read -r _ < "$1"
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
      echo "$2" > /proc/sys/fs/binfmt_misc/register
      mnt=$3; shift 3
      for d in dev proc sys; do mount --rbind "/$d" "$mnt/$d"; done
      exec chroot "$mnt" /usr/bin/env -i "$@" bash /tmp/sbx-step.sh' \
      _ "$go" "$binfmt_line" "$mnt" "${envv[@]}" &
    pid=$!
    echo "$pid" > "$work/target.pid"
    local me; me=$(readlink /proc/self/ns/user)
    for _ in $(seq 1 100); do [ "$(readlink "/proc/$pid/ns/user")" != "$me" ] && break; sleep 0.05; done
    echo "0 0 4294967295" > "/proc/$pid/uid_map"
    echo "0 0 4294967295" > "/proc/$pid/gid_map"
    echo go > "$go"
    set +e; wait "$pid"; rc=$?; set -e
    rm -f "$work/target.pid"
    return "$rc"
  fi
}

say "$kind box for $arch: ${size_gb} GiB sparse raw disk"
qemu-img create -q -f raw "$work/disk.raw" "${size_gb}G"
if [ "$arch" = arm64 ]; then
  printf 'label: gpt\n,128M,U\n,,L\n' | sfdisk -q "$work/disk.raw"
  rootp=p2
else
  printf 'label: dos\n,,L,*\n' | sfdisk -q "$work/disk.raw"
  rootp=p1
fi
loop=$(losetup -f --show -P "$work/disk.raw")
# Without udev the partition nodes may not appear by themselves; partx asks the kernel for them.
[ -b "${loop}$rootp" ] || partx -a "$loop"
for _ in 1 2 3 4 5; do [ -b "${loop}$rootp" ] && break; sleep 1; done
[ -b "${loop}$rootp" ] || die "the loop partition ${loop}$rootp did not appear."
mkfs.ext4 -q -L root "${loop}$rootp"
uuid=$(blkid -s UUID -o value "${loop}$rootp")
mkdir -p "$mnt"
mount "${loop}$rootp" "$mnt"
if [ "$arch" = arm64 ]; then
  # (filled with mtools below: this machine's kernel need not have vfat to build the box)
  mkfs.vfat -F 32 -n EFI "${loop}p1" >/dev/null
  efi_uuid=$(blkid -s UUID -o value "${loop}p1")
  mkdir -p "$mnt/boot/efi"
fi

say "debootstrap bookworm/$arch from $mirror"
include=systemd-sysv,udev,init,$kernel,$grub,openssh-server,sudo,python3,rsync,ifupdown,isc-dhcp-client,iproute2,netbase,ca-certificates,kmod,less,procps
if [ "$foreign" = 0 ]; then
  debootstrap --variant=minbase --include="$include" bookworm "$mnt" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)."; }
else
  debootstrap --foreign --arch="$arch" --variant=minbase --include="$include" bookworm "$mnt" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap (first stage) failed."; }
  # Under emulation every program is slow to start, and mkinitramfs starts thousands: the initramfs
  # is made once, when the kernel is configured, not a second time for initramfs-tools' trigger
  # (update-initramfs -u; set back below). That saves minutes.
  mkdir -p "$mnt/etc/initramfs-tools"
  printf 'update_initramfs=no\nbackup_initramfs=no\n' > "$mnt/etc/initramfs-tools/update-initramfs.conf"
  # container=lxc: debootstrap bind-mounts /dev instead of making device nodes (a user namespace
  # may not); the kernel runs the target's programs through the namespace's qemu-user handler.
  in_target '/debootstrap/debootstrap --second-stage' container=lxc > "$work/debootstrap2.log" 2>&1 || {
    # debootstrap's own log says which package and why; keep it, the work dir goes on exit
    mkdir -p "$top/build/vm"
    cat "$work/debootstrap2.log" "$mnt/debootstrap/debootstrap.log" > "$top/build/vm/debootstrap-$arch.log" 2>/dev/null
    tail -40 "$mnt/debootstrap/debootstrap.log" >&2 2>/dev/null || tail -20 "$work/debootstrap2.log" >&2
    die "debootstrap (second stage, $arch under qemu-user) failed (whole log: build/vm/debootstrap-$arch.log)."
  }
  # the package's own settings back (dpkg kept ours as an existing conffile: --force-confold)
  if [ -f "$mnt/etc/initramfs-tools/update-initramfs.conf.dpkg-dist" ]; then
    mv "$mnt/etc/initramfs-tools/update-initramfs.conf.dpkg-dist" "$mnt/etc/initramfs-tools/update-initramfs.conf"
  else
    sed -i 's/^update_initramfs=no$/update_initramfs=yes/' "$mnt/etc/initramfs-tools/update-initramfs.conf"
  fi
fi
lap debootstrap

say "configure: fstab, network, user vagrant, ssh"
{
  echo "UUID=$uuid / ext4 errors=remount-ro 0 1"
  [ "$arch" = arm64 ] && echo "UUID=$efi_uuid /boot/efi vfat umask=0077,nofail 0 1"
} > "$mnt/etc/fstab"
echo "$hostname" > "$mnt/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$hostname" > "$mnt/etc/hosts"
cat > "$mnt/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback
auto eth0
iface eth0 inet dhcp
EOF
cat > "$mnt/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$mnt/etc/resolv.conf"   # for the build only; emptied below
# No service starts inside the build's chroot.
printf '#!/bin/sh\nexit 101\n' > "$mnt/usr/sbin/policy-rc.d"; chmod 0755 "$mnt/usr/sbin/policy-rc.d"
in_target 'useradd -m -s /bin/bash -U vagrant && echo vagrant:vagrant | chpasswd'
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$mnt/etc/sudoers.d/vagrant"
chmod 0440 "$mnt/etc/sudoers.d/vagrant"
vuid=$(awk -F: '$1 == "vagrant" {print $3}' "$mnt/etc/passwd")
install -d -m 0700 -o "$vuid" -g "$vuid" "$mnt/home/vagrant/.ssh"
install -m 0600 -o "$vuid" -g "$vuid" "$pubkey" "$mnt/home/vagrant/.ssh/authorized_keys"
echo 'UseDNS no' > "$mnt/etc/ssh/sshd_config.d/vagrant.conf"
# Host keys are made on first boot, so every VM from this box has its own.
rm -f "$mnt"/etc/ssh/ssh_host_*
cat > "$mnt/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
EOF
in_target 'systemctl enable ssh-hostkeys.service >/dev/null 2>&1'
# grub-pc's postinst writes /etc/default/grub; the arm64 box has GRUB's binaries only (no
# grub-install at package time: see GRUB below), so the template comes from grub2-common.
[ -f "$mnt/etc/default/grub" ] || install -m 0644 "$mnt/usr/share/grub/default/grub" "$mnt/etc/default/grub"
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=0/' \
  -e "s/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=\"net.ifnames=0 biosdevname=0 console=tty0 console=$console,115200\"/" \
  "$mnt/etc/default/grub"
if [ "$foreign" = 0 ]; then
  # (the foreign path binds these inside its user namespace, for each step)
  mount --bind /dev "$mnt/dev"; mount --bind /dev/pts "$mnt/dev/pts"
  mount -t proc proc "$mnt/proc"; mount -t sysfs sys "$mnt/sys"
fi
lap configure

if [ "$kind" = lab ]; then
  say "lab: the repo in /vagrant, provision/bootstrap.sh inside the box (Debian packages, .venv, tools)"
  # Documentation is not needed in the box (copyright files stay): a smaller, faster box.
  cat > "$mnt/etc/dpkg/dpkg.cfg.d/01-lab-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
  # The same paths Vagrant's rsync leaves out (the Vagrantfile's RSYNC_EXCLUDE).
  rsync -a --exclude=.vagrant/ --exclude=.git/ --exclude=.venv/ --exclude=.tools/ --exclude=build/ \
    --exclude='*.egg-info/' --exclude=__pycache__/ --exclude=.pytest_cache/ --exclude=.hypothesis/ \
    --exclude=.ipynb_checkpoints/ "$top/" "$mnt/vagrant/"
  # pip must trust what this machine trusts (a TLS-inspecting proxy): the build host's bundle is
  # used for the build only and never becomes part of the box's CA store.
  cp /etc/ssl/certs/ca-certificates.crt "$mnt/tmp/sbx-build-ca.pem"
  set +e
  in_target 'cd /vagrant && bash provision/bootstrap.sh --without vm --without ui' \
    PIP_CERT=/tmp/sbx-build-ca.pem SSL_CERT_FILE=/tmp/sbx-build-ca.pem 2>&1 | tee "$work/bootstrap.log" |
    grep --line-buffered '^.\[1m\[bootstrap'
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || { tail -30 "$work/bootstrap.log" >&2; die "the bootstrap failed inside the box (log above)."; }
  lap bootstrap

  say "lab: image catalogue (Debian's busybox-static for $arch), JupyterLab unit, bytecode"
  in_target '
set -e
cd /vagrant
.venv/bin/sandbox catalog build --out /var/lib/sandbox/cache/catalog --import --quiet
LAB_DIR=/vagrant bash provision/vm/jupyterlab-service.sh
# checked-hash: the .pyc stay valid when rsync brings the same sources with new mtimes
.venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash sandbox >/dev/null
# keep the busybox .deb where the catalogue builder looks when it is offline
deb=$(ls /var/cache/apt/archives/busybox-static_*.deb /var/lib/sandbox/cache/debs/busybox-static_*.deb 2>/dev/null | tail -1)
[ -n "$deb" ] || { echo "no busybox-static .deb after building the catalogue" >&2; exit 1; }
cp "$deb" /tmp/
apt-get clean
mv /tmp/busybox-static_*.deb /var/cache/apt/archives/
rm -rf /var/lib/apt/lists/* /root/.cache /vagrant/.tools/gocache /vagrant/.venv/pip-install.log
' PIP_CERT=/tmp/sbx-build-ca.pem > "$work/lab.log" 2>&1 || { tail -30 "$work/lab.log" >&2; die "the lab step failed inside the box (log above)."; }
  rm -f "$mnt/tmp/sbx-build-ca.pem"
  lap lab
fi

say "GRUB ($grub)"
if [ "$arch" = arm64 ]; then
  # UEFI on the removable-media path (\EFI\BOOT\BOOTAA64.EFI): no NVRAM entry is needed, so the
  # firmware can be a plain ROM. What grub-install would do, by hand: GRUB's modules in /boot/grub,
  # an EFI image that finds the root file system by UUID and reads /boot/grub/grub.cfg (which
  # update-grub keeps current in the VM), copied onto the EFI partition with mtools.
  in_target "
set -e
mkdir -p /boot/grub
rm -rf /boot/grub/arm64-efi; cp -r /usr/lib/grub/arm64-efi /boot/grub/
printf '%s\\n' 'search --no-floppy --fs-uuid --set=root $uuid' 'set prefix=(\$root)/boot/grub' \\
  'configfile \$prefix/grub.cfg' > /tmp/sbx-early.cfg
grub-mkimage -O arm64-efi -o /tmp/BOOTAA64.EFI -c /tmp/sbx-early.cfg -p /boot/grub \\
  part_gpt ext2 fat search search_fs_uuid configfile normal linux echo gzio
update-grub" > "$work/grub.log" 2>&1 || { cat "$work/grub.log" >&2; die "building GRUB's EFI image failed."; }
  export MTOOLS_SKIP_CHECK=1
  mmd -i "${loop}p1" ::/EFI ::/EFI/BOOT
  mcopy -i "${loop}p1" "$mnt/tmp/BOOTAA64.EFI" ::/EFI/BOOT/BOOTAA64.EFI
  mdir -i "${loop}p1" ::/EFI/BOOT | grep -q BOOTAA64 || die "BOOTAA64.EFI is not on the EFI partition."
else
  in_target "grub-install --target=i386-pc $loop && update-grub" > "$work/grub.log" 2>&1 ||
    { cat "$work/grub.log" >&2; die "grub-install failed."; }
fi
# update-grub in a chroot sees the loop partition as root; boot by UUID instead.
sed -i "s#root=${loop}$rootp#root=UUID=$uuid#g" "$mnt/boot/grub/grub.cfg"
grep -q "root=UUID=$uuid" "$mnt/boot/grub/grub.cfg" || die "grub.cfg does not boot by UUID."

in_target 'apt-get clean' >/dev/null
rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/tmp/* "$mnt"/var/log/*.log "$mnt/usr/sbin/policy-rc.d"
: > "$mnt/etc/resolv.conf"
: > "$mnt/etc/machine-id"
rm -f "$mnt/var/lib/dbus/machine-id"
# Free blocks go back to the sparse file, so qemu-img stores nothing for them.
fstrim "$mnt" 2>/dev/null || true
for m in boot/efi dev/pts dev proc sys ""; do
  if mountpoint -q "$mnt/$m"; then umount "$mnt/$m"; fi
done
partx -d "$loop" 2>/dev/null || true
losetup -d "$loop"; loop=""
lap finish

say "qcow2 (compressed) and .box"
qemu-img convert -c -m 4 -W -O qcow2 "$work/disk.raw" "$work/box.img"
rm -f "$work/disk.raw"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$size_gb" > "$work/metadata.json"
{
  echo "# Built by container-standards-lab's provision/vm/build-box.sh ($kind, Debian 12 $arch, debootstrap)."
  echo 'Vagrant.configure("2") do |config|'
  echo '  config.vm.provider :libvirt do |lv|'
  echo '    lv.disk_bus = "virtio"'
  if [ "$arch" = arm64 ]; then
    # what the box needs to boot at all (the project's Vagrantfile sets the same)
    echo '    lv.machine_arch = "aarch64"'
    echo '    lv.machine_type = "virt"'
    echo '    lv.loader = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"'
    echo '    lv.features = []'
    echo '    lv.graphics_type = "none"'
  fi
  echo '  end'
  echo 'end'
} > "$work/Vagrantfile"
mkdir -p "$(dirname "$out")"
# The qcow2 is compressed already: a plain tar (Vagrant reads both).
tar -C "$work" -cf "$out.tmp" metadata.json Vagrantfile box.img
mv "$out.tmp" "$out"
lap image
say "wrote $out ($(du -h "$out" | cut -f1)) in $((SECONDS - T0)) s (${times[*]})"
say "use it: vagrant box add --name lab/bookworm-$arch $out; then vagrant up (docs/vm.md)"
