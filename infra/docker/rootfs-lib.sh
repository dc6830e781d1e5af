#!/usr/bin/env bash
# Shared by offline-base.sh and offline-etcd.sh (sourced, not run): the steps both take to assemble
# a root filesystem from what the host has and `docker import` it — argument handling, the checks on
# host tools, the merged-/usr skeleton, copying an executable's libraries, busybox and its applets.
# The caller sets NAME (its log prefix) and IMAGE (the default image) before sourcing this.

REBUILD=0

log() { echo "$NAME: $*" >&2; }

# The caller's header comment, from line 2 down to `set -euo`, is its usage text.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# --rebuild, --image NAME:TAG, -h/--help: sets REBUILD and IMAGE.
parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --rebuild) REBUILD=1 ;;
      --image) IMAGE="${2:?--image needs a value}"; shift ;;
      -h|--help) usage; exit 0 ;;
      *) echo "$NAME.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
  done
}

# Idempotent: nothing to do when the image exists, unless --rebuild.
exit_if_built() {
  if [ "$REBUILD" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already exists (use --rebuild to rebuild it)"
    exit 0
  fi
}

# require_tools TOOL...; then a static busybox, in BUSYBOX.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { log "missing required tool: $tool"; exit 1; }
  done
  BUSYBOX="$(command -v busybox || true)"
  if [ -z "$BUSYBOX" ] || ldd "$BUSYBOX" >/dev/null 2>&1; then
    log "a static busybox is required (apt-get install busybox-static)"; exit 1
  fi
}

# new_rootfs DIR...: a work directory (WORK, removed on exit) holding ROOT, a merged-/usr skeleton
# as in Debian (/bin, /sbin, /lib, /lib64 link into /usr) with DIR... (relative to ROOT) made too.
new_rootfs() {
  WORK="$(mktemp -d "/tmp/tcpkv-$NAME.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  ROOT="$WORK/rootfs"
  mkdir -p "$ROOT"/usr/{bin,sbin,lib,lib64,local/bin} "$ROOT"/{tmp,proc,sys,dev}
  local dir
  for dir in "$@"; do mkdir -p "$ROOT/$dir"; done
  ln -s usr/bin "$ROOT/bin"
  ln -s usr/sbin "$ROOT/sbin"
  ln -s usr/lib "$ROOT/lib"
  ln -s usr/lib64 "$ROOT/lib64"
}

# Copy a dynamic executable's libraries (and the loader) to the same paths inside ROOT.
copy_libs() {
  local bin="$1" lib dest
  ldd "$bin" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}' | while read -r lib; do
    dest="$ROOT$(readlink -f "$(dirname "$lib")")/$(basename "$lib")"
    [ -e "$dest" ] && continue
    mkdir -p "$(dirname "$dest")"
    cp -L "$lib" "$dest"
  done
}

# Static busybox at /usr/bin/busybox with a link for each applet not already there.
install_busybox() {
  local applet rel
  install -m 0755 "$BUSYBOX" "$ROOT/usr/bin/busybox"
  "$BUSYBOX" --list-full | while read -r applet; do
    # applet is e.g. bin/cat or usr/sbin/arping; with merged /usr both live under usr/.
    case "$applet" in usr/*) rel="$applet" ;; *) rel="usr/$applet" ;; esac
    [ -e "$ROOT/$rel" ] || [ -L "$ROOT/$rel" ] || ln -s /usr/bin/busybox "$ROOT/$rel"
  done
}

# /etc/nsswitch.conf: users and groups from files, hosts from files then DNS.
write_nsswitch() {
  cat >"$ROOT/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
}

# The closing line: the image and its size.
log_built() {
  log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
}
