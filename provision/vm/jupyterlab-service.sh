#!/usr/bin/env bash
# Vagrant provisioner (root, in the guest), after provision/bootstrap.sh: run JupyterLab over the
# repo (notebooks/, labs/) as the systemd service `container-standards-lab`, with the token the
# Vagrantfile printed, and the JupyterLab news announcements turned off. Idempotent.
#
#   LAB_DIR=/vagrant LAB_TOKEN=... jupyterlab-service.sh
set -euo pipefail
dir=${LAB_DIR:?LAB_DIR (the repo in the guest) is required}
token=${LAB_TOKEN:?LAB_TOKEN is required}
unit=/etc/systemd/system/container-standards-lab.service
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || true)
# Vagrant uploads this script alone; the unit template comes from the synced repo.
template="$dir/provision/vm/jupyterlab.service"
[ -f "$template" ] || template="$here/jupyterlab.service"
[ -x "$dir/.venv/bin/jupyter" ] || { echo "jupyterlab: $dir/.venv/bin/jupyter is missing: run provision/bootstrap.sh first" >&2; exit 1; }

install -d -m 0700 /etc/container-standards-lab
umask 077
printf 'JUPYTER_TOKEN=%s\n' "$token" > /etc/container-standards-lab/jupyterlab.env
umask 022
sed "s#@LAB_DIR@#$dir#g" "$template" > "$unit.tmp"
mv "$unit.tmp" "$unit"
# The "get notified about Jupyter news?" toast would ask to fetch from the Internet: off.
"$dir/.venv/bin/jupyter" labextension disable --level=sys_prefix \
  @jupyterlab/apputils-extension:announcements >/dev/null 2>&1
systemctl daemon-reload
systemctl enable container-standards-lab.service >/dev/null 2>&1
systemctl restart container-standards-lab.service
for _ in $(seq 1 120); do
  if python3 - "$token" <<'PY'
import sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:8888/api/status",
                             headers={"Authorization": "token " + sys.argv[1]})
try:
    urllib.request.urlopen(req, timeout=2)
except Exception:
    sys.exit(1)
PY
  then
    echo "jupyterlab: service container-standards-lab is answering on port 8888"
    exit 0
  fi
  sleep 2
done
systemctl --no-pager status container-standards-lab.service >&2 || true
journalctl --no-pager -u container-standards-lab.service -n 40 >&2 || true
echo "jupyterlab: the service did not answer within 240 s" >&2
exit 1
