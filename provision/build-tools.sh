#!/usr/bin/env bash
# Builds appc's reference tools from Debian's golang-github-appc-spec-dev, offline, into .tools/bin:
#   actool         - the reference ACI validator/builder (interop tests, bench)
#   ace-validator  - appc's runtime conformance checker (pod tests)
# Skipped when the binaries exist, are newer than the Go sources and were built with these flags.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/.tools/bin"
src=/usr/share/gocode/src/github.com/appc/spec
mkdir -p "$bin"
# CGO_ENABLED=0: static binaries, and no C compiler needed (Go 1.19 does not fall back to
# pure Go by itself when gcc is missing, as on a minimal Debian).
# GOCACHE: Go's build cache, the checkout's own unless the caller shares one (a fresh clone made
# by tests/test_newcomer.py uses the tested checkout's: ~30 s of compiling saved; Go's cache is
# safe to share)
export GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="${GOCACHE:-$top/.tools/gocache}" CGO_ENABLED=0
flags="CGO_ENABLED=$CGO_ENABLED $(go version 2>/dev/null)"
if [ "$(cat "$bin/.build-flags" 2>/dev/null)" != "$flags" ]; then
  rm -f "$bin/actool" "$bin/ace-validator"
fi
for t in actool:github.com/appc/spec/actool ace-validator:github.com/appc/spec/ace; do
  name=${t%%:*}; pkg=${t#*:}
  if [ -x "$bin/$name" ] && [ -z "$(find "$src" -newer "$bin/$name" -name '*.go' -print -quit)" ]; then
    continue
  fi
  printf '\033[1m[bootstrap]\033[0m building %s (offline, from Debian sources)\n' "$name"
  go build -o "$bin/$name" "$pkg"
done
echo "$flags" > "$bin/.build-flags"
