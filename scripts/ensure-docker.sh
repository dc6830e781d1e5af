#!/usr/bin/env bash
# Makes sure a Docker engine and Compose answer, and that the base images the Dockerfiles build on
# exist. Used by scripts/demo.sh (--demo), scripts/test.sh and .ci/run (--tests, the default).
#
#   --demo   what the demo needs and nothing more: a `docker` that answers and Compose (the v2 plugin
#            `docker compose` or v1 `docker-compose`). Whatever already works is used as it is;
#            only when something is missing AND this is Debian/Ubuntu with root (or sudo) does it
#            install docker.io / docker-compose. Elsewhere it says what to install and stops.
#   --tests  the machine set-up for the test suite: the above, plus the tools the tests run
#            (busybox-static, shellcheck, etcd-server, promtool, debootstrap, ssh, openssl) and the
#            "VM" image of the remote recipe's end-to-end test (tcpkv/vm:local, Debian from Debian's
#            mirror: infra/docker/offline-vm.sh) — Debian/Ubuntu only.
#
# A daemon that does not answer yet is waited for (it may be starting), then started the system's
# way (systemctl, then service), and only when no dockerd runs at all is one started by hand (log in
# $DOCKERD_LOG) — never a second one beside a daemon that is still starting.
#
# Base images: the official ones when present or pullable. Where no container registry is reachable
# (as on the project's own machines), or when NODE_IMAGE is already tcpkv/node-base:local, it builds
# the offline images (infra/docker/offline-*.sh, idempotent): tcpkv/node-base:local for build stages
# (it trusts this machine's CA bundle, which npm needs behind an intercepting proxy),
# tcpkv/node-runtime:local for runtime stages (no such trust) and, for the tests, tcpkv/etcd:local.
# stdout carries only NAME=value lines (NODE_IMAGE, RUNTIME_IMAGE, ETCD_IMAGE, …) for the caller to
# export; everything else goes to stderr.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/tcpkv-dockerd.log}"
export DEBIAN_FRONTEND=noninteractive

mode=tests
case "${1:-}" in
  --demo) mode=demo ;;
  --tests | "") mode=tests ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "ensure-docker.sh: unknown argument: $1 (--demo or --tests)" >&2; exit 2 ;;
esac

say() { echo "==> $*" >&2; }
die() { echo "ensure-docker.sh: $*" >&2; exit 1; }

SUDO=()
can_install=1
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else can_install=0; fi
fi
is_debian() { [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

# apt_install PACKAGE...: on Debian/Ubuntu with root or sudo; anywhere else a clear stop.
apt_install() {
  if ! is_debian || [ "$can_install" -eq 0 ]; then
    die "missing: $* — install them (Docker Engine or Docker Desktop, with Compose) and run this again; automatic installation is only done on Debian/Ubuntu as root"
  fi
  say "installing $*"
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q </dev/null >&2
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@" </dev/null >&2
}

compose_works() { docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; }

# ---- the engine and Compose (both modes) -------------------------------------------------------------
missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if [ "${#missing[@]}" -gt 0 ] || ! compose_works; then
  # docker.io brings the CLI and dockerd; docker-compose is Compose v1, the one Debian packages everywhere
  compose_works || missing+=(docker-compose)
  apt_install "${missing[@]}"
fi
compose_works || die "Compose does not answer (neither 'docker compose' nor 'docker-compose')"

if [ "$mode" = tests ]; then
  tools=()
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || tools+=(busybox-static)
  command -v shellcheck >/dev/null 2>&1 || tools+=(shellcheck)
  command -v etcd >/dev/null 2>&1 || tools+=(etcd-server)
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || tools+=(debootstrap)
  { command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; } || tools+=(openssh-client)
  command -v openssl >/dev/null 2>&1 || tools+=(openssl)
  [ "${#tools[@]}" -eq 0 ] || apt_install "${tools[@]}"
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
fi

docker_answers() { docker info >/dev/null 2>&1; }
# wait_for_docker SECONDS: true as soon as `docker info` answers.
wait_for_docker() {
  local i
  for ((i = 0; i < $1; i++)); do
    docker_answers && return 0
    sleep 1
  done
  docker_answers
}

if ! docker_answers; then
  if pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd is running but does not answer yet: waiting for it"
    wait_for_docker 60 || true
  fi
fi
if ! docker_answers; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    say "starting Docker with systemctl"
    "${SUDO[@]}" systemctl start docker >&2 || true
  elif command -v service >/dev/null 2>&1 && [ -e /etc/init.d/docker ]; then
    say "starting Docker with service"
    "${SUDO[@]}" service docker start >&2 || true
  fi
  wait_for_docker 30 || true
fi
if ! docker_answers && pgrep -x dockerd >/dev/null 2>&1; then
  say "a dockerd is running (started by the system): waiting for it"
  wait_for_docker 60 || true
fi
if ! docker_answers && ! pgrep -x dockerd >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || die "docker does not answer and there is no dockerd to start (start Docker Desktop or the Docker service)"
  say "starting dockerd (log: $DOCKERD_LOG)"
  "${SUDO[@]}" setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  wait_for_docker 60 || true
fi
if ! docker_answers; then
  say "Docker did not answer within the wait; last lines of $DOCKERD_LOG (if dockerd was started here):"
  tail -n 30 "$DOCKERD_LOG" /var/log/docker.log >&2 2>/dev/null || true
  exit 1
fi
say "docker $(docker info --format '{{.ServerVersion}}' 2>/dev/null) is up"

# ---- base images -------------------------------------------------------------------------------------
OFFICIAL_NODE="node:24-bookworm-slim"
OFFICIAL_ETCD="quay.io/coreos/etcd:v3.5.17"
node_image="${NODE_IMAGE:-$OFFICIAL_NODE}"
runtime_image="${RUNTIME_IMAGE:-}"
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
  command -v busybox >/dev/null 2>&1 || [ "$mode" = tests ] \
    || die "no container registry is reachable, and building the Node base image offline needs busybox-static (apt-get install busybox-static, or use scripts/ensure-docker.sh --tests)"
  infra/docker/offline-base.sh >&2
  node_image="tcpkv/node-base:local"
  [ -n "$runtime_image" ] || runtime_image="tcpkv/node-runtime:local"
  if [ "$mode" = tests ]; then
    infra/docker/offline-etcd.sh >&2
    [ -n "${ETCD_IMAGE:-}" ] || etcd_image="tcpkv/etcd:local"
  fi
fi
echo "NODE_IMAGE=$node_image"
echo "RUNTIME_IMAGE=${runtime_image:-$node_image}"
echo "ETCD_IMAGE=$etcd_image"

[ "$mode" = tests ] || exit 0
# ---- monitoring: the Prometheus image of the cluster compose ----------------------------------------
# Offline (no registry): Debian's Prometheus in tcpkv/prometheus:local; elsewhere the official image.
prometheus_image="${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.2}"
if [ "$offline" -eq 1 ] && [ -z "${PROMETHEUS_IMAGE:-}" ]; then
  infra/docker/offline-prometheus.sh >&2
  prometheus_image="tcpkv/prometheus:local"
fi
echo "PROMETHEUS_IMAGE=$prometheus_image"
# ---- end of the Prometheus image --------------------------------------------------------------------
# ---- the "VM" of the remote recipe's end-to-end test (no registry has it: always built here) -------
"${SUDO[@]}" env PATH="$PATH:/usr/sbin:/sbin" infra/docker/offline-vm.sh >&2  # debootstrap needs root
echo "VM_IMAGE=tcpkv/vm:local"
# ---- end of the VM image ----------------------------------------------------------------------------
