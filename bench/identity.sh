#!/usr/bin/env bash
# The cost of identity on the hot path: DescribeCertificate against certplane --dev (nothing
# checked), then verified mode with a real SigV4 signature from the account's root key, then
# from a user with a 20-statement IAM-style policy attached (the Allow that matches is the last
# statement), alternated ROUNDS times, throttling off in every mode, SQLite.
#
# The load is wrk (c=CONCURRENCY, 2 threads) replaying one signed request: every mode gets the
# very same request bytes (dev mode ignores the signature), so the client's work is the same in
# all three and only the server's differs. Prints one JSON line per run, prefixed with the mode:
# requests/s, p50/p99 and the server's CPU per request (/proc utime+stime over the run ÷
# requests).
#   CERTPLANE=target/release/certplane bash bench/identity.sh
# With INSTRUCTIONS=1 the server runs under valgrind's callgrind instead, loaded by
# certplane-bench (BENCH=target/release/certplane-bench, signing each request), and each line
# also carries "instructions_per_op": the server's instructions over the timed loop alone (the
# counters are zeroed when it starts and dumped when it ends) divided by the operations. That
# figure does not move with what else the machine is doing (use e.g. DURATION=5
# CONCURRENCY=4: under valgrind the server runs about 50x slower).
set -euo pipefail
CERTPLANE="${CERTPLANE:-target/release/certplane}"
BENCH="${BENCH:-target/release/certplane-bench}"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-64}"
ROUNDS="${ROUNDS:-2}"
ACCOUNT=123456789012   # the bench's describe workload account
WORK="$(mktemp -d)"
PID=""
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# 19 statements that do not match DescribeCertificate, then the one that does.
python3 - "$WORK/policy.json" <<'PY'
import json, sys
stmts = []
for i in range(19):
    stmts.append({"Sid": f"S{i}", "Effect": "Allow" if i % 4 else "Deny",
                  "Action": [f"iot:Other{i}*", "iot:ListThings"],
                  "Resource": [f"arn:aws:iot:*:*:thing/t{i}-*"],
                  "Condition": {"StringEquals": {"aws:username": f"nobody{i}"}}})
stmts.append({"Sid": "Describe", "Effect": "Allow",
              "Action": ["iot:DescribeCertificate", "iot:CreateKeysAndCertificate"],
              "Resource": "*"})
json.dump({"Version": "2012-10-17", "Statement": stmts}, open(sys.argv[1], "w"))
PY

VALGRIND=()
if [[ "${INSTRUCTIONS:-0}" == 1 ]]; then
    VALGRIND=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/callgrind.%p")
