#!/usr/bin/env bash
# The same AWS IoT workloads on SQLite, on PostgreSQL with one node and with two nodes (the load
# spread over both), plus the Alibaba CAS order workloads; prints a markdown table.
#
#   bash bench/engines.sh
#
# Environment: BENCH_CONCURRENCY (default 32), BENCH_DURATION (seconds per workload, default 5),
# CERTPLANE_TEST_POSTGRES (admin URL, default postgres://postgres@127.0.0.1:5432/test; the script
# creates and drops its own databases).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
DURATION="${BENCH_DURATION:-5}"
PG_ADMIN="${CERTPLANE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-engines.XXXXXX")"
# start_node and new_db run in $(…) subshells: they record what to clean up in files.
PIDFILE="$WORK/pids"
DBFILE="$WORK/dbs"
: >"$PIDFILE"; : >"$DBFILE"
log() { echo "[bench] $*" >&2; }
stop_nodes() {
    while read -r p; do
        kill "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done <"$PIDFILE"
    : >"$PIDFILE"
}
cleanup() {
    stop_nodes
    while read -r d; do
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
    done <"$DBFILE"
    rm -rf "$WORK"
}
trap cleanup EXIT

log "building (release): certplane, certplane-bench"
cargo build --release -p certplane -p certplane-bench >&2
CP="$ROOT/target/release/certplane"
BENCH="$ROOT/target/release/certplane-bench"

# start_node NAME [serve args...] -> prints the URL
start_node() {
    local name=$1; shift
    "$CP" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --dev "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    echo $! >>"$PIDFILE"
    for _ in $(seq 1 300); do
        if grep -q "listening on" "$WORK/$name.out" 2>/dev/null; then
            sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/$name.out" | head -1
            return 0
        fi
        sleep 0.1
    done
    log "$name did not start"; cat "$WORK/$name.log" >&2; return 1
}
new_db() {
    local name="certplane_bench_$$_$1"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $name" >/dev/null
    echo "$name" >>"$DBFILE"
    echo "${PG_ADMIN%/*}/$name"
}
run() { # LABEL TARGETS WORKLOADS [extra bench args]
    local label=$1 targets=$2 workloads=$3; shift 3
    log "benchmarking $label ($workloads)"
    "$BENCH" --target "$targets" --label "$label" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --workloads "$workloads" "$@" | tee -a "$WORK/results.out" >&2
}

AWS=describe,update,transfer
url=$(start_node sqlite); run sqlite "$url" "$AWS"; stop_nodes
db=$(new_db one); url=$(start_node pg1 --database-url "$db"); run postgres-1-node "$url" "$AWS"; stop_nodes
db=$(new_db two)
u1=$(start_node pg2a --database-url "$db"); u2=$(start_node pg2b --database-url "$db")
run postgres-2-nodes "$u1,$u2" "$AWS"; stop_nodes

# Alibaba CAS orders (SQLite, always-valid validation, a CSR so no server-side RSA keygen).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/k.pem" \
    -subj /CN=bench.example.com -out "$WORK/bench.csr" 2>/dev/null
"$CP" admin cas package add --account 1234567890123456 --product-code digicert-free-1-free \
    --count 100000000 --data-dir "$WORK/cas" >/dev/null
url=$(start_node cas --validation always-valid)
run cas-sqlite "$url" order,order-describe --csr-file "$WORK/bench.csr"; stop_nodes

echo
echo "Machine: $(nproc) CPUs, $(uname -m), $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(uname -sr)"
echo "Settings: concurrency $CONCURRENCY, $DURATION s per workload; load generator on the same machine"
echo
python3 - "$WORK/results.out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| target | workload | rps | p50 | p99 | errors |")
print("|---|---|---:|---:|---:|---:|")
for r in rows:
    if r.get("status") != "ok":
        print(f"| {r['label']} | {r['workload']} | {r.get('status')} | – | – | – |")
        continue
    print(f"| {r['label']} | {r['workload']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['errors']} |")
PY
