#!/usr/bin/env bash
# The cost of identity on the hot path: the DescribeCertificate workload against certplane
# --dev (nothing checked), then verified mode with real SigV4 signatures from the account's
# root key, then from a user with a 20-statement IAM-style policy attached (the Allow that
# matches is the last statement), alternated ROUNDS times, throttling off in every mode. Prints
# certplane-bench's JSON line per run, prefixed with the mode.
#   CERTPLANE=target/release/certplane BENCH=target/release/certplane-bench bash bench/identity.sh
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

start() { # start [serve args...]: sets URL and PID
    rm -rf "$WORK/data"
    "$CERTPLANE" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --throttle off "$@" \
        >"$WORK/out" 2>"$WORK/log" &
    PID=$!
    URL=""
    for _ in $(seq 1 300); do
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
    "$BENCH" --target "$URL" --label "$mode" --workloads describe --duration "$DURATION" \
        --concurrency "$CONCURRENCY" --cpu "server=$PID" "$@" | grep '^{' | sed "s/^/$mode /"
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
