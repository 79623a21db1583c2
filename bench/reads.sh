#!/usr/bin/env bash
# DescribeCertificate beside nginx, in one run: wrk (c=64, the SigV4 headers boto3 sends) against
# certplane --dev on SQLite and on PostgreSQL (one node), and against nginx (2 workers) serving
# the very answer certplane gives as a static file — the cost of HTTP alone on this machine.
# Rounds alternate the targets so each sees the same machine. With BASELINE=PATH (another
# certplane binary, e.g. built from an older commit) that binary runs beside, in the same rounds.
# With INSTRUCTIONS=1 it also counts the SQLite server's instructions per request under
# callgrind (stable on a noisy machine; the load there is ab, 8 keep-alive connections).
#
#   bash bench/reads.sh
#   BASELINE=/tmp/certplane-before INSTRUCTIONS=1 bash bench/reads.sh
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light; ab from apache2-utils and valgrind
# for INSTRUCTIONS=1). Environment: BENCH_DURATION (seconds per run, 5), ROUNDS (3),
# BENCH_CONNECTIONS (64), BENCH_THREADS (wrk threads, 2), CERTPLANE_TEST_POSTGRES (admin URL,
# default postgres://postgres@127.0.0.1:5432/test; the script makes and drops its own database;
# PostgreSQL is skipped when it cannot).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
PG_ADMIN="${CERTPLANE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/certplane-reads.XXXXXX")"
PIDS=()
DBS=()
log() { echo "[bench] $*" >&2; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    for d in "${DBS[@]}"; do psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
for tool in wrk nginx; do
    command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install wrk nginx-light)"; exit 2; }
done

log "building (release): certplane"
cargo build --release -p certplane >&2
CP="${CARGO_TARGET_DIR:-$ROOT/target}/release/certplane"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
# The Authorization header boto3 sends (dev mode reads the account and region from it).
DATE="$(date -u +%Y%m%dT%H%M%SZ)"
AUTH="AWS4-HMAC-SHA256 Credential=111111111111/${DATE:0:8}/us-east-1/iot/aws4_request, SignedHeaders=host;x-amz-date, Signature=$(printf '0%.0s' $(seq 64))"
HEADERS=(-H "Authorization: $AUTH" -H "X-Amz-Date: $DATE")

start_node() { # NAME BIN [DATABASE_URL] -> URL; pid appended to PIDS via $WORK/NAME.pid
    local name=$1 bin=$2 db=${3:-} port
    port=$(free_port)
    if [[ -n "$db" ]]; then
        "$bin" serve --dev --listen "127.0.0.1:$port" --data-dir "$WORK/$name" --database-url "$db" \
            >"$WORK/$name.out" 2>"$WORK/$name.log" &
    else
        "$bin" serve --dev --listen "127.0.0.1:$port" --data-dir "$WORK/$name" \
            >"$WORK/$name.out" 2>"$WORK/$name.log" &
    fi
    echo $! >"$WORK/$name.pid"
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && { echo "http://127.0.0.1:$port"; return 0; }
        sleep 0.1
    done
    log "$name did not start"; cat "$WORK/$name.log" >&2; return 1
}
make_cert() { # URL -> certificate id
    curl -sf -X POST "$1/keys-and-certificate?setAsActive=true" "${HEADERS[@]}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["certificateId"])'
}

declare -A URL CERT
TARGETS=()
add_certplane() { # LABEL BIN [DATABASE_URL]
    local u
    u=$(start_node "$1" "$2" "${3:-}")
    PIDS+=("$(cat "$WORK/$1.pid")")
    URL[$1]=$u
    CERT[$1]=$(make_cert "$u")
    TARGETS+=("$1")
}
add_certplane "certplane-sqlite" "$CP"
if psql "$PG_ADMIN" -qc "CREATE DATABASE certplane_reads_$$" >/dev/null 2>&1; then
    DBS+=("certplane_reads_$$")
    add_certplane "certplane-postgres" "$CP" "${PG_ADMIN%/*}/certplane_reads_$$"
else
    log "PostgreSQL at $PG_ADMIN is not reachable: SKIPPED the PostgreSQL node"
