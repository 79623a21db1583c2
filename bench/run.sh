#!/usr/bin/env bash
# Benchmark certplane (--dev) against moto on this machine and print a markdown table.
#
#   bash bench/run.sh
#
# Environment:
#   BENCH_CONCURRENCY      concurrent keep-alive connections (default 32)
#   BENCH_DURATION         seconds per workload (default 10)
#   BENCH_THREADS          load-generator threads (default 1)
#   CERTPLANE_BENCH_VENV   venv holding moto[server] (default ~/.cache/certplane/bench-venv;
#                          created and filled from PyPI only when moto_server is missing)
#
# The servers run one after the other on free ports; certplane gets a fresh temporary data
# dir. Both servers share the machine's cores with the load generator.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CONCURRENCY="${BENCH_CONCURRENCY:-32}"
DURATION="${BENCH_DURATION:-10}"
THREADS="${BENCH_THREADS:-1}"
VENV="${CERTPLANE_BENCH_VENV:-$HOME/.cache/certplane/bench-venv}"
PYTHON="${PYTHON:-python3}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-bench.XXXXXX")"
SERVER_PID=""

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench] $*" >&2; }

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port PORT PID LOGFILE NAME
wait_for_port() {
    local port=$1 pid=$2 logfile=$3 name=$4
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during startup; its log:"
            cat "$logfile" >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "$name did not open port $port within 30 s; its log:"
    cat "$logfile" >&2
    return 1
}

# --- build -----------------------------------------------------------------------------
log "building (release): certplane, certplane-bench"
cargo build --release -p certplane -p certplane-bench
CERTPLANE="${CARGO_TARGET_DIR:-$ROOT/target}/release/certplane"
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/certplane-bench"

# --- moto venv -------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/moto_server" ]]; then
    log "installing moto[server] into $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'moto[server]'
fi
MOTO_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || echo unknown)"

BENCH_ARGS=(--concurrency "$CONCURRENCY" --duration "$DURATION" --threads "$THREADS")

# --- certplane -------------------------------------------------------------------------
PORT="$(free_port)"
log "starting certplane on 127.0.0.1:$PORT"
"$CERTPLANE" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/certplane-data" --dev \
    >"$WORK/certplane.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q "certplane listening on" "$WORK/certplane.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
wait_for_port "$PORT" "$SERVER_PID" "$WORK/certplane.log" certplane
log "benchmarking certplane (concurrency $CONCURRENCY, $DURATION s per workload)"
"$BENCH" --target "http://127.0.0.1:$PORT" --label certplane --cpu "server=$SERVER_PID" "${BENCH_ARGS[@]}" \
    | tee "$WORK/certplane.out" >&2 || log "certplane-bench reported a failure (see above)"
stop_server

# --- moto ------------------------------------------------------------------------------
PORT="$(free_port)"
log "starting moto $MOTO_VERSION on 127.0.0.1:$PORT"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
SERVER_PID=$!
wait_for_port "$PORT" "$SERVER_PID" "$WORK/moto.log" moto
log "benchmarking moto (concurrency $CONCURRENCY, $DURATION s per workload)"
"$BENCH" --target "http://127.0.0.1:$PORT" --label moto --account-header --cpu "server=$SERVER_PID" "${BENCH_ARGS[@]}" \
    | tee "$WORK/moto.out" >&2 || log "certplane-bench reported a failure (see above)"
stop_server

# --- report ----------------------------------------------------------------------------
CPU_MODEL="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
echo
echo "Machine: $(nproc) CPUs, $(uname -m), ${CPU_MODEL:-unknown CPU}; $(uname -sr)"
echo "Settings: concurrency $CONCURRENCY, $DURATION s per workload, $THREADS load-generator thread(s), moto $MOTO_VERSION"
echo
"$PYTHON" - "$WORK/certplane.out" "$WORK/moto.out" <<'PY'
import json, sys

def load(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    out[r.get("workload")] = r
    except OSError:
        pass
    return out

cp, moto = load(sys.argv[1]), load(sys.argv[2])

def cells(r):
    if r is None:
        return ["missing", "", "", ""]
    if r.get("status") != "ok":
        return [r.get("status", "?"), "–", "–", "–"]
    rps = f"{r['rps']:,.0f}"
    if r.get("errors"):
        rps += f" ({r['errors']} errors)"
    server = r.get("cpu", {}).get("server")
    cpu = f"{server['us_per_op']:,.0f} µs" if server else "–"
    return [rps, f"{r['p50_ms']:.2f} ms", f"{r['p99_ms']:.2f} ms", cpu]

names = {"describe": "describe (GET /certificates/{id})",
         "update": "update (PUT newStatus)",
         "transfer": "transfer round trip (transfer + reject)"}
print("| workload | certplane rps | p50 | p99 | server CPU/op | moto rps | p50 | p99 | server CPU/op | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for w in ["describe", "update", "transfer"]:
    a, b = cp.get(w), moto.get(w)
    if a is None and b is None:
        continue
    ok_a = a is not None and a.get("status") == "ok"
    ok_b = b is not None and b.get("status") == "ok" and b.get("rps")
    if ok_a and ok_b:
        ratio = f"{a['rps'] / b['rps']:,.1f}×"
    elif ok_a and b is not None and b.get("status") == "unsupported":
        ratio = "n/a (moto: unsupported)"
    else:
        ratio = "n/a"
    print("| " + " | ".join([names.get(w, w)] + cells(a) + cells(b) + [ratio]) + " |")
PY
