#!/usr/bin/env bash
# Vagrant provisioner (root, in the guest): trust extra CA certificates, for workshop rooms behind a
# TLS-inspecting proxy (without them apt over https and pip fail with CERTIFICATE_VERIFY_FAILED).
#
#   install-extra-ca.sh DIR      DIR holds PEM certificates named *.crt or *.pem (LAB_EXTRA_CA_DIR)
set -euo pipefail
src=${1:?usage: install-extra-ca.sh DIR}
dest=/usr/local/share/ca-certificates/container-standards-lab
[ -d "$src" ] || { echo "extra-ca: '$src' is not a directory" >&2; exit 1; }
if ! command -v update-ca-certificates >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates
fi
install -d -m 0755 "$dest"
n=0
shopt -s nullglob
for f in "$src"/*.crt "$src"/*.pem; do
  grep -q -- '-----BEGIN CERTIFICATE-----' "$f" || { echo "extra-ca: skipping $f (not a PEM certificate)" >&2; continue; }
  # update-ca-certificates only reads *.crt
  install -m 0644 "$f" "$dest/$(basename "${f%.*}").crt"
  n=$((n + 1))
done
update-ca-certificates >/dev/null
echo "extra-ca: $n certificate(s) from $src now trusted (in $dest)"
rm -rf "$src"