fi
if [[ -n "${BASELINE:-}" ]]; then
    add_certplane "baseline-sqlite" "$BASELINE"
    if [[ ${#DBS[@]} -gt 0 ]] && psql "$PG_ADMIN" -qc "CREATE DATABASE certplane_reads_b$$" >/dev/null 2>&1; then
        DBS+=("certplane_reads_b$$")
        add_certplane "baseline-postgres" "$BASELINE" "${PG_ADMIN%/*}/certplane_reads_b$$"
    fi
fi

# nginx serves certplane's own answer, byte for byte, under the same path.
SQLITE_ID=${CERT[certplane-sqlite]}
mkdir -p "$WORK/www/certificates"
curl -sf "${URL[certplane-sqlite]}/certificates/$SQLITE_ID" "${HEADERS[@]}" >"$WORK/www/certificates/$SQLITE_ID"
# nginx's workers run as an unprivileged user: the answer must be readable to them.
chmod a+rx "$WORK" "$WORK/www" "$WORK/www/certificates"
chmod a+r "$WORK/www/certificates/$SQLITE_ID"
NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    default_type application/json;
  }
}
EOF
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
URL[nginx]="http://127.0.0.1:$NGINX_PORT"
CERT[nginx]=$SQLITE_ID
TARGETS+=("nginx")
curl -sf -o /dev/null "${URL[nginx]}/certificates/$SQLITE_ID" || { log "nginx does not serve the answer"; cat "$WORK/nginx-error.log" >&2; exit 1; }
log "answer: $(wc -c <"$WORK/www/certificates/$SQLITE_ID") bytes"

for round in $(seq 1 "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        log "round $round: $t"
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${HEADERS[@]}" \
            "${URL[$t]}/certificates/${CERT[$t]}" >"$WORK/wrk-$t-$round.txt"
    done
done

if [[ "${INSTRUCTIONS:-0}" == 1 ]]; then
    for t in certplane-sqlite ${BASELINE:+baseline-sqlite}; do
        bin=$CP; [[ $t == baseline-sqlite ]] && bin=$BASELINE
        # Its own data dir: the SQLite feed hub is the first server on a data dir.
        port=$(free_port)
        valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind-$t.out" "$bin" serve --dev \
            --listen "127.0.0.1:$port" --data-dir "$WORK/cg-$t-data" >/dev/null 2>"$WORK/cg-$t.log" &
        vpid=$!
        for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
        id=$(make_cert "http://127.0.0.1:$port")
        ab -q -k -n 500 -c 8 "${HEADERS[@]}" "http://127.0.0.1:$port/certificates/$id" >/dev/null
        callgrind_control -z "$vpid" >/dev/null
        ab -q -k -n 5000 -c 8 "${HEADERS[@]}" "http://127.0.0.1:$port/certificates/$id" >/dev/null
        callgrind_control -d "$vpid" >/dev/null
        sleep 0.5
        kill "$vpid"; wait "$vpid" 2>/dev/null || true
        total=$(callgrind_annotate "$(ls -t "$WORK/callgrind-$t.out".* | head -1)" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
        echo "$t $((total / 5000))" >>"$WORK/instructions.txt"
    done
fi

echo
echo "Machine: $(nproc) CPUs, $(uname -m), $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(uname -sr)"
echo "Settings: wrk -t$THREADS -c$CONNECTIONS, $DURATION s per run, $ROUNDS rounds alternating; medians over rounds"
python3 - "$WORK" "${TARGETS[@]}" <<'PY'
import re, statistics, sys, pathlib
work, targets = pathlib.Path(sys.argv[1]), sys.argv[2:]
def ms(text):
    v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rows = {}
for t in targets:
    rps, p50, p99, bad = [], [], [], 0
    for f in sorted(work.glob(f"wrk-{t}-*.txt")):
        s = f.read_text()
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", s).group(1)))
        # The distribution's own lines ("    50%  0.69ms"), not the Stdev column's "90.50%".
        p50.append(ms(re.search(r"^\s+50%\s+(\S+)", s, re.M).group(1)))
        p99.append(ms(re.search(r"^\s+99%\s+(\S+)", s, re.M).group(1)))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", s)
        bad += int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: (.*)", s)
        bad += sum(int(x) for x in re.findall(r"\d+", m.group(1))) if m else 0
    rows[t] = (statistics.median(rps), statistics.median(p50), statistics.median(p99), bad, rps)
nginx = rows.get("nginx", (float("nan"),))[0]
print("| target | requests/s (median) | rounds | p50 | p99 | errors | × nginx |")
print("|---|---:|---|---:|---:|---:|---:|")
for t, (r, a, b, bad, all_) in rows.items():
    print(f"| {t} | {r:,.0f} | {', '.join(f'{x:,.0f}' for x in all_)} | {a:.2f} ms | {b:.2f} ms | {bad} | {r / nginx:.2f} |")
ins = work / "instructions.txt"
if ins.exists():
    print()
    for line in ins.read_text().split("\n"):
        if line:
            name, n = line.split()
            print(f"{name}: {int(n):,} instructions per DescribeCertificate (callgrind)")
PY
