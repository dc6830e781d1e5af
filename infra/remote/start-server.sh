#!/usr/bin/env bash
# Start (or re-apply the settings of) the tcpkv server on this machine with Docker and
# infra/remote/server.compose.yml, then wait until the container reports healthy.
# Used by the EC2 bootstrap (infra/terraform/aws) and by deploy-ssh.sh; fine to run by hand.
#
# Safe to re-run on a serving machine: the new settings are read literally and checked, then tried
# in a separate trial container; only when that one is healthy is the running server replaced, and if
# the replacement still does not become healthy the last settings that worked are started again.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/remote/start-server.sh [--env-file FILE] [--image IMAGE | --build] [--imds] [--no-wait] [--check]

Starts the tcpkv server with infra/remote/server.compose.yml (compose project "tcpkv") and waits
until the container is healthy. The image: TCPKV_SERVER_IMAGE (or --image) when set — used as it is
when it is already on this machine (e.g. sent by deploy-ssh.sh --ship), else pulled; otherwise it is
built from this checkout (no release of the server image has been published yet).
TLS is on: the certificate, key and client CA are read from TCPKV_TLS_DIR (default: infra/remote/tls):
server.crt, server.key and ca.crt, as infra/remote/make-certs.sh makes them.

  --env-file FILE  settings (KEY=value lines, see infra/remote/.env.example), read literally:
                   no quotes, no $-expansion, spaces kept; default: infra/remote/.env if it
                   exists, else the environment only
  --image IMAGE    run this server image (same as TCPKV_SERVER_IMAGE=IMAGE); pulled unless it is
                   already on this machine
  --build          build the server image from this checkout (Dockerfile.server); the default
                   when no image is named
  --imds           on EC2: add this instance's public IPv4 address and DNS name, read from
                   the instance metadata service (IMDSv2, at TCPKV_METADATA_URL, default
                   http://169.254.169.254), to TCPKV_ALLOWED_HOSTS
  --no-wait        do not wait for the health check (else it waits up to TCPKV_WAIT_SECONDS, 180)
  --check          only read and check the settings, then exit (0 = usable)
  -h, --help       show this help

Needs: docker, and Compose v2 ("docker compose") or v1 ("docker-compose").
Required settings: TCPKV_ALLOWED_HOSTS, TCPKV_ALLOWED_CLIENTS, TCPKV_SHUTDOWN_TOKEN.
EOF
}

die() {
  echo "start-server.sh: $*" >&2
  exit 1
}
say() { echo "start-server.sh: $*"; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compose_file="$here/server.compose.yml"
project="${TCPKV_COMPOSE_PROJECT:-tcpkv}"
# the last settings that gave a healthy server, for going back to them (private: it holds the token)
last_good="${TCPKV_LAST_GOOD_SETTINGS:-$here/.env.last-good}"
env_file=""
image=""
build=0
use_imds=0
wait_healthy=1
check_only=0
EXAMPLE_TOKEN="change-me-to-a-long-random-string"

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
    --build) build=1; shift ;;
    --imds) use_imds=1; shift ;;
    --no-wait) wait_healthy=0; shift ;;
    --check) check_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *)
      echo "start-server.sh: unknown argument: $1" >&2
      usage >&2
      exit 2
      ;;
  esac
done
[ "$build" = 0 ] || [ -z "$image" ] || { echo "start-server.sh: --image and --build exclude each other" >&2; exit 2; }

# read_settings FILE: export each KEY=value line exactly as written. Blank lines and lines starting
# with # are skipped; anything else that is not NAME=... is an error naming the line. Nothing is
# evaluated: "127.0.0.1, localhost" stays one value, and a $ in a token stays a $.
read_settings() {
  local file="$1" line name value n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "$file line $n is not NAME=value: $line"
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    export "$name=$value"
  done <"$file"
}

if [ -z "$env_file" ] && [ -f "$here/.env" ]; then env_file="$here/.env"; fi
if [ -n "$env_file" ]; then
  [ -f "$env_file" ] || die "no such settings file: $env_file"
  read_settings "$env_file"
