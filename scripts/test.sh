#!/usr/bin/env bash
# The tests: every vitest project (unit, sockets, processes, files, containers, infra). Installs and
# starts Docker first if needed (see scripts/ensure-docker.sh) — the container tests never skip.
set -euo pipefail
case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "$(basename "$0"): unknown argument: $1 (--help)" >&2; exit 2 ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."

images="$(scripts/ensure-docker.sh --tests)"
while read -r line; do export "${line?}"; done <<<"$images"
export TESTCONTAINERS_RYUK_DISABLED=true

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund </dev/null
fi
npm test
