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

NAME=offline-etcd
IMAGE="tcpkv/etcd:local"
ETCD_UID=10001

# shellcheck source-path=SCRIPTDIR source=rootfs-lib.sh
source "$(dirname "$0")/rootfs-lib.sh"
parse_args "$@"
exit_if_built
require_tools docker apt-get dpkg-deb tar ldd
new_rootfs etc var/lib/etcd

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

for b in etcd etcdctl; do
  install -m 0755 "$WORK/deb/usr/bin/$b" "$ROOT/usr/local/bin/$b"
  copy_libs "$ROOT/usr/local/bin/$b"
done
ETCD_VERSION="$("$ROOT/usr/local/bin/etcd" --version | awk '/etcd Version/{print $3}')"

install_busybox

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
write_nsswitch
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
log_built
