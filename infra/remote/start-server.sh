#!/usr/bin/env bash
# Start (or re-apply the settings of) the tcpkv server on this machine with Docker and
# infra/remote/server.compose.yml, then wait until the container reports healthy.
# Used by the EC2 bootstrap (infra/terraform/aws) and by deploy-ssh.sh; fine to run by hand.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/remote/start-server.sh [--env-file FILE] [--image IMAGE] [--imds] [--no-wait]

Builds (or pulls) and starts the tcpkv server with infra/remote/server.compose.yml
(compose project "tcpkv"), then waits until the container is healthy.

  --env-file FILE  settings to use (KEY=value lines, see infra/remote/.env.example);
                   default: infra/remote/.env if it exists, else the environment only
  --image IMAGE    pull and run this server image instead of building Dockerfile.server
                   (same as TCPKV_SERVER_IMAGE=IMAGE in the settings)
  --imds           on EC2: add this instance's public IPv4 address and DNS name, read from
                   the instance metadata service (IMDSv2), to TCPKV_ALLOWED_HOSTS
  --no-wait        do not wait for the health check
  -h, --help       show this help

Needs: docker, and Compose v2 ("docker compose") or v1 ("docker-compose").
Required settings: TCPKV_ALLOWED_HOSTS, TCPKV_ALLOWED_CLIENTS, TCPKV_SHUTDOWN_TOKEN.
EOF
}

die() {
  echo "start-server.sh: $*" >&2
  exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compose_file="$here/server.compose.yml"
project="${TCPKV_COMPOSE_PROJECT:-tcpkv}"
env_file=""
image=""
use_imds=0
wait_healthy=1

while [ "$#" -gt 0 ]; do
  case "$1" in
    --env-file)
      [ "$#" -ge 2 ] || { usage >&2; exit 2; }
      env_file="$2"
      shift 2
      ;;
    --image)
      [ "$#" -ge 2 ] || { usage >&2; exit 2; }
      image="$2"
      shift 2
      ;;
    --imds) use_imds=1; shift ;;
    --no-wait) wait_healthy=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *)
      echo "start-server.sh: unknown argument: $1" >&2
      usage >&2
      exit 2
      ;;
  esac
done

if [ -z "$env_file" ] && [ -f "$here/.env" ]; then env_file="$here/.env"; fi
if [ -n "$env_file" ]; then
  [ -f "$env_file" ] || die "no such settings file: $env_file"
  set -a
  # shellcheck source=/dev/null
  . "$env_file"
  set +a
fi
if [ -n "$image" ]; then export TCPKV_SERVER_IMAGE="$image"; fi

imds_get() {
  local token
  token="$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    http://169.254.169.254/latest/api/token)" || return 1
  curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

if [ "$use_imds" = 1 ]; then
  command -v curl > /dev/null || die "--imds needs curl"
  hosts="${TCPKV_ALLOWED_HOSTS:-}"
  for item in public-ipv4 public-hostname; do
    if value="$(imds_get "$item")" && [ -n "$value" ]; then
      case ",$hosts," in
        *",$value,"*) ;;
        *) hosts="${hosts:+$hosts,}$value" ;;
      esac
    else
      echo "start-server.sh: IMDS has no $item for this instance" >&2
    fi
  done
  export TCPKV_ALLOWED_HOSTS="$hosts"
fi

for name in TCPKV_ALLOWED_HOSTS TCPKV_ALLOWED_CLIENTS TCPKV_SHUTDOWN_TOKEN; do
  [ -n "${!name:-}" ] || die "$name is not set (put it in the settings file; see infra/remote/.env.example)"
done
case ",$TCPKV_ALLOWED_CLIENTS," in
  *",*,"*) die "TCPKV_ALLOWED_CLIENTS cannot be * here (loopback is added for the health check); name the clients, or write 0.0.0.0/0,::/0 to allow anyone" ;;
esac

command -v docker > /dev/null || die "docker is not installed"
if docker compose version > /dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose > /dev/null; then
  compose=(docker-compose)
else
  die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
fi
compose+=(-p "$project" -f "$compose_file")

if [ -n "${TCPKV_SERVER_IMAGE:-}" ] && [ "$TCPKV_SERVER_IMAGE" != "tcpkv/server:local" ]; then
  echo "start-server.sh: pulling $TCPKV_SERVER_IMAGE"
  docker pull "$TCPKV_SERVER_IMAGE"
  "${compose[@]}" up -d --no-build server
else
  echo "start-server.sh: building the server image from $(cd "$here/../.." && pwd)"
  "${compose[@]}" up -d --build server
fi

echo "start-server.sh: allowed hosts: $TCPKV_ALLOWED_HOSTS"
echo "start-server.sh: allowed clients: $TCPKV_ALLOWED_CLIENTS (and loopback, for the health check)"
[ "$wait_healthy" = 1 ] || exit 0

container="$("${compose[@]}" ps -q server)"
[ -n "$container" ] || die "the server container did not start"
status=""
for _ in $(seq 90); do
  status="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$container")"
  case "$status" in
    healthy) echo "start-server.sh: tcpkv is up (healthy), port ${TCPKV_PUBLISH:-10000}"; exit 0 ;;
    unhealthy | exited | dead) break ;;
  esac
  sleep 2
done
docker logs --tail 50 "$container" >&2 || true
die "the server is $status, not healthy (logs above)"
