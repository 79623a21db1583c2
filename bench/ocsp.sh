#!/usr/bin/env bash
# OCSP throughput: certplane's POST /ocsp beside `openssl ocsp -index ... -port` (OpenSSL's own
# responder, single-process and -multi 2) and nginx (2 workers) serving certplane's own answer
# as a static file, driven by ApacheBench (`ab`, Debian package apache2-utils) on loopback,
# with one new connection per request (as OCSP clients do) and with keep-alive.
#
#   bash bench/ocsp.sh            # BENCH_N=20000 BENCH_C=8 by default
#
# Everything runs on this machine: the load generator and the responder share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${BENCH_N:-20000}"
C="${BENCH_C:-8}"
command -v ab >/dev/null || { echo "ab not found (apt-get install apache2-utils)" >&2; exit 1; }
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx_bin" ] || { echo "nginx not found (apt-get install nginx-light or nginx)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
if [ -z "${CERTPLANE_BIN:-}" ]; then
    cargo build --release -p certplane
    CERTPLANE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/certplane"
fi
work="$(mktemp -d)"
pids=()
# `openssl ocsp -multi` forks workers that outlive their parent (and spin): kill children too.
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    pkill -f "$work/index.txt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# --- certplane: one certificate from CreateKeysAndCertificate (dev mode, unchecked SigV4)
port=$(free_port)
"$CERTPLANE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --dev >"$work/certplane.log" 2>&1 &
pids+=($!); cp_pid=$!
wait_http "http://127.0.0.1:$port/healthz"
amz_date=$(date -u +%Y%m%dT%H%M%SZ)
curl -s -X POST "http://127.0.0.1:$port/keys-and-certificate?setAsActive=true" \
    -H "X-Amz-Date: $amz_date" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=111122223333/${amz_date%%T*}/us-east-1/iot/aws4_request, SignedHeaders=host;x-amz-date, Signature=$(printf '0%.0s' $(seq 1 64))" \
    | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["certificatePem"])' >"$work/leaf.pem"
openssl ocsp -issuer "$work/data/ca.pem" -cert "$work/leaf.pem" -no_nonce -reqout "$work/req.der" >/dev/null
openssl ocsp -issuer "$work/data/ca.pem" -cert "$work/leaf.pem" -url "http://127.0.0.1:$port/ocsp" \
    -CAfile "$work/data/ca.pem" | grep -q "leaf.pem: good"

# --- OpenSSL's responder: its own P-256 CA, one certificate in index.txt
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/oca.key" \
    -out "$work/oca.pem" -subj "/CN=bench CA" -days 30 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/oleaf.key" \
    -out "$work/oleaf.csr" -subj "/CN=bench leaf" 2>/dev/null
openssl x509 -req -in "$work/oleaf.csr" -CA "$work/oca.pem" -CAkey "$work/oca.key" \
    -set_serial 0x4242 -days 30 -out "$work/oleaf.pem" 2>/dev/null
printf 'V\t%s\t\t4242\tunknown\t/CN=bench leaf\n' "$(date -u -d '+30 days' +%y%m%d%H%M%SZ)" >"$work/index.txt"
oport=$(free_port)
openssl ocsp -index "$work/index.txt" -port "$oport" -rsigner "$work/oca.pem" \
    -rkey "$work/oca.key" -CA "$work/oca.pem" -nmin 60 -multi "${OPENSSL_MULTI:-2}" \
    >"$work/openssl-ocsp.log" 2>&1 &
pids+=($!); om_pid=$!
# The same responder as one process (its default), as the issue's anchor measured it.
sport=$(free_port)
openssl ocsp -index "$work/index.txt" -port "$sport" -rsigner "$work/oca.pem" \
    -rkey "$work/oca.key" -CA "$work/oca.pem" -nmin 60 >"$work/openssl-ocsp1.log" 2>&1 &
pids+=($!); o1_pid=$!
sleep 1
openssl ocsp -issuer "$work/oca.pem" -cert "$work/oleaf.pem" -no_nonce -reqout "$work/oreq.der" >/dev/null
openssl ocsp -issuer "$work/oca.pem" -cert "$work/oleaf.pem" -url "http://127.0.0.1:$oport/" \
    -CAfile "$work/oca.pem" | grep -q "oleaf.pem: good"

# --- nginx: the same answer certplane gives (fetched once) as a static file, 2 workers
mkdir -p "$work/www"
curl -s --data-binary @"$work/req.der" -H 'Content-Type: application/ocsp-request' \
    "http://127.0.0.1:$port/ocsp" -o "$work/www/resp.der"
# nginx's workers run as an unprivileged user: let them read the answer.
chmod 755 "$work" "$work/www"; chmod 644 "$work/www/resp.der"
nport=$(free_port)
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx-body;
    proxy_temp_path $work/nginx-proxy;
    fastcgi_temp_path $work/nginx-fastcgi;
    uwsgi_temp_path $work/nginx-uwsgi;
    scgi_temp_path $work/nginx-scgi;
    server {
        listen 127.0.0.1:$nport;
        root $work/www;
        location / { default_type application/ocsp-response; }
    }
}
NGINX
"$nginx_bin" -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!); ng_pid=$!
wait_http "http://127.0.0.1:$nport/resp.der"

# CPU clock ticks (user + system) of a process and its children (openssl -multi's and nginx's
# workers), from /proc.
ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

run() { # pid name url body|- [extra ab args]: body "-" is a GET
    local pid=$1 name=$2 url=$3 body=$4; shift 4
    local post=()
    [ "$body" = - ] || post=(-p "$body" -T application/ocsp-request)
    echo "== $name: ab -c $C -n $N $* ${post[*]:+-p <request> -T application/ocsp-request} $url"
    local before after
    before=$(ticks "$pid")
    ab -q -c "$C" -n "$N" "$@" "${post[@]}" "$url" 2>&1 \
        | grep -E "Document Length|Complete requests|Failed requests|Non-2xx|Requests per second|Time per request.*\(mean\)$|^ +(50|99)%"
    after=$(ticks "$pid")
    # The responder's own CPU per answer: what it would take with the client elsewhere.
    python3 -c "print(f'Server CPU per answer: {($after - $before) / $hz / $N * 1e6:.1f} us')"
}

run "$cp_pid" "certplane (new connection per request)" "http://127.0.0.1:$port/ocsp" "$work/req.der"
run "$cp_pid" "certplane (keep-alive)" "http://127.0.0.1:$port/ocsp" "$work/req.der" -k
run "$o1_pid" "openssl ocsp, one process (new connection per request)" "http://127.0.0.1:$sport/" "$work/oreq.der"
run "$om_pid" "openssl ocsp -multi ${OPENSSL_MULTI:-2} (new connection per request)" "http://127.0.0.1:$oport/" "$work/oreq.der"
run "$ng_pid" "nginx, 2 workers, static answer (new connection per request)" "http://127.0.0.1:$nport/resp.der" -
run "$ng_pid" "nginx, 2 workers, static answer (keep-alive)" "http://127.0.0.1:$nport/resp.der" - -k
# After the load: still a verified, good answer (not an error status served fast).
openssl ocsp -issuer "$work/data/ca.pem" -cert "$work/leaf.pem" -url "http://127.0.0.1:$port/ocsp" \
    -CAfile "$work/data/ca.pem" | grep "leaf.pem: good" >/dev/null && echo "certplane: still good after the load"
