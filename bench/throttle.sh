#!/usr/bin/env bash
# The cost of throttling on the hot path: the DescribeCertificate workload against certplane
# --dev with throttling off, then on with a rate no run reaches (every call takes a token from
# the one caller's bucket: the worst case, all server threads on one atomic), alternated
# ROUNDS times. Prints one JSON line per run (certplane-bench's own) prefixed with the mode.
#   CERTPLANE=target/release/certplane BENCH=target/release/certplane-bench bash bench/throttle.sh
set -euo pipefail
CERTPLANE="${CERTPLANE:-target/release/certplane}"
BENCH="${BENCH:-target/release/certplane-bench}"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-32}"
ROUNDS="${ROUNDS:-2}"
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PID=""

run() { # run MODE [serve args...]
    local mode="$1"; shift
    rm -rf "$WORK/data"
    "$CERTPLANE" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --dev "$@" >"$WORK/out" 2>"$WORK/log" &
    PID=$!
    local url=""
    for _ in $(seq 1 300); do
        url="$(grep -o 'http://[0-9.:]*' "$WORK/out" 2>/dev/null | head -1 || true)"
        [[ -n "$url" ]] && break
        sleep 0.1
    done
    [[ -n "$url" ]] || { echo "certplane did not start" >&2; cat "$WORK/log" >&2; exit 1; }
    "$BENCH" --target "$url" --label "$mode" --workloads describe --duration "$DURATION" \
        --concurrency "$CONCURRENCY" --cpu "server=$PID" | grep '^{' | sed "s/^/$mode /"
    kill "$PID"; wait "$PID" 2>/dev/null || true
}

for _ in $(seq 1 "$ROUNDS"); do
    run off --throttle off
    run on --throttle on --throttle-rate 'iot:*=100000000'
done
