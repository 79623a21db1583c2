#!/usr/bin/env bash
# A CRL of N revoked entries: certplane's rebuild (crates/pki/examples/crl_build.rs: collect the
# index's revoked entries, sort, sign with the CA's P-256 key) beside `openssl ca -gencrl` over
# an index.txt of N revoked lines, same machine, same run; wall time and peak RSS of each.
# Then the delta CRL of a CA with N entries and 1,000 changes since the base, built by the
# server's own index (crates/certplane/src/revocation_index.rs, the ignored test
# `delta_of_a_million`): the time to list the changes and sign (median of 5).
#
#   bash bench/crl.sh              # BENCH_SIZES="100000 1000000" by default
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${BENCH_SIZES:-100000 1000000}"
command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
cargo build --release -q -p certplane-pki --example crl_build
cargo test --release -q -p certplane --bin certplane --no-run 2>/dev/null
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/crl_build"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
    -out "$work/ca.pem" -subj "/CN=crl bench CA" -days 30 2>/dev/null
cat >"$work/openssl.cnf" <<CNF
[ca]
default_ca = bench
[bench]
database = $work/index.txt
crlnumber = $work/crlnumber
certificate = $work/ca.pem
private_key = $work/ca.key
default_md = sha256
default_crl_days = 1
CNF

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(openssl version)"
for n in $sizes; do
    # OpenSSL's index: N revoked lines, a third of them on hold (as certplane's bench).
    python3 - "$n" "$work/index.txt" <<'PY'
import hashlib, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        d = bytearray(hashlib.sha256(i.to_bytes(8, "big")).digest()[:16])
        d[0] = (d[0] & 0x7f) | 0x01
        reason = ",certificateHold" if i % 3 == 0 else ""
        f.write(f"R\t301231000000Z\t260101000000Z{reason}\t{d.hex().upper()}\tunknown\t/CN=d{i}\n")
PY
    echo "unique_subject = no" >"$work/index.txt.attr"
    echo 01 >"$work/crlnumber"
    /usr/bin/time -f "%e %M" -o "$work/time" \
        openssl ca -config "$work/openssl.cnf" -gencrl -out "$work/openssl.crl" 2>/dev/null
    read -r o_s o_kb <"$work/time"
    o_pem=$(stat -c %s "$work/openssl.crl")
    c_json=$("$bin" "$n")
    echo "entries=$n openssl_gencrl_s=$o_s openssl_peak_rss_kb=$o_kb openssl_pem_bytes=$o_pem"
    echo "entries=$n certplane: $c_json"
done
for n in $sizes; do
    d_json=$(BENCH_DELTA_ENTRIES="$n" cargo test --release -q -p certplane --bin certplane \
        delta_of_a_million -- --ignored --nocapture 2>/dev/null | grep '^{')
    echo "entries=$n certplane delta: $d_json"
done
