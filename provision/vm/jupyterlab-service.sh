#!/usr/bin/env bash
# JupyterLab over the repo (notebooks/, labs/) as the systemd service `container-standards-lab`, with
# the JupyterLab news announcements turned off. Idempotent.
#
#   LAB_DIR=/vagrant LAB_TOKEN=... jupyterlab-service.sh   Vagrant's provisioner (root, in the guest):
#                                                          this machine's token, (re)start, wait
#   LAB_DIR=/vagrant jupyterlab-service.sh                 `make vm-box` (in the box's chroot): install
#                                                          and enable the unit only; it starts once a
#                                                          token has been written
set -euo pipefail
dir=${LAB_DIR:?LAB_DIR (the repo in the guest) is required}
token=${LAB_TOKEN:-}
env_file=/etc/container-standards-lab/jupyterlab.env
unit=/etc/systemd/system/container-standards-lab.service
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || true)
# Vagrant uploads this script alone; the unit template comes from the synced repo.
template="$dir/provision/vm/jupyterlab.service"
[ -f "$template" ] || template="$here/jupyterlab.service"
[ -x "$dir/.venv/bin/jupyter" ] || { echo "jupyterlab: $dir/.venv/bin/jupyter is missing: run provision/bootstrap.sh first" >&2; exit 1; }

sed "s#@LAB_DIR@#$dir#g" "$template" > "$unit.tmp"
if cmp -s "$unit.tmp" "$unit"; then rm -f "$unit.tmp"; else mv "$unit.tmp" "$unit"; fi
# The "get notified about Jupyter news?" toast would ask to fetch from the Internet: off.
# (The check is a file read: starting `jupyter` costs seconds under emulation.)
if ! grep -qs '"@jupyterlab/apputils-extension:announcements": true' \
     "$dir/.venv/etc/jupyter/labconfig/page_config.json"; then
  "$dir/.venv/bin/jupyter" labextension disable --level=sys_prefix \
    @jupyterlab/apputils-extension:announcements >/dev/null 2>&1
fi
# enable = the wants/ link; works in a chroot too, where no systemd runs
systemctl enable container-standards-lab.service >/dev/null 2>&1
if [ -z "$token" ]; then
  echo "jupyterlab: unit installed and enabled; it starts once $env_file holds a token"
  exit 0
fi

install -d -m 0700 /etc/container-standards-lab
umask 077
printf 'JUPYTER_TOKEN=%s\n' "$token" > "$env_file.tmp"
mv "$env_file.tmp" "$env_file"
umask 022
systemctl daemon-reload
systemctl restart container-standards-lab.service
# curl, not a Python one-liner: each poll would start an interpreter (a second under emulation)
# (600 s: an emulated arm64 guest starts JupyterLab in minutes)
deadline=$((SECONDS + 600))
while [ "$SECONDS" -lt "$deadline" ]; do
  if curl -fs -o /dev/null --max-time 2 -H "Authorization: token $token" http://127.0.0.1:8888/api/status; then
    echo "jupyterlab: service container-standards-lab is answering on port 8888"
    exit 0
  fi
  sleep 1
done
systemctl --no-pager status container-standards-lab.service >&2 || true
journalctl --no-pager -u container-standards-lab.service -n 40 >&2 || true
echo "jupyterlab: the service did not answer within 600 s" >&2
exit 1
