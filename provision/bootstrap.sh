#!/usr/bin/env bash
# The one set-up path for people (`make install`), CI (`.ci/run` -> `make test`) and the VM
# (Vagrant's shell provisioner). Idempotent: a second run with nothing changed only checks.
#
#   provision/bootstrap.sh [--with SET]...   SET = a file provision/packages/optional/SET.txt
#   provision/bootstrap.sh --without SET      skip provision/packages/SET.txt (the VM skips vm, ui)
#
# 1. Debian packages listed in provision/packages/*.txt (+ the optional sets asked for)
# 2. a virtualenv .venv with the project (editable) and its test extras
# 3. reference tools built offline from Debian's Go sources (actool, ace-validator)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cd "$top"

py=${PYTHON:-python3}
# editable_mode=compat: the .pth file names the checkout instead of importing setuptools'
# finder hook at every interpreter start (~8 ms: every `sandbox` command pays it)
pip_install=(install -e ".[test]" --config-settings editable_mode=compat)

# What pip installs depends on the interpreter and on pyproject's [project] and [build-system]
# tables only: a change elsewhere ([tool.pytest] markers...) must not send an offline lab VM
# (whose .venv was baked into its box) to PyPI.
venv_stamp() {
  { "$py" - <<'PY'
import json, sys, tomllib
with open("pyproject.toml", "rb") as f:
    d = tomllib.load(f)
print(sys.version)
print(json.dumps({k: d.get(k) for k in ("project", "build-system")}, sort_keys=True))
PY
    echo "${pip_install[*]}"; } | sha256sum | cut -c1-64
}

sets=()
skip=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with) sets+=("$2"); shift 2 ;;
    --without) skip+=("$2"); shift 2 ;;
    --stamp) venv_stamp; exit 0 ;;   # what .venv/.bootstrap-stamp must hold (tests/vm)
    *) echo "bootstrap: unknown argument '$1' (use --with SET or --without SET)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

# -- 1. Debian packages -------------------------------------------------------
lists=()
for f in "$here"/packages/*.txt; do
  case " ${skip[*]-} " in *" $(basename "$f" .txt) "*) continue ;; esac
  lists+=("$f")
done
for s in "${sets[@]+"${sets[@]}"}"; do
  f="$here/packages/optional/$s.txt"
  [ -f "$f" ] || { echo "bootstrap: no package set '$s' ($f)" >&2; exit 2; }
  lists+=("$f")
done
mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]\+$//' -e '/^[[:space:]]*$/d' "${lists[@]}" | awk '{print $1}' | sort -u)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: these Debian packages are missing: ${missing[*]}" >&2
    echo "bootstrap: run this script as root (sudo make install) so it can install them." >&2
    exit 1
  fi
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#pkgs[@]} present"
fi

# -- 2. virtualenv --------------------------------------------------------------
venv="$top/.venv"
stamp="$venv/.bootstrap-stamp"
want=$(venv_stamp)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "virtualenv .venv: up to date"
else
  say "virtualenv .venv: creating/updating (pip install -e '.[test]')"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  log="$venv/pip-install.log"
  if ! { "$venv/bin/python" -m pip install --upgrade pip &&
         "$venv/bin/python" -m pip "${pip_install[@]}"; } > "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "bootstrap: pip could not install the project (full log: $log). Check the network" \
         "to PyPI (in an offline lab VM: pyproject's dependencies changed since the box was" \
         "built - rebuild it with 'make vm-box'), then run 'make install' again." >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# -- 3. reference tools, built offline from Debian's Go sources ----------------
bash "$here/build-tools.sh"

# -- 4. the `sandbox` command on the PATH ----------------------------------------
# A link in /usr/local/bin (on root's PATH in login shells, in sudo's secure_path, in systemd
# services: JupyterLab's terminals and notebook `!` cells in the VM): the latest `make install`
# of a checkout wins. A file there that is not such a link (another program) is left alone.
# SANDBOX_BIN_DIR=DIR links elsewhere (the README-tour test links into a temporary directory).
bin_dir=${SANDBOX_BIN_DIR:-/usr/local/bin}
cmd="$venv/bin/sandbox"
link="$bin_dir/sandbox"
old=$(readlink "$link" 2>/dev/null || true)
run="$cmd"                                   # what to type, when it is not on the PATH
if [ "$old" = "$cmd" ]; then
  how="linked as $link"
elif [ -e "$link" ] && ! { [ -L "$link" ] && case "$old" in */.venv/bin/sandbox) true ;; *) false ;; esac; }; then
  how="$link is another program, left alone"
elif mkdir -p "$bin_dir" 2>/dev/null && ln -sfn "$cmd" "$link" 2>/dev/null; then
  how="linked as $link${old:+, was $old}"
else
  how="$bin_dir is not writable"
fi
if [ "$(readlink "$link" 2>/dev/null)" = "$cmd" ]; then
  case ":$PATH:" in
    *":$bin_dir:"*) run=sandbox ;;
    *) how="$how; $bin_dir is not on your PATH" ;;
  esac
fi
if [ "$run" = sandbox ]; then
  ready="\`sandbox\` is on your PATH ($how): try \`sandbox --help\`"
else
  ready="run the kit as $run ($how), or add $venv/bin to your PATH"
fi
say "done: $ready. Next: 'make lab' (JupyterLab on http://127.0.0.1:8888; another port: make lab PORT=8899) or 'make test' (the test suite)."
