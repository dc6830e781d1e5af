#!/usr/bin/env bash
# Build the Docker image tcpkv/etcd:local WITHOUT any container registry.
#
# Only needed on machines that cannot pull images (no Docker Hub, no quay.io/gcr.io), such as the
# CI and development machines this project is built on. Everywhere else the official etcd image
# (e.g. quay.io/coreos/etcd:v3.5) is used and this script is not needed.
#
# The image holds Debian's etcd 3.4 (packages etcd-server and etcd-client, downloaded with
# `apt-get download`, never installed on the host): /usr/local/bin/etcd and /usr/local/bin/etcdctl
# (the official image's paths), the only libraries they need (libc and the loader), static busybox
# with applet links (a shell and the tools testcontainers' wait strategies run), a non-root user
# etcd (uid/gid 10001), /var/lib/etcd owned by it (mode 700, the working directory, so the default
# data dir <name>.etcd lands there), /tmp (1777) and /etc/nsswitch.conf. Imported with
# `docker import`; runs as uid 10001. Idempotent: does nothing if the image exists, unless --rebuild.
#
# Usage: infra/docker/offline-etcd.sh [--rebuild] [--image NAME:TAG]
# Needs: docker (a running daemon), apt-get with Debian's package lists, dpkg-deb, ldd, tar,
#        busybox-static (/bin/busybox).
set -euo pipefail

IMAGE="tcpkv/etcd:local"
REBUILD=0
ETCD_UID=10001

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) REBUILD=1 ;;
    --image) IMAGE="${2:?--image needs a value}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "offline-etcd.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "offline-etcd: $*" >&2; }

if [ "$REBUILD" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE already exists (use --rebuild to rebuild it)"
  exit 0
fi

for tool in docker apt-get dpkg-deb tar ldd; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing required tool: $tool"; exit 1; }
done
BUSYBOX="$(command -v busybox || true)"
if [ -z "$BUSYBOX" ] || ldd "$BUSYBOX" >/dev/null 2>&1; then
  log "a static busybox is required (apt-get install busybox-static)"; exit 1
fi

WORK="$(mktemp -d /tmp/tcpkv-etcd.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"

log "downloading etcd-server and etcd-client from Debian"
# apt-get download writes into the current directory; _apt must be able to write there.
chmod 0755 "$WORK"
(cd "$WORK" && apt-get download -q etcd-server etcd-client >/dev/null 2>&1) || {
  log "apt-get download failed; running apt-get update and retrying"
  apt-get update -q >/dev/null
  (cd "$WORK" && apt-get download -q etcd-server etcd-client >/dev/null)
}
mkdir -p "$WORK/deb"
for deb in "$WORK"/etcd-server_*.deb "$WORK"/etcd-client_*.deb; do
  dpkg-deb -x "$deb" "$WORK/deb"
done

mkdir -p "$ROOT"/usr/{bin,sbin,lib,lib64,local/bin} "$ROOT"/{etc,tmp,var/lib/etcd,proc,sys,dev}
ln -s usr/bin "$ROOT/bin"
ln -s usr/sbin "$ROOT/sbin"
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"

copy_libs() {
  local bin="$1" lib dest
  ldd "$bin" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}' | while read -r lib; do
    dest="$ROOT$(readlink -f "$(dirname "$lib")")/$(basename "$lib")"
    [ -e "$dest" ] && continue
    mkdir -p "$(dirname "$dest")"
    cp -L "$lib" "$dest"
  done
}

for b in etcd etcdctl; do
  install -m 0755 "$WORK/deb/usr/bin/$b" "$ROOT/usr/local/bin/$b"
  copy_libs "$ROOT/usr/local/bin/$b"
done
ETCD_VERSION="$("$ROOT/usr/local/bin/etcd" --version | awk '/etcd Version/{print $3}')"

install -m 0755 "$BUSYBOX" "$ROOT/usr/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
  case "$applet" in usr/*) rel="$applet" ;; *) rel="usr/$applet" ;; esac
  [ -e "$ROOT/$rel" ] || [ -L "$ROOT/$rel" ] || ln -s /usr/bin/busybox "$ROOT/$rel"
done

cat >"$ROOT/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
etcd:x:$ETCD_UID:$ETCD_UID:etcd:/var/lib/etcd:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<EOF
root:x:0:
etcd:x:$ETCD_UID:
nogroup:x:65534:
EOF
cat >"$ROOT/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 1777 "$ROOT/tmp"
chmod 0700 "$ROOT/var/lib/etcd"
chown "$ETCD_UID:$ETCD_UID" "$ROOT/var/lib/etcd"

log "importing $IMAGE (etcd $ETCD_VERSION)"
tar --numeric-owner -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "USER $ETCD_UID:$ETCD_UID" \
  -c 'WORKDIR /var/lib/etcd' \
  -c 'EXPOSE 2379 2380' \
  -c 'CMD ["/usr/local/bin/etcd"]' \
  -m "tcpkv offline etcd: Debian etcd $ETCD_VERSION" \
  - "$IMAGE" >/dev/null

docker run --rm "$IMAGE" sh -c \
  'etcd --version >/dev/null && etcdctl version >/dev/null && [ "$(id -u)" = '"$ETCD_UID"' ] && [ -w /var/lib/etcd ]' \
  || { log "smoke test of $IMAGE failed"; exit 1; }
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