fi
start() { # start [serve args...]: sets URL and PID
    rm -rf "$WORK/data"
    "${VALGRIND[@]}" "$CERTPLANE" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --throttle off "$@" \
        >"$WORK/out" 2>"$WORK/log" &
    PID=$!
    URL=""
    for _ in $(seq 1 1200); do
        URL="$(grep -o 'http://[0-9.:]*' "$WORK/out" 2>/dev/null | head -1 || true)"
        [[ -n "$URL" ]] && break
        sleep 0.1
    done
    [[ -n "$URL" ]] || { echo "certplane did not start" >&2; cat "$WORK/log" >&2; exit 1; }
}
admin() { "$CERTPLANE" admin "$@" --data-dir "$WORK/data"; }
key_of() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["AccessKeyId"]+":"+d["SecretAccessKey"])'; }
bench() { # bench MODE [bench args...]
    local mode="$1"; shift
    if [[ ${#VALGRIND[@]} -gt 0 ]]; then
        rm -f "$WORK/callgrind.$PID".*
        "$BENCH" --target "$URL" --label "$mode" --workloads describe --duration "$DURATION" \
            --concurrency "$CONCURRENCY" --cpu "server=$PID" "$@" \
            --before-loop "callgrind_control -z $PID >/dev/null 2>&1" \
            --after-loop "callgrind_control -d $PID >/dev/null 2>&1" | grep '^{' >"$WORK/line"
        python3 - "$WORK/line" "$WORK/callgrind.$PID.1" "$mode" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
total = next(int(l.split()[1]) for l in open(sys.argv[2]) if l.startswith("totals:"))
r["instructions_per_op"] = round(total / max(r["ok"], 1))
print(sys.argv[3], json.dumps(r, sort_keys=True))
PY
        # KEEP_PROFILES=DIR keeps each mode's callgrind dump for callgrind_annotate.
        [[ -n "${KEEP_PROFILES:-}" ]] && cp "$WORK/callgrind.$PID.1" "$KEEP_PROFILES/$mode.callgrind"
    else
        wrk_run "$mode" "$@"
    fi
    kill "$PID"; wait "$PID" 2>/dev/null || true
}

# wrk_run MODE [--sign-with ID:SECRET]: one signed DescribeCertificate replayed by wrk. The
# certificate is made first by a signed CreateKeysAndCertificate with the same key.
wrk_run() {
    local mode=$1 keypair=${3:-$DEV_KEY}
    local host=${URL#http://}
    python3 - "$host" "$keypair" >"$WORK/req" <<'PY'
import datetime, hashlib, hmac, json, sys, urllib.request
host, keypair = sys.argv[1], sys.argv[2]
akid, secret = keypair.split(":", 1)
now = datetime.datetime.now(datetime.timezone.utc)
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
def sign(method, path, query):
    h = lambda b: hashlib.sha256(b).hexdigest()
    canonical = f"{method}\n{path}\n{query}\nhost:{host}\nx-amz-date:{amz}\n\nhost;x-amz-date\n{h(b'')}"
    scope = f"{day}/us-east-1/iot/aws4_request"
    sts = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{h(canonical.encode())}"
    k = ("AWS4" + secret).encode()
    for part in (day, "us-east-1", "iot", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={akid}/{scope}, "
                             f"SignedHeaders=host;x-amz-date, Signature={sig}", "X-Amz-Date": amz}
r = urllib.request.Request(f"http://{host}/keys-and-certificate?setAsActive=true", method="POST",
                           headers=sign("POST", "/keys-and-certificate", "setAsActive=true"), data=b"")
cert = json.load(urllib.request.urlopen(r))["certificateId"]
path = f"/certificates/{cert}"
urllib.request.urlopen(urllib.request.Request(f"http://{host}{path}", headers=sign("GET", path, "")))
hdrs = sign("GET", path, "")
print(path)
print(hdrs["Authorization"])
print(hdrs["X-Amz-Date"])
PY
    local path auth date
    { read -r path; read -r auth; read -r date; } <"$WORK/req"
    local t0 t1 c0 c1
    switches() { cat /proc/"$PID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
    c0=$(switches)
    t0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    # PERF_DIR=DIR: a cpu-clock profile of the server over each run (perf record), kept there.
    local perf_pid=""
    if [[ -n "${PERF_DIR:-}" ]]; then
        perf record -q -e cpu-clock -F 1999 -g -p "$PID" -o "$PERF_DIR/$mode.perf" 2>/dev/null &
        perf_pid=$!
    fi
    wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" --latency -H "Authorization: $auth" -H "X-Amz-Date: $date" \
        "$URL$path" >"$WORK/wrk.txt"
    t1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    c1=$(switches)
    if [[ -n "$perf_pid" ]]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
    python3 - "$mode" "$WORK/wrk.txt" "$((t1 - t0))" "$(getconf CLK_TCK)" "$CONCURRENCY" "$((c1 - c0))" <<'PY'
import json, re, sys
mode, text, ticks, hz, conns = sys.argv[1], open(sys.argv[2]).read(), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
switches = int(sys.argv[6])
def ms(t):
    v, unit = re.match(r"([\d.]+)(us|ms|s)", t).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(mode, json.dumps({
    "concurrency": conns, "requests": total, "errors": int(bad.group(1)) if bad else 0,
    "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
    "p50_ms": ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)),
    "p99_ms": ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)),
    "server_cpu_us_per_op": round(ticks / hz * 1e6 / max(total, 1), 2),
    "server_context_switches_per_op": round(switches / max(total, 1), 3),
}, sort_keys=True))
PY
}
# Dev mode is sent a request signed by a key it never checks: the same bytes as the others.
DEV_KEY="AKIADEVMODEBENCH0000:not-checked-in-dev-mode"
if [[ "${INSTRUCTIONS:-0}" != 1 ]]; then
    command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 2; }
fi

for _ in $(seq 1 "$ROUNDS"); do
    start --dev
    bench dev
    start
    admin account create --aws-account-id "$ACCOUNT" >/dev/null
    root="$(admin access-key create --account "$ACCOUNT" --json | key_of)"
    bench verified-root --sign-with "$root"
    start
    admin account create --aws-account-id "$ACCOUNT" >/dev/null
    admin user create --account "$ACCOUNT" --name bench >/dev/null
    admin policy create --account "$ACCOUNT" --name twenty --document "$WORK/policy.json" >/dev/null
    admin policy attach --account "$ACCOUNT" --name twenty --user bench >/dev/null
    user="$(admin access-key create --account "$ACCOUNT" --user bench --json | key_of)"
    bench verified-policy20 --sign-with "$user"
done
