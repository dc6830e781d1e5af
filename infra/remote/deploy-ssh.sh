#!/usr/bin/env bash
# The SSH route, for people without Terraform: copy tcpkv to any VM you can ssh into and start the
# server there with infra/remote/server.compose.yml (through infra/remote/start-server.sh), with TLS
# and client certificates from a private CA made here (infra/remote/make-certs.sh).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/remote/deploy-ssh.sh [options] USER@HOST

Copies tcpkv's remote recipe to USER@HOST over ssh and starts the server there with Docker, TLS on
port 10443 with client certificates (plain HTTP on the VM's loopback only). No release of the server
image has been published yet, so by default the image is built on the VM from this repository;
--ship sends the image built here instead, --image names a released (or pushed) one to pull.

  --env-file FILE   server settings to send (default: infra/remote/.env; start from
                    infra/remote/.env.example). Needs TCPKV_ALLOWED_HOSTS,
                    TCPKV_ALLOWED_CLIENTS and TCPKV_SHUTDOWN_TOKEN.
  --build           (the default) copy this repository (git archive of --ref) and build the
                    image on the VM
  --ref REF         with --build: the git ref to copy (default: HEAD)
  --ship            send a server image from this machine's Docker over ssh (docker save |
                    docker load): the one --image names, else tcpkv/server:local (built here
                    from this checkout first if it does not exist)
  --image IMAGE     without --ship: the VM runs this released or pushed image (pulled there)
  --tls-dir DIR     where the private CA, the server's and the client's certificates and keys
                    are made and kept on this machine (default: infra/remote/tls/HOST; files
                    0600). The server's certificate names HOST and every TCPKV_ALLOWED_HOSTS
                    entry; only server.crt, server.key and ca.crt are sent to the VM.
  --tls-name NAME   one more name (IP address or DNS name) for the server's certificate
  --dir DIR         directory on the VM, relative to the remote home (default: tcpkv)
  --install-docker  first install Docker and Compose with apt-get (Debian/Ubuntu VMs, via sudo)
  -i KEYFILE        ssh identity file (as ssh -i)
  -p PORT           ssh port (as ssh -p)
  -o OPTION         an ssh option (as ssh -o), e.g. -o UserKnownHostsFile=FILE; repeatable
  -h, --help        show this help

Remember the firewall: the VM's provider must let TCP 10443 in from your client's addresses
(and only from there); 10000 stays closed. See docs/remote-vm.md.
EOF
}

