#!/usr/bin/env bash
# Durable writes on PostgreSQL: the update (UpdateCertificate) and transfer round-trip
# workloads against one node, and against two nodes on one database, each run on a fresh
# database. With BASELINE=PATH (another certplane binary, e.g. one built from an older commit)
# every run is made with that binary too, right after, so the two stand side by side in one run.
#
#   bash bench/pg_writes.sh
#   BASELINE=/tmp/certplane-before bash bench/pg_writes.sh
#
# Environment: BENCH_CONCURRENCY (32), BENCH_DURATION (seconds per workload, 5), ROUNDS (2),
# CERTPLANE_TEST_POSTGRES (admin URL, default postgres://postgres@127.0.0.1:5432/test; the
# script creates and drops its own databases).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${ROUNDS:-2}"
PG_ADMIN="${CERTPLANE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-pgw.XXXXXX")"
PIDS=()
DBS=()
log() { echo "[bench] $*" >&2; }
stop_nodes() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_nodes
    for d in "${DBS[@]}"; do psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

log "building (release): certplane, certplane-bench"
cargo build --release -p certplane -p certplane-bench >&2
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CP="$TARGET_DIR/release/certplane"
BENCH="$TARGET_DIR/release/certplane-bench"

start_node() { # BIN DB_URL NAME -> prints the URL; the pid is left in $WORK/NAME.pid
    local bin=$1 db=$2 dir="$WORK/$3"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" --dev --database-url "$db" >"$dir.out" 2>"$dir.log" &
    echo $! >"$dir.pid"
    for _ in $(seq 1 300); do
        if grep -q "listening on" "$dir.out" 2>/dev/null; then
            sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$dir.out" | head -1
            return 0
        fi
        sleep 0.1
    done
    log "node did not start"; cat "$dir.log" >&2; return 1
}
new_db() {
    local name="certplane_pgw_$$_$1"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $name" >/dev/null
    DBS+=("$name")
    echo "${PG_ADMIN%/*}/$name"
}
run() { # LABEL BIN NODES
    local label=$1 bin=$2 nodes=$3 db urls="" u
    db=$(new_db "${label//-/_}_$RANDOM")
    for i in $(seq 1 "$nodes"); do
        u=$(start_node "$bin" "$db" "$label-$i-$RANDOM")
        PIDS+=("$(cat "$(ls -t "$WORK"/*.pid | head -1)")")
        urls="${urls:+$urls,}$u"
    done
    log "benchmarking $label ($nodes node(s))"
    "$BENCH" --target "$urls" --label "$label" --concurrency "$CONCURRENCY" --duration "$DURATION" \
        --workloads update,transfer --cpu "node=$(IFS=,; echo "${PIDS[*]}")" \
        --cpu postgres=comm:postgres | grep '^{' | tee -a "$WORK/results.out" >&2
    stop_nodes
}

for _ in $(seq 1 "$ROUNDS"); do
    for nodes in 1 2; do
        run "current-${nodes}n" "$CP" "$nodes"
        [[ -n "${BASELINE:-}" ]] && run "baseline-${nodes}n" "$BASELINE" "$nodes"
    done
done

echo
echo "Machine: $(nproc) CPUs, $(uname -m), $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(uname -sr)"
echo "Settings: concurrency $CONCURRENCY, $DURATION s per workload, $ROUNDS rounds; medians over rounds"
python3 - "$WORK/results.out" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for l in open(sys.argv[1]):
    r = json.loads(l)
    runs[(r["label"], r["workload"])].append(r)
def med(rs, f):
    return statistics.median(f(r) for r in rs)
def cpu(r, name):
    c = r.get("cpu", {}).get(name)
    return c["us_per_op"] if c else float("nan")
print("| binary, nodes | workload | rps (median) | p50 | p99 | errors | node CPU/op | PostgreSQL CPU/op |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (label, wl), rs in sorted(runs.items()):
    print(f"| {label} | {wl} | {med(rs, lambda r: r['rps']):,.0f} | {med(rs, lambda r: r['p50_ms']):.2f} ms "
          f"| {med(rs, lambda r: r['p99_ms']):.2f} ms | {sum(r['errors'] for r in rs)} "
          f"| {med(rs, lambda r: cpu(r, 'node')):,.0f} µs | {med(rs, lambda r: cpu(r, 'postgres')):,.0f} µs |")
print()
for nodes in ("1n", "2n"):
    for wl in ("update", "transfer"):
        a, b = runs.get((f"current-{nodes}", wl)), runs.get((f"baseline-{nodes}", wl))
        if a and b:
            print(f"{wl}, {nodes[0]} node(s): current / baseline = {med(a, lambda r: r['rps']) / med(b, lambda r: r['rps']):.2f}x")
PY
