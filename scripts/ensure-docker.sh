#!/usr/bin/env bash
# Makes sure a Docker engine answers and the images the project builds on exist, so that the demo and
# the tests can run on a fresh Debian machine. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
#
#  - installs docker.io, docker-compose, busybox-static, shellcheck and etcd-server from Debian if
#    missing (needs root or sudo);
#  - starts dockerd if `docker info` fails, and waits up to 60 s for it;
#  - if the official Node image cannot be had (no container registry reachable, as on the project's
#    own machines), builds tcpkv/node-base:local and tcpkv/etcd:local offline and prints
#    `NODE_IMAGE=tcpkv/node-base:local` on stdout for the caller to export.
# Everything it says goes to stderr; stdout carries only the NODE_IMAGE line.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/tcpkv-dockerd.log}"
export DEBIAN_FRONTEND=noninteractive

say() { echo "==> $*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else say "not root and no sudo: Docker must already be installed and running"; fi
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)   # the etcd store's tests run a real etcd on loopback
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -q </dev/null >&2
  "${SUDO[@]}" apt-get install -y -q "${missing[@]}" </dev/null >&2
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: $DOCKERD_LOG)"
  "${SUDO[@]}" setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
if ! docker info >/dev/null 2>&1; then
  say "dockerd did not answer within 60 s; last lines of $DOCKERD_LOG:"
  tail -n 30 "$DOCKERD_LOG" >&2 || true
  exit 1
fi
say "docker $(docker info --format '{{.ServerVersion}}' 2>/dev/null) is up"

# The official image when it is there or can be pulled; otherwise the offline base.
node_image="${NODE_IMAGE:-node:24-bookworm-slim}"
if [ "$node_image" = "node:24-bookworm-slim" ] && ! docker image inspect "$node_image" >/dev/null 2>&1; then
  if ! timeout 60 docker pull -q "$node_image" >/dev/null 2>&1; then
    say "no container registry reachable: building the offline base images"
    infra/docker/offline-base.sh >&2
    infra/docker/offline-etcd.sh >&2
    node_image="tcpkv/node-base:local"
  fi
fi
echo "NODE_IMAGE=$node_image"
