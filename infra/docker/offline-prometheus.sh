#!/usr/bin/env bash
# Build the Docker image tcpkv/prometheus:local WITHOUT any container registry.
#
# Only needed on machines that cannot pull images (no Docker Hub), such as the CI and development
# machines this project is built on. Everywhere else the official image (prom/prometheus) is used
# and this script is not needed.
#
# The image holds Debian's Prometheus (package prometheus, downloaded with `apt-get download`, never
# installed on the host) laid out like the official image, so one compose file runs either:
# /bin/prometheus and /bin/promtool, the web UI's assets, an empty /etc/prometheus (a deployment
# mounts its prometheus.yml there), /prometheus (the TSDB, owned by nobody, the working directory),
# the libraries the binaries need (libc and the loader), static busybox with applet links (a shell
# and wget for health checks), /tmp (1777) and /etc/nsswitch.conf. Imported with `docker import`;
# runs as nobody (65534). Idempotent: does nothing if the image exists, unless --rebuild.
#
# Usage: infra/docker/offline-prometheus.sh [--rebuild] [--image NAME:TAG]
# Needs: docker (a running daemon), apt-get with Debian's package lists, dpkg-deb, ldd, tar,
#        busybox-static (/bin/busybox).
set -euo pipefail

NAME=offline-prometheus
IMAGE="tcpkv/prometheus:local"
NOBODY=65534

# shellcheck source-path=SCRIPTDIR source=rootfs-lib.sh
source "$(dirname "$0")/rootfs-lib.sh"
parse_args "$@"
exit_if_built
require_tools docker apt-get dpkg-deb tar ldd
new_rootfs etc/prometheus prometheus usr/share/prometheus

log "downloading prometheus from Debian"
# apt-get download writes into the current directory; _apt must be able to write there.
chmod 0755 "$WORK"
(cd "$WORK" && apt-get download -q prometheus >/dev/null 2>&1) || {
  log "apt-get download failed; running apt-get update and retrying"
  apt-get update -q >/dev/null
  (cd "$WORK" && apt-get download -q prometheus >/dev/null)
}
mkdir -p "$WORK/deb"
dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/deb"

for b in prometheus promtool; do
  install -m 0755 "$WORK/deb/usr/bin/$b" "$ROOT/usr/bin/$b"
  copy_libs "$ROOT/usr/bin/$b"
done
# the web UI's templates and static files, where Debian's build looks for them
cp -a "$WORK/deb/usr/share/prometheus/." "$ROOT/usr/share/prometheus/"
PROMETHEUS_VERSION="$("$ROOT/usr/bin/prometheus" --version 2>&1 | awk 'NR==1{print $3}')"

install_busybox

cat >"$ROOT/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
nobody:x:$NOBODY:$NOBODY:nobody:/home:/bin/false
EOF
cat >"$ROOT/etc/group" <<EOF
root:x:0:
nogroup:x:$NOBODY:
EOF
write_nsswitch
chmod 1777 "$ROOT/tmp"
chown "$NOBODY:$NOBODY" "$ROOT/prometheus"

log "importing $IMAGE (prometheus $PROMETHEUS_VERSION)"
# The official image's entrypoint, working directory, user and default flags.
tar --numeric-owner -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "USER $NOBODY:$NOBODY" \
  -c 'WORKDIR /prometheus' \
  -c 'EXPOSE 9090' \
  -c 'VOLUME ["/prometheus"]' \
  -c 'ENTRYPOINT ["/bin/prometheus"]' \
  -c 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
  -m "tcpkv offline prometheus: Debian prometheus $PROMETHEUS_VERSION" \
  - "$IMAGE" >/dev/null

docker run --rm --entrypoint sh "$IMAGE" -c \
  'prometheus --version >/dev/null 2>&1 && promtool --version >/dev/null 2>&1 && [ "$(id -u)" = '"$NOBODY"' ] && [ -w /prometheus ] && command -v wget >/dev/null' \
  || { log "smoke test of $IMAGE failed"; exit 1; }
log_built
