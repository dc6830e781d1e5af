#!/usr/bin/env bash
# A private certificate authority for one tcpkv server and its clients, made with openssl on YOUR
# machine (deploy-ssh.sh runs it; fine to run by hand):
#
#   DIR/ca.crt      the CA certificate: the server checks client certificates against it, the client
#                   checks the server's certificate against it
#   DIR/ca.key      the CA's private key: it never leaves DIR (keep DIR, or delete ca.key once you
#                   have every client certificate you want; a new one then means a new CA)
#   DIR/server.crt  the server's certificate for the names given (IP addresses and/or DNS names)
#   DIR/server.key  its private key (copied to the VM, nowhere else)
#   DIR/client.crt  a client certificate ("home") for the client compose file / --cert-file
#   DIR/client.key  its private key (stays on your machine)
#
# DIR is made 0700 and every file in it 0600. Existing files are kept: the CA and the client
# certificate are made once; the server certificate is issued again only when the names change.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/remote/make-certs.sh [--days N] [--client-name NAME] DIR NAME...

Makes (or keeps) a private CA in DIR, a server certificate for every NAME (an IP address or a DNS
name of the server, e.g. 203.0.113.10 ec2-203-0-113-10.compute-1.amazonaws.com) and a client
certificate. Files are 0600 in a 0700 directory. Needs openssl.

  --days N            validity of new certificates in days (default 825)
  --client-name NAME  the client certificate's common name (default: home)
EOF
}

die() {
  echo "make-certs.sh: $*" >&2
  exit 1
}

days=825
client_name=home
while [ "$#" -gt 0 ]; do
  case "$1" in
    --days) [ "$#" -ge 2 ] || die "--days needs a value"; days="$2"; shift 2 ;;
    --client-name) [ "$#" -ge 2 ] || die "--client-name needs a value"; client_name="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) break ;;
  esac
done
[ "$#" -ge 2 ] || { usage >&2; exit 2; }
dir="$1"
shift
[[ "$days" =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive number"
command -v openssl > /dev/null || die "openssl is not installed"

# subjectAltName from the names: IP:… for addresses, DNS:… for the rest; each name once.
san=""
declare -A seen=()
for name in "$@"; do
  name="${name// /}"
  [ -n "$name" ] || continue
  [ -z "${seen[$name]:-}" ] || continue
  seen[$name]=1
  [[ "$name" =~ ^[A-Za-z0-9.:_-]+$ ]] || die "not a host name or address: $name"
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="${san:+$san,}IP:$name"; else san="${san:+$san,}DNS:$name"; fi
done
[ -n "$san" ] || die "no server name given"

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"

if [ ! -f ca.key ] || [ ! -f ca.crt ]; then
  echo "make-certs.sh: a new private CA in $dir"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -subj "/CN=tcpkv private CA" -keyout ca.key -out ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2> /dev/null
fi

# issue NAME CN EXTENSIONS: NAME.key (made once) and NAME.crt signed by the CA.
issue() {
  local name="$1" cn="$2" ext="$3"
  [ -f "$name.key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key" 2> /dev/null
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2> /dev/null
  printf '%s\n' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2> /dev/null
  rm -f "$name.csr" "$name.ext"
}

# The names the current server certificate holds, in the same form as $san.
current_san=""
if [ -f server.crt ]; then
  current_san="$(openssl x509 -in server.crt -noout -ext subjectAltName 2> /dev/null | tail -n +2 | tr -d ' ' | sed 's/IPAddress:/IP:/g')"
fi
if [ ! -f server.crt ] || [ "$current_san" != "$san" ] || ! openssl verify -CAfile ca.crt server.crt > /dev/null 2>&1; then
  echo "make-certs.sh: server certificate for $san"
  issue server "$1" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
fi
if [ ! -f client.crt ] || ! openssl verify -CAfile ca.crt client.crt > /dev/null 2>&1; then
  echo "make-certs.sh: client certificate \"$client_name\""
  issue client "$client_name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
fi
chmod 0600 ./*
