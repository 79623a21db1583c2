#!/usr/bin/env bash
# moto 5.2.5's own AWS IoT registry tests, from its source distribution on PyPI, in moto's server
# mode against certplane's release binary (`serve --dev`). moto's client-side mocks are off in
# server mode, so every call is a real boto3 request to certplane.
#
#   tests/moto/run.sh            # CERTPLANE_BIN or target/release/certplane
#
# The failures must be exactly those listed in tests/moto/expected_failures.txt (each one has
# its reason in COMPATIBILITY.md); a new failure or a newly passing test fails the run.
# Its own virtualenv ($MOTO_VENV, default ~/.cache/certplane/moto-venv): moto's pins must not
# disturb the SDK suites' environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${CERTPLANE_BIN:-$here/../../target/release/certplane}"
venv="${MOTO_VENV:-$HOME/.cache/certplane/moto-venv}"
version=5.2.5
files=(test_iot_certificates.py test_iot_ca_certificates.py test_iot_policies.py test_iot_things.py
       test_iot_thing_types.py test_iot_thing_groups.py test_iot_billing_groups.py
       test_iot_deprecate_thing_type.py)

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$version')" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "moto[server]==$version" pytest
fi
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$venv/bin/pip" download --quiet "moto==$version" --no-deps --no-binary :all: -d "$work/sdist"
tar -xzf "$work"/sdist/moto-*.tar.gz -C "$work"
src="$work/moto-$version"

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --dev > "$work/serve.out" 2> "$work/serve.log" &
pid=$!
url=""
for _ in $(seq 1 100); do
    url="$(sed -n 's/^certplane listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/serve.out" | head -1)"
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "certplane did not start:"; cat "$work/serve.log"; exit 1; }

cd "$src"
set +e
TEST_SERVER_MODE=true TEST_SERVER_MODE_ENDPOINT="$url" AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -rf -o addopts="" \
    $(printf 'tests/test_iot/%s ' "${files[@]}") > "$work/pytest.out" 2>&1
set -e
tail -1 "$work/pytest.out"
grep -o '^FAILED [^ ]*' "$work/pytest.out" | sed 's/^FAILED //; s/^tests\/test_iot\///' | sort > "$work/failed.txt" || true
{ grep -v '^#' "$here/expected_failures.txt" || true; } | sed '/^$/d' | sort > "$work/expected.txt"
if ! diff -u "$work/expected.txt" "$work/failed.txt"; then
    echo "moto's failures differ from tests/moto/expected_failures.txt (- expected, + now):"
    grep -E '^(FAILED|ERROR)' "$work/pytest.out" || true
    exit 1
fi
echo "moto $version: failures as expected ($(wc -l < "$work/failed.txt"))"