die() {
  echo "deploy-ssh.sh: $*" >&2
  exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
env_file="$here/.env"
ref="HEAD"
image=""
build=0
ship=0
remote_dir="tcpkv"
install_docker=0
tls_dir=""
tls_names=()
ssh_opts=(-o BatchMode=yes -o ConnectTimeout=15 -o ServerAliveInterval=15)
target=""

need_value() { [ "$2" -ge 2 ] || { echo "deploy-ssh.sh: $1 needs a value" >&2; usage >&2; exit 2; }; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --env-file) need_value "$1" "$#"; env_file="$2"; shift 2 ;;
    --ref) need_value "$1" "$#"; ref="$2"; shift 2 ;;
    --image) need_value "$1" "$#"; image="$2"; shift 2 ;;
    --build) build=1; shift ;;
    --ship) ship=1; shift ;;
    --tls-dir) need_value "$1" "$#"; tls_dir="$2"; shift 2 ;;
    --tls-name) need_value "$1" "$#"; tls_names+=("$2"); shift 2 ;;
    --dir) need_value "$1" "$#"; remote_dir="$2"; shift 2 ;;
    --install-docker) install_docker=1; shift ;;
    -i) need_value "$1" "$#"; ssh_opts+=(-i "$2"); shift 2 ;;
    -p) need_value "$1" "$#"; ssh_opts+=(-p "$2"); shift 2 ;;
    -o) need_value "$1" "$#"; ssh_opts+=(-o "$2"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "deploy-ssh.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    *)
      [ -z "$target" ] || { echo "deploy-ssh.sh: more than one USER@HOST given" >&2; usage >&2; exit 2; }
      target="$1"
      shift
      ;;
  esac
done
[ -n "$target" ] || { usage >&2; exit 2; }
[ "$build" = 0 ] || [ -z "$image" ] || { echo "deploy-ssh.sh: --image and --build exclude each other" >&2; exit 2; }
[ "$build" = 0 ] || [ "$ship" = 0 ] || { echo "deploy-ssh.sh: --ship and --build exclude each other" >&2; exit 2; }
# Until a release exists, no image named and nothing shipped means: build on the VM.
if [ "$ship" = 0 ] && [ -z "$image" ]; then build=1; fi
host="${target#*@}"
[[ "$host" =~ ^[A-Za-z0-9.:_-]+$ ]] || die "not a host name or address: $host"
[ -n "$tls_dir" ] || tls_dir="$here/tls/$host"
# absolute: the client compose file mounts it, and compose reads relative paths from its own directory
case "$tls_dir" in /*) ;; *) tls_dir="$(pwd)/$tls_dir" ;; esac

# Check the settings here, before touching the VM, with the same literal reading and checks as on it.
[ -f "$env_file" ] || die "no settings file $env_file (copy infra/remote/.env.example and fill it in, or pass --env-file)"
env -u TCPKV_ALLOWED_HOSTS -u TCPKV_ALLOWED_CLIENTS -u TCPKV_SHUTDOWN_TOKEN \
  "$here/start-server.sh" --check --env-file "$env_file" > /dev/null || die "fix $env_file first"

# ---- TLS: a private CA, the server's certificate (for HOST and the allowed host names), the client's
allowed_hosts="$(grep -E '^TCPKV_ALLOWED_HOSTS=' "$env_file" | tail -n 1 | cut -d= -f2- | tr -d '\r')"
IFS=', ' read -r -a all_names <<< "$allowed_hosts"
host_names=()
for name in ${all_names[@]+"${all_names[@]}"}; do [ "$name" = "*" ] || host_names+=("$name"); done
"$here/make-certs.sh" "$tls_dir" "$host" ${host_names[@]+"${host_names[@]}"} ${tls_names[@]+"${tls_names[@]}"} \
  || die "could not make the certificates in $tls_dir"

# The image to send (--ship): the one named, else this checkout's, built here when missing.
if [ "$ship" = 1 ]; then
  ship_image="${image:-tcpkv/server:local}"
  command -v docker > /dev/null || die "--ship needs Docker on this machine"
  if ! docker image inspect "$ship_image" > /dev/null 2>&1; then
    [ -z "$image" ] || die "--ship: there is no image $image on this machine"
    echo "deploy-ssh.sh: building $ship_image here from $repo_root"
    docker build -f "$repo_root/Dockerfile.server" -t "$ship_image" \
      ${NODE_IMAGE:+--build-arg "NODE_IMAGE=$NODE_IMAGE"} ${RUNTIME_IMAGE:+--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE"} \
      "$repo_root" || die "the image build failed"
  fi
  image="$ship_image"
fi

# The remote command lines below are built here on purpose (directory quoted with printf %q).
# shellcheck disable=SC2029
remote() { ssh "${ssh_opts[@]}" "$target" "$@"; }
q_dir="$(printf '%q' "$remote_dir")"

echo "deploy-ssh.sh: checking ssh access to $target"
remote true || die "cannot ssh to $target"

if [ "$install_docker" = 1 ]; then
  echo "deploy-ssh.sh: installing Docker and Compose on $target"
  remote 'bash -s' <<'REMOTE'
set -euo pipefail
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update
packages="docker.io git ca-certificates curl"
if apt-cache show docker-compose-v2 > /dev/null 2>&1; then
  packages="$packages docker-compose-v2"
  if apt-cache show docker-buildx > /dev/null 2>&1; then packages="$packages docker-buildx"; fi
else
  packages="$packages docker-compose"
fi
# shellcheck disable=SC2086
$sudo_cmd apt-get install -y --no-install-recommends $packages
$sudo_cmd systemctl enable --now docker
REMOTE
fi

# docker on the VM: directly, or through sudo
sudo_docker="$(remote 'if docker info > /dev/null 2>&1; then echo; else echo sudo; fi')" || die "cannot run commands on $target"

if [ "$ship" = 1 ]; then
  size="$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
  echo "deploy-ssh.sh: sending the image $image ($size) to $target (docker save | docker load)"
  docker save "$image" | remote "$sudo_docker docker load" || die "sending the image $image failed"
fi

if [ "$build" = 0 ]; then
  echo "deploy-ssh.sh: copying infra/remote to $target:$remote_dir (image $image)"
  tar -C "$repo_root" -cf - infra/remote/server.compose.yml infra/remote/start-server.sh \
    | remote "mkdir -p -- $q_dir && tar -xf - -C $q_dir"
else
  commit="$(git -C "$repo_root" rev-parse --verify "$ref^{commit}")" || die "unknown git ref: $ref"
  echo "deploy-ssh.sh: copying $ref ($commit) to $target:$remote_dir"
  if [ -n "$(git -C "$repo_root" status --porcelain)" ]; then
    echo "deploy-ssh.sh: note: uncommitted changes are not copied (git archive of $ref)" >&2
  fi
  git -C "$repo_root" archive --format=tar "$commit" \
    | remote "mkdir -p -- $q_dir && tar -xf - -C $q_dir"
fi

echo "deploy-ssh.sh: sending the settings ($env_file) to $target:$remote_dir/infra/remote/.env"
remote "umask 077 && cat > $q_dir/infra/remote/.env" < "$env_file"

echo "deploy-ssh.sh: sending the server's certificate and key and the CA certificate to $target:$remote_dir/infra/remote/tls"
tar -C "$tls_dir" -cf - server.crt server.key ca.crt \
  | remote "umask 077 && mkdir -p $q_dir/infra/remote/tls && $sudo_docker tar -xf - --no-same-owner -C $q_dir/infra/remote/tls"

start_args="--env-file infra/remote/.env"
if [ -n "$image" ]; then start_args="$start_args --image $(printf '%q' "$image")"; fi
if [ "$build" = 1 ]; then start_args="$start_args --build"; fi
echo "deploy-ssh.sh: starting the server on $target"
remote "cd $q_dir && $sudo_docker infra/remote/start-server.sh $start_args"

echo
echo "deploy-ssh.sh: done. The client's certificate and key are in $tls_dir (client.crt, client.key, ca.crt)."
echo "From your machine (repository root), run the seed scenario over TLS with:"
echo "  TCPKV_SERVER=$host:10443 TCPKV_CLIENT_TLS_DIR=$tls_dir TCPKV_CLIENT_USER=\"\$(id -u):\$(id -g)\" TCPKV_SHUTDOWN_TOKEN=<token> docker compose -f infra/remote/client.compose.yml run --rm client scenario"
