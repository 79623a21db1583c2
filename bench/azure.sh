#!/usr/bin/env bash
# Benchmark the Azure Billing dialect of certplane (--dev, plain HTTP on loopback):
# token issuance, get and list latency, and initiate → accept → completed throughput.
#
#   bash bench/azure.sh
#
# Environment:
#   BENCH_CONCURRENCY      concurrent keep-alive connections (default 32)
#   BENCH_DURATION         seconds per workload (default 5)
#   BENCH_THREADS          load-generator threads (default 1)
#   BENCH_DATABASE_URL     a PostgreSQL database to run on instead of SQLite (it must be empty)
#   CARGO_TARGET_DIR       where the release binaries are built (default ./target)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
DURATION="${BENCH_DURATION:-5}"
THREADS="${BENCH_THREADS:-1}"
PYTHON="${PYTHON:-python3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-azure-bench.XXXXXX")"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[bench] $*" >&2; }

log "building (release): certplane, certplane-bench"
cargo build --release -p certplane -p certplane-bench
CERTPLANE="$TARGET_DIR/release/certplane"
BENCH="$TARGET_DIR/release/certplane-bench"

DB_ARGS=()
[[ -n "${BENCH_DATABASE_URL:-}" ]] && DB_ARGS=(--database-url "$BENCH_DATABASE_URL")

# The seed the workloads expect (crates/bench/src/azure.rs): one partner scope, two OAuth
# clients, 30,000 active subscriptions held by the recipient.
"$PYTHON" - "$WORK/seed.json" <<'PY'
import json, sys
seed = {
    "billingAccounts": [{"name": "PCN.bench", "agreementType": "MicrosoftPartnerAgreement",
                         "owners": ["initiator@bench.example"],
                         "billingProfiles": [{"name": "p", "customers": [{"name": "c"}]}]}],
    "products": [{"id": f"bench-{i}", "productType": "AzureSubscription", "status": "Active",
                  "owner": "recipient@bench.example"} for i in range(30000)],
    "oauthClients": [
        {"tenant": "bench", "clientId": "bench-initiator", "clientSecret": "bench-initiator-secret",
         "email": "initiator@bench.example"},
        {"tenant": "bench", "clientId": "bench-recipient", "clientSecret": "bench-recipient-secret",
         "email": "recipient@bench.example"}],
}
json.dump(seed, open(sys.argv[1], "w"))
PY
log "importing the seed"
time "$CERTPLANE" admin billing import "$WORK/seed.json" --data-dir "$WORK/data" "${DB_ARGS[@]}" >&2

PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$CERTPLANE" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --dev "${DB_ARGS[@]}" \
    >"$WORK/certplane.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q "certplane listening on" "$WORK/certplane.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/certplane.log" >&2; exit 1; }
    sleep 0.1
done
ENGINE=sqlite; [[ -n "${BENCH_DATABASE_URL:-}" ]] && ENGINE=postgres
log "benchmarking ($ENGINE, concurrency $CONCURRENCY, $DURATION s per workload)"
CPU_ARGS=(--cpu "server=$SERVER_PID")
[[ "$ENGINE" == postgres ]] && CPU_ARGS+=(--cpu "postgres=comm:postgres")
"$BENCH" --target "http://127.0.0.1:$PORT" --label "certplane-$ENGINE" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --threads "$THREADS" "${CPU_ARGS[@]}" \
    --workloads azure-token,azure-get,azure-list,azure-flow
