#!/usr/bin/env bash
# Makes sure a Docker engine answers and the images the project builds on exist, so that the demo and
# the tests run on a fresh Debian machine. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
#
#  - installs docker.io, docker-compose (v1, unless compose v2 is there), busybox-static, shellcheck
#    and etcd-server (the etcd store's tests run a real etcd on loopback) from Debian if missing
#    (needs root or sudo; waits for another apt to finish);
#  - starts dockerd if `docker info` fails (detached, log in $DOCKERD_LOG) and waits up to 60 s —
#    a missing Docker is a failure, never a reason to skip the container tests;
#  - chooses the base images: the official ones when present or pullable; where no container
#    registry is reachable (as on the project's own machines), or when NODE_IMAGE is already
#    tcpkv/node-base:local, builds tcpkv/node-base:local and tcpkv/etcd:local offline
#    (infra/docker/offline-*.sh, idempotent).
# stdout carries only `NODE_IMAGE=…` and `ETCD_IMAGE=…` lines, for the caller to export; everything
# else goes to stderr.
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
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q </dev/null >&2
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" </dev/null >&2
fi

# ---- monitoring: promtool (the /metrics test runs `promtool check metrics`) --------------------------
# Taken out of Debian's prometheus package (static binaries) without installing the package's service.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  say "installing promtool (from Debian's prometheus package)"
  local tmp
  tmp="$(mktemp -d /tmp/tcpkv-promtool.XXXXXX)"
  chmod 0755 "$tmp"
  (cd "$tmp" && apt-get download -q prometheus </dev/null >/dev/null 2>&1) || {
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q </dev/null >&2
    (cd "$tmp" && apt-get download -q prometheus </dev/null >/dev/null)
  }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  "${SUDO[@]}" install -m 0755 "$tmp/root/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
}
ensure_promtool
# ---- end of monitoring tools ------------------------------------------------------------------------

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

OFFICIAL_NODE="node:24-bookworm-slim"
OFFICIAL_ETCD="quay.io/coreos/etcd:v3.5.17"
node_image="${NODE_IMAGE:-$OFFICIAL_NODE}"
etcd_image="${ETCD_IMAGE:-$OFFICIAL_ETCD}"
offline=0
if [ "$node_image" = "tcpkv/node-base:local" ]; then
  offline=1
elif [ "$node_image" = "$OFFICIAL_NODE" ] && ! docker image inspect "$node_image" >/dev/null 2>&1; then
  if ! timeout 60 docker pull -q "$node_image" >/dev/null 2>&1; then
    say "no container registry reachable: building the base images offline"
    offline=1
  fi
fi
if [ "$offline" -eq 1 ]; then
  infra/docker/offline-base.sh >&2
  infra/docker/offline-etcd.sh >&2
  node_image="tcpkv/node-base:local"
  [ -n "${ETCD_IMAGE:-}" ] || etcd_image="tcpkv/etcd:local"
fi
echo "NODE_IMAGE=$node_image"
echo "ETCD_IMAGE=$etcd_image"

# ---- monitoring: the Prometheus image of the cluster compose ----------------------------------------
# Offline (no registry): Debian's Prometheus in tcpkv/prometheus:local; elsewhere the official image.
prometheus_image="${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.2}"
if [ "$offline" -eq 1 ] && [ -z "${PROMETHEUS_IMAGE:-}" ]; then
  infra/docker/offline-prometheus.sh >&2
  prometheus_image="tcpkv/prometheus:local"
fi
echo "PROMETHEUS_IMAGE=$prometheus_image"
# ---- end of the Prometheus image --------------------------------------------------------------------