fi
if [ -n "$image" ]; then export TCPKV_SERVER_IMAGE="$image"; fi
# Until a release of the server image exists, no image named means: build it from this checkout.
if [ -z "${TCPKV_SERVER_IMAGE:-}" ]; then build=1; fi
if [ "$build" = 1 ]; then export TCPKV_SERVER_IMAGE="tcpkv/server:local"; fi
wait_seconds="${TCPKV_WAIT_SECONDS:-180}"
[[ "$wait_seconds" =~ ^[1-9][0-9]*$ ]] || die "TCPKV_WAIT_SECONDS must be a positive number of seconds"

metadata_url="${TCPKV_METADATA_URL:-http://169.254.169.254}"
imds_get() {
  local token
  token="$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    "$metadata_url/latest/api/token")" || return 1
  curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "$metadata_url/latest/meta-data/$1"
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

# ---- the settings, checked before anything is touched -----------------------------------------------
for name in TCPKV_ALLOWED_HOSTS TCPKV_ALLOWED_CLIENTS TCPKV_SHUTDOWN_TOKEN; do
  [ -n "${!name:-}" ] || die "$name is not set (put it in the settings file; see infra/remote/.env.example)"
done
case "$TCPKV_SHUTDOWN_TOKEN" in
  "$EXAMPLE_TOKEN" | change-me* | replace-with*)
    die "TCPKV_SHUTDOWN_TOKEN is still the example value; make one with: openssl rand -hex 24" ;;
esac
case ",$TCPKV_ALLOWED_CLIENTS," in
  *",*,"*) die "TCPKV_ALLOWED_CLIENTS cannot be * here (loopback is added for the health check); name the clients, or write 0.0.0.0/0,::/0 to allow anyone" ;;
esac
if [ "$check_only" = 1 ]; then
  say "settings are usable"
  exit 0
fi

