#!/usr/bin/env bash
# Build the Docker image tcpkv/vm:local: a container that plays a Debian VM, for the end-to-end test of
# the remote recipes (test/containers/remote-deploy.test.ts). Not part of the product.
#
# The root filesystem is Debian bookworm from Debian's own mirror (debootstrap, minbase) with sshd,
# Docker (docker.io, docker-compose v1), iptables, curl, git and ca-certificates, i.e. what the
# recipes expect on a VM, preinstalled so that a test never needs apt on the "VM". Imported with
# `docker import`. Its command, /usr/local/sbin/vm-init, makes it behave like a freshly booted VM:
#   - drops every packet to 169.254.0.0/16 (iptables, raw table: the VM's own and its containers'),
#     so nothing in the test can reach a real cloud metadata service even by mistake;
#   - writes /root/.ssh/authorized_keys from $VM_AUTHORIZED_KEY and starts sshd (keys only, no
#     passwords), with fresh host keys;
#   - starts its own dockerd (storage driver vfs) and waits until it answers.
# The container needs: --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE (without it the
# inner `docker exec`, hence every health check, fails in setns) --security-opt seccomp=unconfined
# --security-opt apparmor=unconfined -v /sys/fs/cgroup:/sys/fs/cgroup:rw (--privileged is not needed).
# Idempotent: does nothing if the image exists, unless --rebuild.
#
# Usage: infra/docker/offline-vm.sh [--rebuild] [--image NAME:TAG]
# Needs: docker (a running daemon), debootstrap, tar, and Debian's mirror (read from apt's sources).
set -euo pipefail

NAME=offline-vm
IMAGE="tcpkv/vm:local"

# shellcheck source-path=SCRIPTDIR source=rootfs-lib.sh
source "$(dirname "$0")/rootfs-lib.sh"
parse_args "$@"
exit_if_built
for tool in docker debootstrap tar; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing required tool: $tool (apt-get install debootstrap)"; exit 1; }
done

# The mirror apt already uses on this machine (deb822 sources first, then the one-line format).
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
fi
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

WORK="$(mktemp -d /tmp/tcpkv-offline-vm.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"

log "debootstrap bookworm from $mirror (a minute or two)"
debootstrap --variant=minbase \
  --include=openssh-server,docker.io,docker-compose,iptables,ca-certificates,procps,curl,git,iproute2 \
  bookworm "$ROOT" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 30 "$WORK/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
}

# sshd: keys only; host keys are made at first start (an image shared by many tests has none).
rm -f "$ROOT"/etc/ssh/ssh_host_*
cat >"$ROOT/etc/ssh/sshd_config.d/tcpkv-vm.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
EOF
install -d -m 0700 "$ROOT/root/.ssh"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

cat >"$ROOT/usr/local/sbin/vm-init" <<'EOF'
#!/bin/bash
# The "boot" of the VM container (see infra/docker/offline-vm.sh).
set -euo pipefail
# No metadata service may ever be reached from here, nor from the containers of the inner Docker.
iptables -t raw -I OUTPUT -d 169.254.0.0/16 -j DROP
iptables -t raw -I PREROUTING -d 169.254.0.0/16 -j DROP
echo "vm-init: 169.254.0.0/16 dropped"
if [ -n "${VM_AUTHORIZED_KEY:-}" ]; then
  printf '%s\n' "$VM_AUTHORIZED_KEY" >/root/.ssh/authorized_keys
  chmod 0600 /root/.ssh/authorized_keys
fi
ssh-keygen -A >/dev/null
mkdir -p /run/sshd
/usr/sbin/sshd -e
dockerd --storage-driver=vfs >/var/log/dockerd.log 2>&1 &
for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null 2>&1 || { tail -n 30 /var/log/dockerd.log; exit 1; }
echo "vm-init: ready"
wait
EOF
chmod 0755 "$ROOT/usr/local/sbin/vm-init"

log "importing $IMAGE"
tar --numeric-owner -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["/usr/local/sbin/vm-init"]' \
  -m "tcpkv test VM: Debian bookworm with sshd and Docker" \
  - "$IMAGE" >/dev/null
docker run --rm "$IMAGE" sh -c 'command -v sshd dockerd docker-compose iptables curl git >/dev/null' \
  || { log "smoke test of $IMAGE failed"; exit 1; }
log_built
