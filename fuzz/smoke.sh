#!/usr/bin/env bash
# A short run of every fuzz target (default 20 s each) from its seed corpus (fuzz/corpus/<target>,
# real SDK requests and real certificates). Needs the nightly toolchain and cargo-fuzz; installs
# cargo-fuzz when missing. A finding fails the run and is left in fuzz/artifacts/<target>/:
# fix it, then add the input to fuzz/corpus/<target>/ as a regression seed.
#
#   bash fuzz/smoke.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-${FUZZ_SECONDS:-20}}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# Without a sanitizer: the targets are safe Rust over the crates' parsers (overflow checks and
# debug assertions stay on), and an ASan build of aws-lc would double the CI build time.
cargo +nightly fuzz build -s none
work="$(mktemp -d "${TMPDIR:-/tmp}/certplane-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$target"
    echo "fuzz $target (${seconds}s)"
    cargo +nightly fuzz run -s none "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=0 2>&1 \
        | grep -E '^(Done|==|SUMMARY|thread|panicked)|Test unit written' || true
    if compgen -G "artifacts/$target/*" >/dev/null; then
        echo "fuzz $target found a failing input: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
