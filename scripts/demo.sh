#!/usr/bin/env bash
# The demo: server and client containers on a Docker network; the client runs the seed's scenario
# against the server, prints its table, ends the server with END, and this script exits with the
# scenario's result. Uses the Docker and Compose (v2 `docker compose` or v1 `docker-compose`) that
# already work; installs them only where they are missing on Debian/Ubuntu as root, and never
# installs the test suite's tools (see scripts/ensure-docker.sh --demo).
set -euo pipefail
case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "$(basename "$0"): unknown argument: $1 (--help)" >&2; exit 2 ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."

images="$(scripts/ensure-docker.sh --demo)"
while read -r line; do export "${line?}"; done <<<"$images"
# the images' version label, from package.json (no Node needed on this machine)
IMAGE_VERSION="$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' package.json)"
export IMAGE_VERSION

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
# The scenario needs an empty store, and the server keeps its data in a volume: start from a clean one.
"${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
status=0
"${compose[@]}" up --build --abort-on-container-exit --exit-code-from client || status=$?
"${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
exit "$status"
