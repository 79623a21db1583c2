#!/usr/bin/env bash
# The same AWS IoT workloads on SQLite, on PostgreSQL with one node and with two nodes (the load
# spread over both), plus the Alibaba CAS order workloads; prints a markdown table with each
# run's CPU per operation split into node(s), PostgreSQL and the load generator.
#
#   bash bench/engines.sh
#
# Scale-out on one machine: nodes, PostgreSQL and the load generator share the same cores, so
# uncapped, a second node only splits the same CPU. The script therefore also runs the one- and
# two-node PostgreSQL read workload with each node in its own CPU cgroup capped at
# BENCH_NODE_CPUS cores (default 0.5), standing in for nodes on machines of their own; it needs
# root and a writable cgroup cpu controller (v1 or v2), and says SKIPPED otherwise.
#
# Environment: BENCH_CONCURRENCY (default 32), BENCH_DURATION (seconds per workload, default 5),
# BENCH_NODE_CPUS (default 0.5; 0 turns the capped runs off), CERTPLANE_TEST_POSTGRES (admin URL,
# default postgres://postgres@127.0.0.1:5432/test; the script creates and drops its own
# databases).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
DURATION="${BENCH_DURATION:-5}"
NODE_CPUS="${BENCH_NODE_CPUS:-0.5}"
PG_ADMIN="${CERTPLANE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-engines.XXXXXX")"
# start_node and new_db run in $(…) subshells: they record what to clean up in files.
PIDFILE="$WORK/pids"
DBFILE="$WORK/dbs"
: >"$PIDFILE"; : >"$DBFILE"
log() { echo "[bench] $*" >&2; }
CGFILE="$WORK/cgroups"
: >"$CGFILE"
stop_nodes() {
    while read -r p; do
        kill "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done <"$PIDFILE"
    : >"$PIDFILE"
    while read -r cg; do rmdir "$cg" 2>/dev/null || true; done <"$CGFILE"
    : >"$CGFILE"
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
CP="${CARGO_TARGET_DIR:-$ROOT/target}/release/certplane"
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/certplane-bench"

# A CPU cgroup capped at NODE_CPUS cores (10 ms period, so throttling stays short): prints the
# file to write a pid into, or nothing when cgroups cannot be used here.
CG_PERIOD=10000
make_cpu_cgroup() {
    local name="certplane-bench-$$-$1" quota
    quota=$(python3 -c "print(int(float('$NODE_CPUS') * $CG_PERIOD))")
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then # v2
        grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null \
            || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || return 0
        mkdir "/sys/fs/cgroup/$name" 2>/dev/null || return 0
        echo "/sys/fs/cgroup/$name" >>"$CGFILE"
        echo "$quota $CG_PERIOD" >"/sys/fs/cgroup/$name/cpu.max" 2>/dev/null || return 0
        echo "/sys/fs/cgroup/$name/cgroup.procs"
    elif [[ -d /sys/fs/cgroup/cpu ]]; then # v1
        mkdir "/sys/fs/cgroup/cpu/$name" 2>/dev/null || return 0
        echo "/sys/fs/cgroup/cpu/$name" >>"$CGFILE"
        echo "$CG_PERIOD" >"/sys/fs/cgroup/cpu/$name/cpu.cfs_period_us" 2>/dev/null || return 0
        echo "$quota" >"/sys/fs/cgroup/cpu/$name/cpu.cfs_quota_us" 2>/dev/null || return 0
        echo "/sys/fs/cgroup/cpu/$name/cgroup.procs"
    fi
}

# start_node NAME [serve args...] -> prints the URL. With CAP_FILE set, the node starts inside
# that cgroup (it joins before exec, so every thread it makes is capped).
start_node() {
    local name=$1; shift
    if [[ -n "${CAP_FILE:-}" ]]; then
        sh -c 'echo $$ >"$0" && exec "$@"' "$CAP_FILE" \
            "$CP" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --dev "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    else
        "$CP" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --dev "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    fi
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
run() { # LABEL TARGETS WORKLOADS [extra bench args]; CPU of the running nodes and PostgreSQL
    local label=$1 targets=$2 workloads=$3; shift 3
    local pids
    pids=$(paste -sd, "$PIDFILE")
    log "benchmarking $label ($workloads)"
    "$BENCH" --target "$targets" --label "$label" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --workloads "$workloads" --cpu "node=$pids" \
        --cpu postgres=comm:postgres "$@" | tee -a "$WORK/results.out" >&2
}

AWS=describe,update,transfer
url=$(start_node sqlite); run sqlite "$url" "$AWS"; stop_nodes
db=$(new_db one); url=$(start_node pg1 --database-url "$db"); run postgres-1-node "$url" "$AWS"; stop_nodes
db=$(new_db two)
u1=$(start_node pg2a --database-url "$db"); u2=$(start_node pg2b --database-url "$db")
run postgres-2-nodes "$u1,$u2" "$AWS"; stop_nodes

# The read workload with each node capped, as if each had a machine of its own.
CAPPED=""
if [[ "$NODE_CPUS" != "0" ]]; then
    c1=$(make_cpu_cgroup a); c2=$(make_cpu_cgroup b)
    if [[ -n "$c1" && -n "$c2" ]]; then
        CAPPED="$NODE_CPUS"
        db=$(new_db capone); url=$(CAP_FILE=$c1 start_node cap1 --database-url "$db")
        run "postgres-1-node-${NODE_CPUS}cpu" "$url" describe; stop_nodes
        c1=$(make_cpu_cgroup a); c2=$(make_cpu_cgroup b)
        db=$(new_db captwo)
        u1=$(CAP_FILE=$c1 start_node cap2a --database-url "$db")
        u2=$(CAP_FILE=$c2 start_node cap2b --database-url "$db")
        run "postgres-2-nodes-${NODE_CPUS}cpu-each" "$u1,$u2" describe; stop_nodes
    else
        log "SKIPPED: capped-node runs (no writable cgroup cpu controller; run as root)"
        stop_nodes
    fi
fi

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
echo "CPU columns: microseconds of CPU per operation (and cores kept busy) during the timed loop"
echo
python3 - "$WORK/results.out" "$CAPPED" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
capped = sys.argv[2]
def cpu(r, name):
    c = r.get("cpu", {}).get(name)
    return f"{c['us_per_op']:,.0f} µs ({c['cores']:.2f})" if c and c["cores"] > 0.005 else "–"
print("| target | workload | rps | p50 | p99 | errors | node CPU/op | PostgreSQL CPU/op | load gen CPU/op |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if r.get("status") != "ok":
        print(f"| {r['label']} | {r['workload']} | {r.get('status')} | – | – | – | – | – | – |")
        continue
    print(f"| {r['label']} | {r['workload']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['errors']} "
          f"| {cpu(r, 'node')} | {cpu(r, 'postgres')} | {cpu(r, 'client')} |")
def rps(label, workload="describe"):
    for r in rows:
        if r["label"] == label and r["workload"] == workload and r.get("status") == "ok":
            return r["rps"]
print()
one, two = rps("postgres-1-node"), rps("postgres-2-nodes")
if one and two:
    print(f"Two nodes / one node, describe, uncapped (all on the same cores): {two / one:.2f}x")
if capped:
    one, two = rps(f"postgres-1-node-{capped}cpu"), rps(f"postgres-2-nodes-{capped}cpu-each")
    if one and two:
        print(f"Two nodes / one node, describe, each node capped at {capped} CPU: {two / one:.2f}x")
PY
