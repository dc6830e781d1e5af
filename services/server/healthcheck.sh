#!/bin/sh
# The server image's health check (installed as /usr/local/bin/tcpkv-healthcheck): exit 0 when the
# admin port's /readyz answers 200, else 1. It starts no runtime, so a check costs milliseconds:
# busybox wget where the image has it (the offline base image), otherwise bash's /dev/tcp (the
# official Debian-based node image has bash but neither wget nor curl). The admin port must listen
# on loopback or 0.0.0.0 (the image's TCPKV_ADMIN_BIND). With the admin port turned off
# (TCPKV_ADMIN_PORT empty) it falls back to the client's HEAD against the data port, which starts
# Node and reads the listing: correct, but far dearer.
port="${TCPKV_ADMIN_PORT:-}"
if [ -z "$port" ]; then
  host="${TCPKV_ALLOWED_HOSTS:-127.0.0.1}"
  host="${host%%,*}"
  [ "$host" != "*" ] || host=127.0.0.1
  exec node /app/dist/services/client/cli.js head --server "127.0.0.1:${TCPKV_PORT:-10000}" --target-host "$host" --timeout 3000
fi
if command -v wget >/dev/null 2>&1; then
  # no -T: Debian's static busybox 1.35 wget crashes with it; Docker's health check timeout bounds it
  exec wget -q -O /dev/null "http://127.0.0.1:$port/readyz"
fi
# shellcheck disable=SC2016 # $1 and $line belong to the bash script, not to this one
exec bash -c '
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf "GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
  IFS= read -r -t 3 line <&3 || exit 1
  case "$line" in "HTTP/1."?" 200 "*) exit 0 ;; esac
  exit 1' tcpkv-healthcheck "$port"
