#!/usr/bin/env bash
# `make vm-box`: build a Debian 12 (bookworm) Vagrant box for libvirt, locally, from Debian's
# archive only, so an instructor can hand it out on a USB stick for an offline room.
#
#   provision/vm/build-box.sh [OUT.box]      (default build/vm/lab-bookworm64.box; needs root)
#
# Steps (each one is what a stock box has, nothing more):
#   raw disk + MBR partition -> loop device -> ext4 -> debootstrap (kernel, GRUB, openssh, sudo,
#   python3, rsync) -> user `vagrant` with Vagrant's insecure public key (taken from Debian's
#   vagrant package, never downloaded) and password-less sudo -> GRUB on the disk -> qcow2 ->
#   .box = tar of metadata.json + Vagrantfile + box.img (the vagrant-libvirt box format).
# All mounts happen in a private mount namespace, so other processes never see them, and the
# loop device is detached on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/build/vm/lab-bookworm64.box}
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
size_gb=${LAB_BOX_DISK_GB:-20}

say() { printf '\033[1m[vm-box]\033[0m %s\n' "$*"; }
die() { printf '[vm-box] %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "building a box needs root (loop devices, debootstrap): run 'sudo make vm-box'."

# Re-run ourselves in a private mount namespace: the mounts below stay invisible to the host.
if [ "${_LAB_BOX_PRIVATE:-}" != 1 ]; then
  exec env _LAB_BOX_PRIVATE=1 unshare --mount --propagation private -- bash "$0" "$out"
fi

for tool in debootstrap qemu-img sfdisk losetup partx mkfs.ext4; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run 'bash provision/bootstrap.sh --with vm-host'."
done
pubkey=$(dpkg -L vagrant 2>/dev/null | grep -m1 '/keys/vagrant\.pub$' || true)
[ -n "$pubkey" ] && [ -f "$pubkey" ] || die "Vagrant's insecure public key was not found: install Debian's 'vagrant' package."

work=$(mktemp -d /var/tmp/sbxvm-box.XXXXXX)
mnt="$work/mnt"
loop=""
cleanup() {
  set +e
  for m in dev/pts dev proc sys ""; do
    mountpoint -q "$mnt/$m" 2>/dev/null && umount -l "$mnt/$m"
  done
  [ -n "$loop" ] && { partx -d "$loop" 2>/dev/null; losetup -d "$loop"; }
  rm -rf "$work"
}
trap cleanup EXIT
t0=$SECONDS

say "disk: ${size_gb} GiB sparse raw image, one bootable MBR partition"
qemu-img create -q -f raw "$work/disk.raw" "${size_gb}G"
printf 'label: dos\n,,L,*\n' | sfdisk -q "$work/disk.raw"
loop=$(losetup -f --show -P "$work/disk.raw")
# Without udev the partition node may not appear by itself; partx asks the kernel for it.
[ -b "${loop}p1" ] || partx -a "$loop"
for _ in 1 2 3 4 5; do [ -b "${loop}p1" ] && break; sleep 1; done
[ -b "${loop}p1" ] || die "the loop partition ${loop}p1 did not appear."
mkfs.ext4 -q -L root "${loop}p1"
uuid=$(blkid -s UUID -o value "${loop}p1")
mkdir -p "$mnt"
mount "${loop}p1" "$mnt"

say "debootstrap bookworm from $mirror (about 4 min)"
debootstrap --variant=minbase \
  --include=systemd-sysv,udev,init,linux-image-amd64,grub-pc,openssh-server,sudo,python3,rsync,ifupdown,isc-dhcp-client,iproute2,netbase,ca-certificates,kmod,less,procps \
  bookworm "$mnt" "$mirror" > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)."; }

say "configure: fstab, network, user vagrant, ssh, GRUB"
cat > "$mnt/etc/fstab" <<EOF
UUID=$uuid / ext4 errors=remount-ro 0 1
EOF
echo lab > "$mnt/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 lab\n' > "$mnt/etc/hosts"
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
chroot "$mnt" useradd -m -s /bin/bash -U vagrant
echo 'vagrant:vagrant' | chroot "$mnt" chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$mnt/etc/sudoers.d/vagrant"
chmod 0440 "$mnt/etc/sudoers.d/vagrant"
install -d -m 0700 -o 1000 -g 1000 "$mnt/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$pubkey" "$mnt/home/vagrant/.ssh/authorized_keys"
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
chroot "$mnt" systemctl enable ssh-hostkeys.service >/dev/null 2>&1
: > "$mnt/etc/machine-id"
rm -f "$mnt/var/lib/dbus/machine-id"
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \
  -e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200"/' \
  "$mnt/etc/default/grub"
mount --bind /dev "$mnt/dev"; mount --bind /dev/pts "$mnt/dev/pts"
mount -t proc proc "$mnt/proc"; mount -t sysfs sys "$mnt/sys"
chroot "$mnt" grub-install --target=i386-pc "$loop" > "$work/grub.log" 2>&1 || { cat "$work/grub.log" >&2; die "grub-install failed."; }
chroot "$mnt" update-grub >> "$work/grub.log" 2>&1
# update-grub in a chroot sees the loop partition as root; boot by UUID instead.
sed -i "s#root=${loop}p1#root=UUID=$uuid#g" "$mnt/boot/grub/grub.cfg"
grep -q "root=UUID=$uuid" "$mnt/boot/grub/grub.cfg" || die "grub.cfg does not boot by UUID."
chroot "$mnt" apt-get clean
rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/tmp/*
for m in dev/pts dev proc sys ""; do umount "$mnt/$m"; done
partx -d "$loop" 2>/dev/null || true
losetup -d "$loop"; loop=""

say "qcow2 (compressed) and .box"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/box.img"
rm -f "$work/disk.raw"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$size_gb" > "$work/metadata.json"
cat > "$work/Vagrantfile" <<'EOF'
# Built by container-standards-lab's provision/vm/build-box.sh (Debian 12, debootstrap).
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
EOF
mkdir -p "$(dirname "$out")"
tar -C "$work" -czf "$out.tmp" metadata.json Vagrantfile box.img
mv "$out.tmp" "$out"
say "wrote $out ($(du -h "$out" | cut -f1)) in $((SECONDS - t0)) s"
say "use it: vagrant box add --name lab/bookworm64-local $out; LAB_BOX=lab/bookworm64-local vagrant up"
