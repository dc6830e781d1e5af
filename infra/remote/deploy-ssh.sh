#!/usr/bin/env bash
# The SSH route, for people without Terraform: copy tcpkv to any VM you can ssh into and start the
# server there with infra/remote/server.compose.yml (through infra/remote/start-server.sh).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/remote/deploy-ssh.sh [options] USER@HOST

Copies tcpkv's remote recipe to USER@HOST over ssh and starts the server there with Docker: the
released server image named in infra/remote/server.compose.yml, another image (--image), or one
built on the VM from this repository (--build).

  --env-file FILE   server settings to send (default: infra/remote/.env; start from
                    infra/remote/.env.example). Needs TCPKV_ALLOWED_HOSTS,
                    TCPKV_ALLOWED_CLIENTS and TCPKV_SHUTDOWN_TOKEN.
  --image IMAGE     run this pushed server image instead of the released one
  --build           copy this repository (git archive of --ref) and build the image on the VM
  --ref REF         with --build: the git ref to copy (default: HEAD)
  --dir DIR         directory on the VM, relative to the remote home (default: tcpkv)
  --install-docker  first install Docker and Compose with apt-get (Debian/Ubuntu VMs, via sudo)
  -i KEYFILE        ssh identity file (as ssh -i)
  -p PORT           ssh port (as ssh -p)
  -h, --help        show this help

Remember the firewall: the VM's provider must let TCP 10000 in from your client's address
(and only from there). See docs/remote-vm.md.
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
remote_dir="tcpkv"
install_docker=0
ssh_opts=(-o BatchMode=yes -o ConnectTimeout=15)
target=""

need_value() { [ "$2" -ge 2 ] || { echo "deploy-ssh.sh: $1 needs a value" >&2; usage >&2; exit 2; }; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --env-file) need_value "$1" "$#"; env_file="$2"; shift 2 ;;
    --ref) need_value "$1" "$#"; ref="$2"; shift 2 ;;
    --image) need_value "$1" "$#"; image="$2"; shift 2 ;;
    --build) build=1; shift ;;
    --dir) need_value "$1" "$#"; remote_dir="$2"; shift 2 ;;
    --install-docker) install_docker=1; shift ;;
    -i) need_value "$1" "$#"; ssh_opts+=(-i "$2"); shift 2 ;;
    -p) need_value "$1" "$#"; ssh_opts+=(-p "$2"); shift 2 ;;
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

# Check the settings here, before touching the VM, with the same literal reading and checks as on it.
[ -f "$env_file" ] || die "no settings file $env_file (copy infra/remote/.env.example and fill it in, or pass --env-file)"
env -u TCPKV_ALLOWED_HOSTS -u TCPKV_ALLOWED_CLIENTS -u TCPKV_SHUTDOWN_TOKEN \
  "$here/start-server.sh" --check --env-file "$env_file" > /dev/null || die "fix $env_file first"

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

if [ "$build" = 0 ]; then
  echo "deploy-ssh.sh: copying infra/remote to $target:$remote_dir (image ${image:-the released one})"
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

start_args="--env-file infra/remote/.env"
if [ -n "$image" ]; then start_args="$start_args --image $(printf '%q' "$image")"; fi
if [ "$build" = 1 ]; then start_args="$start_args --build"; fi
echo "deploy-ssh.sh: starting the server on $target"
remote "cd $q_dir && if docker info > /dev/null 2>&1; then s=''; else s=sudo; fi && \$s infra/remote/start-server.sh $start_args"

host="${target#*@}"
echo
echo "deploy-ssh.sh: done. From your machine (repository root), run the seed scenario with:"
echo "  TCPKV_SERVER=$host:10000 TCPKV_SHUTDOWN_TOKEN=<token> docker compose -f infra/remote/client.compose.yml run --rm client scenario"
