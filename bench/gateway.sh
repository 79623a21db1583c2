#!/usr/bin/env bash
# Benchmark the device gateway beside `openssl s_server -Verify 1` in the same run:
#   1. full mTLS handshakes/s (P-256 client certificate, registry check on) under the same
#      `openssl s_time -new` load, TLS 1.2 and TLS 1.3, the same P-256 server key for both;
#   2. inactivate-to-disconnect latency: a device holds a session, UpdateCertificate INACTIVE
#      through the AWS dialect, time until the gateway has closed the session (p50/p99);
#   3. memory per idle device connection with BENCH_IDLE (default 10,000) sessions held.
#
#   bash bench/gateway.sh
#
# Environment:
#   BENCH_DURATION      seconds per handshake run (default 10)
#   BENCH_CLIENTS       parallel `openssl s_time` processes (default 2, one per core)
#   BENCH_SAMPLES       inactivate-to-disconnect samples (default 200)
#   BENCH_IDLE          idle sessions held for the memory figure (default 10000)
#   BENCH_DATABASE_URL  a PostgreSQL database to run on instead of SQLite (it must be empty)
#   PYTHON              a Python with boto3 (default: the SDK suites' venv)
#   CARGO_TARGET_DIR    where the release binary is built (default ./target)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${BENCH_DURATION:-10}"
CLIENTS="${BENCH_CLIENTS:-2}"
SAMPLES="${BENCH_SAMPLES:-200}"
IDLE="${BENCH_IDLE:-10000}"
PYTHON="${PYTHON:-$HOME/.cache/certplane/venv/bin/python}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-gateway-bench.XXXXXX")"
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n "${BENCH_KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[bench] $*" >&2; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    exit 1
}

# Every held session costs the gateway two descriptors (device and broker side): raise the soft
# limit as far as the hard one allows and hold no more sessions than fit under it.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_CAP=$(( ($(ulimit -n) - 200) / 2 ))
if (( IDLE > FD_CAP )); then
    log "the descriptor limit ($(ulimit -n)) allows $FD_CAP held sessions, not $IDLE: holding $FD_CAP"
    IDLE=$FD_CAP
fi

log "building (release): certplane"
cargo build --release -p certplane
CERTPLANE="$TARGET_DIR/release/certplane"

log "keys and certificates (P-256)"
cd "$WORK"
ossl() { openssl "$@" 2>/dev/null; }
ossl ecparam -name prime256v1 -genkey -noout -out ca.key
ossl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=bench device CA" -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
ossl ecparam -name prime256v1 -genkey -noout -out device.key
ossl req -new -key device.key -subj "/CN=bench-device" -out device.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > device.ext
ossl x509 -req -in device.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -sha256 \
    -extfile device.ext -out device.pem
ossl ecparam -name prime256v1 -genkey -noout -out server.key
ossl req -x509 -new -key server.key -sha256 -days 30 -subj "/CN=localhost" -out server.pem \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
cd "$ROOT"

BROKER_PORT="$(free_port)"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n' "$BROKER_PORT" > "$WORK/mosquitto.conf"
"$MOSQUITTO" -c "$WORK/mosquitto.conf" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$BROKER_PORT"

API_PORT="$(free_port)"
GW_PORT="$(free_port)"
DB_ARGS=()
[[ -n "${BENCH_DATABASE_URL:-}" ]] && DB_ARGS=(--database-url "$BENCH_DATABASE_URL")
RUST_LOG="${RUST_LOG:-warn}" "$CERTPLANE" serve --dev --listen "127.0.0.1:$API_PORT" --data-dir "$WORK/data" \
    "${DB_ARGS[@]}" --gateway "127.0.0.1:$GW_PORT" --gateway-upstream "127.0.0.1:$BROKER_PORT" \
    --gateway-tenant aws:111111111111:us-east-1 \
    --gateway-cert "$WORK/server.pem" --gateway-key "$WORK/server.key" > "$WORK/server.log" 2>&1 &
CERTPLANE_PID=$!
PIDS+=($CERTPLANE_PID)
wait_port "$API_PORT"
wait_port "$GW_PORT"

log "registering the device CA and the device (AWS dialect, boto3)"
"$PYTHON" "$ROOT/bench/gateway_probe.py" setup --api "http://127.0.0.1:$API_PORT" --work "$WORK"

OSSL_PORT="$(free_port)"
openssl s_server -quiet -accept "$OSSL_PORT" -Verify 1 -CAfile "$WORK/ca.pem" \
    -cert "$WORK/server.pem" -key "$WORK/server.key" -naccept 100000000 >/dev/null 2>&1 </dev/null &
PIDS+=($!)
wait_port "$OSSL_PORT"

# Handshakes/s of CLIENTS parallel s_time processes against one port.
handshakes() {
    local port="$1" proto="$2" out=() total=0
    for i in $(seq 1 "$CLIENTS"); do
        openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" "$proto" \
            -cert "$WORK/device.pem" -key "$WORK/device.key" -CAfile "$WORK/server.pem" \
            > "$WORK/stime.$i" 2>&1 &
        out+=($!)
    done
    for p in "${out[@]}"; do wait "$p" || true; done
    for i in $(seq 1 "$CLIENTS"); do
        # "N connections in T real seconds, ..."
        local n t
        read -r n t < <(awk '/connections in [0-9.]+ real seconds/ {print $1, $4}' "$WORK/stime.$i")
        [[ -n "${n:-}" ]] || { cat "$WORK/stime.$i" >&2; echo "s_time failed" >&2; exit 1; }
        total="$(awk -v a="$total" -v n="$n" -v t="$t" 'BEGIN {printf "%.1f", a + n / t}')"
    done
    echo "$total"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(openssl version | cut -d' ' -f1-2)"
echo "handshakes/s ($CLIENTS x openssl s_time -new, ${DURATION}s each, P-256 client and server keys)"
printf '%-8s %14s %18s %7s\n' proto certplane "openssl s_server" ratio
for proto in -tls1_2 -tls1_3; do
    gw="$(handshakes "$GW_PORT" "$proto")"
    os="$(handshakes "$OSSL_PORT" "$proto")"
    printf '%-8s %14s %18s %6.2fx\n' "${proto#-}" "$gw" "$os" "$(awk -v a="$gw" -v b="$os" 'BEGIN {print a / b}')"
done

"$PYTHON" "$ROOT/bench/gateway_probe.py" latency --api "http://127.0.0.1:$API_PORT" --work "$WORK" \
    --gateway "$GW_PORT" --samples "$SAMPLES"
"$PYTHON" "$ROOT/bench/gateway_probe.py" idle --api "http://127.0.0.1:$API_PORT" --work "$WORK" \
    --gateway "$GW_PORT" --count "$IDLE" --pid "$CERTPLANE_PID"
