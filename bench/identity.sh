#!/usr/bin/env bash
# The cost of identity on the hot path: the DescribeCertificate workload against certplane
# --dev (nothing checked), then verified mode with real SigV4 signatures from the account's
# root key, then from a user with a 20-statement IAM-style policy attached (the Allow that
# matches is the last statement), alternated ROUNDS times, throttling off in every mode. Prints
# certplane-bench's JSON line per run, prefixed with the mode.
#   CERTPLANE=target/release/certplane BENCH=target/release/certplane-bench bash bench/identity.sh
# With INSTRUCTIONS=1 the server runs under valgrind's callgrind instead and each line also
# carries "instructions_per_op": the server's instructions over the timed loop alone (the
# counters are zeroed when it starts and dumped when it ends) divided by the operations. That
# figure does not move with what else the machine is doing (use e.g. DURATION=5
# CONCURRENCY=4: under valgrind the server runs about 50x slower).
set -euo pipefail
CERTPLANE="${CERTPLANE:-target/release/certplane}"
BENCH="${BENCH:-target/release/certplane-bench}"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-32}"
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
        "$BENCH" --target "$URL" --label "$mode" --workloads describe --duration "$DURATION" \
            --concurrency "$CONCURRENCY" --cpu "server=$PID" "$@" | grep '^{' | sed "s/^/$mode /"
    fi
    kill "$PID"; wait "$PID" 2>/dev/null || true
}

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