# ---- TLS: the files the compose file mounts at /tls ------------------------------------------------
tls_dir="${TCPKV_TLS_DIR:-$here/tls}"
case "$tls_dir" in /*) ;; *) tls_dir="$(pwd)/$tls_dir" ;; esac
export TCPKV_TLS_DIR="$tls_dir"
for file in server.crt server.key ca.crt; do
  [ -s "$tls_dir/$file" ] || die "no $tls_dir/$file: TLS needs the server's certificate and key and the clients' CA (make them with infra/remote/make-certs.sh; deploy-ssh.sh does)"
done
# The server runs as uid 1000 (the image's user "node"): it must be able to read the key, and nobody
# else. As root, hand the directory and its files to that uid (mode 0700/0600 as they were made).
if [ "$(id -u)" = 0 ]; then
  chown 1000:1000 "$tls_dir" "$tls_dir/server.crt" "$tls_dir/server.key" "$tls_dir/ca.crt"
  chmod 0700 "$tls_dir"
  chmod 0600 "$tls_dir/server.key"
fi

command -v docker > /dev/null || die "docker is not installed"
if docker compose version > /dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose > /dev/null; then
  compose=(docker-compose)
else
  die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
fi
main=("${compose[@]}" -p "$project" -f "$compose_file")
trial_project="${project}-trial"
trial=("${compose[@]}" -p "$trial_project" -f "$compose_file")

# ---- the image: built from this checkout, already here (shipped), or pulled -------------------------
if [ "$build" = 1 ]; then
  [ -f "$here/../../Dockerfile.server" ] || die "no image named and no Dockerfile.server to build one from in $(cd "$here/../.." && pwd) (no release has been published yet: build, or ship an image with deploy-ssh.sh --ship)"
  say "building the server image from $(cd "$here/../.." && pwd) (no released image named)"
  "${main[@]}" build server
elif docker image inspect "$TCPKV_SERVER_IMAGE" > /dev/null 2>&1; then
  say "using the server image $TCPKV_SERVER_IMAGE already on this machine"
else
  say "pulling the server image $TCPKV_SERVER_IMAGE"
  "${main[@]}" pull server || die "could not pull $TCPKV_SERVER_IMAGE (no release published under that name? build instead: --build, or ship it: deploy-ssh.sh --ship)"
fi

# health_of CONTAINER: healthy, starting, unhealthy, exited, …
health_of() {
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo gone
}
# wait_healthy CONTAINER: 0 once healthy; 1 when unhealthy, exited or still not healthy after
# TCPKV_WAIT_SECONDS.
wait_healthy() {
  local status=""
  for _ in $(seq $(((wait_seconds + 1) / 2))); do
    status="$(health_of "$1")"
    case "$status" in
      healthy) return 0 ;;
      unhealthy | exited | dead | gone) break ;;
    esac
    sleep 2
  done
  echo "start-server.sh: the server is $status, not healthy after at most $wait_seconds s; its last log lines (on a VM set up by Terraform, the whole bootstrap: /var/log/tcpkv-bootstrap.log):" >&2
  docker logs --tail 30 "$1" >&2 2>&1 || true
  return 1
}

# ---- 1. a trial: the new settings in a separate container, no published port, its own empty volume --
trial_name="${trial_project}-server"
cleanup_trial() { docker rm -f "$trial_name" > /dev/null 2>&1 || true; "${trial[@]}" down --volumes --remove-orphans > /dev/null 2>&1 || true; }
cleanup_trial
trap cleanup_trial EXIT
say "trying the new settings in a trial container first"
"${trial[@]}" run -d --name "$trial_name" server > /dev/null || die "the trial container could not be created; the running server (if any) is unchanged"
if ! wait_healthy "$trial_name"; then
  die "these settings do not give a healthy server (see above); the running server (if any) is unchanged"
fi
cleanup_trial
trap - EXIT

# ---- 2. the host ports: free, or held by this project's own server --------------------------------
publish="${TCPKV_PUBLISH:-127.0.0.1:10000}"
tls_publish="${TCPKV_TLS_PUBLISH:-10443}"
current="$("${main[@]}" ps -q server 2> /dev/null || true)"
for host_port in "${publish##*:}" "${tls_publish##*:}"; do
  [ -n "$host_port" ] || continue
  holder="$(docker ps -q --filter "publish=$host_port" | head -n 1)"
  if [ -n "$holder" ] && { [ -z "$current" ] || [ "${current:0:12}" != "${holder:0:12}" ]; }; then
    die "port $host_port is already published by container $holder; the running server (if any) is unchanged"
  fi
  if [ -z "$holder" ] && (exec 3<> "/dev/tcp/127.0.0.1/$host_port") 2> /dev/null; then
    die "port $host_port is in use by another program on this machine; the running server (if any) is unchanged"
  fi
done

# ---- 3. replace, and go back to the last good settings if the new server still fails ------------------
# Every setting is in the environment, which takes precedence over anything compose reads itself.
say "starting the server"
up_ok=1
"${main[@]}" up -d --no-build server || up_ok=0
container="$("${main[@]}" ps -q server)"
if [ "$up_ok" = 1 ] && [ -n "$container" ]; then
  if [ "$wait_healthy" = 0 ]; then
    say "started (not waiting for the health check)"
    exit 0
  fi
  if wait_healthy "$container"; then
    (umask 077 && env | grep -E '^(TCPKV_|NODE_IMAGE=|RUNTIME_IMAGE=)' > "$last_good") || true
    say "allowed hosts: $TCPKV_ALLOWED_HOSTS"
    say "allowed clients: $TCPKV_ALLOWED_CLIENTS (and loopback, for the health check)"
    say "tcpkv is up (healthy): TLS on port $tls_publish (client certificates required), plain HTTP on $publish"
    exit 0
  fi
fi
if [ -f "$last_good" ]; then
  echo "start-server.sh: the new server did not become healthy; starting it again with the last settings that worked ($last_good)" >&2
  (
    while IFS= read -r name; do unset "${name%%=*}"; done < <(env | grep -E '^TCPKV_' || true)
    read_settings "$last_good"
    "${main[@]}" up -d --no-build server && wait_healthy "$("${main[@]}" ps -q server)"
  ) || echo "start-server.sh: the last good settings did not come back healthy either" >&2
fi
die "the server did not become healthy with the new settings (logs above)"
