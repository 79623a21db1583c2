"""Operations: `GET /metrics` after real boto3 traffic (counters, latency histograms, the store's
certificate gauges, denials, and `promtool check metrics` on the live scrape), `--log-format
json` with the client's request id on the request's lines, and the TOML config file with its
precedence (flags > CERTPLANE_* environment > file > defaults)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import sdk_engine
from certplane_server import READY_RE, CertplaneServer, free_port, http_request, require

ACCOUNT = "111111111111"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def iot(url: str, key: str = ACCOUNT, secret: str = "x"):
    return boto3.session.Session().client(
        "iot", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


def scrape(srv) -> str:
    status, headers, body = http_request(srv.url, "GET", "/metrics")
    assert status == 200, body[:300]
    assert headers.get("content-type", "").startswith("text/plain; version=0.0.4"), headers
    return body.decode()


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s: dict, name: str, **labels) -> float | None:
    return s.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def dev_server(binary, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("ops") / "data", dev=True).start()
    yield srv
    srv.stop()


def test_metrics_count_sdk_traffic_and_match_the_registry(dev_server):
    dev_server.reset()
    c = iot(dev_server.url)
    ids = [c.create_keys_and_certificate(setAsActive=True)["certificateId"] for _ in range(3)]
    c.update_certificate(certificateId=ids[0], newStatus="INACTIVE")
    c.update_certificate(certificateId=ids[1], newStatus="REVOKED")
    before = samples(scrape(dev_server))
    described = dict(dialect="aws-iot", operation="DescribeCertificate")
    ok_before = value(before, "certplane_requests_total", **described, status="200") or 0
    nf_before = value(before, "certplane_requests_total", **described, status="404") or 0
    for cert_id in ids:
        c.describe_certificate(certificateId=cert_id)
    with pytest.raises(ClientError) as e:
        c.describe_certificate(certificateId="ab" * 32)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # A route no AWS IoT operation has is counted as operation="unknown".
    status, _, _ = http_request(dev_server.url, "GET", "/no/such/route")
    assert status >= 400

    after = samples(scrape(dev_server))
    assert value(after, "certplane_requests_total", **described, status="200") == ok_before + 3
    assert value(after, "certplane_requests_total", **described, status="404") == nf_before + 1
    assert any(n == "certplane_requests_total" and ("operation", "unknown") in l
               for (n, l) in after), "no operation=unknown series"
    count = value(after, "certplane_request_duration_seconds_count", **described)
    assert count is not None and count >= 4
    assert value(after, "certplane_request_duration_seconds_bucket", **described, le="+Inf") == count

    # The gauges are the registry's own counts.
    listed = {}
    for cert in c.list_certificates(pageSize=250)["certificates"]:
        listed[cert["status"]] = listed.get(cert["status"], 0) + 1
    assert listed == {"ACTIVE": 1, "INACTIVE": 1, "REVOKED": 1}
    for status in ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "PENDING_ACTIVATION",
                   "REGISTER_INACTIVE"):
        assert value(after, "certplane_certificates", status=status) == listed.get(status, 0), status
    assert value(after, "certplane_pending_transfers", dialect="aws-iot") == 0
    c.transfer_certificate(certificateId=ids[0], targetAwsAccount="222222222222")
    moved = samples(scrape(dev_server))
    assert value(moved, "certplane_pending_transfers", dialect="aws-iot") == 1
    assert value(moved, "certplane_certificates", status="PENDING_TRANSFER") == 1
    assert value(moved, "certplane_certificates", status="INACTIVE") == 0
    for state in ("payed", "domain_verify", "verify_fail", "certificate", "revoked"):
        assert value(moved, "certplane_orders", state=state) == 0
    assert value(moved, "certplane_store_up") == 1
    store_ops = {dict(l).get("operation") for (n, l) in moved
                 if n == "certplane_store_operation_duration_seconds_count"}
    assert {"get", "apply", "count_by_field"} <= store_ops, store_ops
    assert value(moved, "certplane_gateway_sessions") == 0


def test_promtool_accepts_a_live_scrape(dev_server):
    iot(dev_server.url).list_certificates()
    promtool = shutil.which("promtool")
    require(promtool is not None,
            "SKIPPED: promtool not installed (Debian package `prometheus`; scripts/test installs it)")
    text = scrape(dev_server)
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), (
        f"promtool check metrics exited {res.returncode}\n{res.stdout}\n{res.stderr}\n{text}")


def test_denials_are_counted_by_dialect_and_action(binary, tmp_path):
    srv = CertplaneServer(binary, tmp_path / "data", dev=False).start()
    try:
        srv.admin("account", "create", "--aws-account-id", ACCOUNT)
        srv.admin("user", "create", "--account", ACCOUNT, "--name", "nobody")
        key = json.loads(srv.admin("access-key", "create", "--account", ACCOUNT, "--user",
                                   "nobody", "--json").stdout)
        c = iot(srv.url, key["AccessKeyId"], key["SecretAccessKey"])
        for _ in range(2):
            with pytest.raises(ClientError) as e:
                c.list_certificates()
            assert e.value.response["Error"]["Code"] == "UnauthorizedException"
        s = samples(scrape(srv))
        assert value(s, "certplane_denied_calls_total", dialect="aws-iot",
                     action="iot:ListCertificates") == 2
        assert value(s, "certplane_requests_total", dialect="aws-iot",
                     operation="ListCertificates", status="401") == 2
    finally:
        srv.stop()


def test_json_logs_carry_the_request_id(binary, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTPLANE_LOG", "info")
    srv = CertplaneServer(binary, tmp_path / "data", dev=True,
                          extra_args=["--log-format", "json"]).start()
    try:
        c = iot(srv.url)
        with pytest.raises(ClientError) as e:
            c.describe_certificate(certificateId="cd" * 32)
        failed_id = e.value.response["ResponseMetadata"]["RequestId"]
        ok_id = c.list_certificates()["ResponseMetadata"]["RequestId"]
        assert failed_id and ok_id and failed_id != ok_id
        time.sleep(0.3)
    finally:
        srv.stop()
    records = []
    for line in srv.log_path.read_text().splitlines():
        # The harness writes the command line and the server's stdout into the same file.
        if line.startswith("$ ") or READY_RE.search(line):
            continue
        records.append(json.loads(line))  # every stderr line is one JSON object
    assert records, "the server logged nothing at CERTPLANE_LOG=info"

    def lines_of(request_id):
        return [r for r in records if (r.get("span") or {}).get("request_id") == request_id]

    for request_id, status in ((failed_id, 404), (ok_id, 200)):
        mine = lines_of(request_id)
        assert mine, f"no log line carries request id {request_id}"
        answered = [r for r in mine if r["fields"].get("message") == "answered"]
        assert answered and answered[0]["fields"]["status"] == status, mine


# --------------------------------------------------------------------------------------------
# The config file


def start(binary, data_dir, args, env_extra=None, config=None, timeout=60):
    """Runs `certplane serve ARGS`; returns (process, the URL it listens on)."""
    env = sdk_engine.server_env(data_dir)
    for k in list(env):
        if k.startswith("CERTPLANE_") and k not in ("CERTPLANE_DATABASE_URL",):
            env.pop(k)
    env.update(env_extra or {})
    cmd = [str(binary), "serve", *args] + (["--config", str(config)] if config else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = READY_RE.search(line)
        if m:
            return proc, m.group(1), line
    proc.kill()
    out, err = proc.communicate(timeout=10)
    pytest.fail(f"{cmd} did not start (exit {proc.returncode}):\n{out}\n{err}", pytrace=False)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_config_file_flags_environment_precedence(binary, tmp_path):
    data = tmp_path / "data"
    ports = [free_port() for _ in range(3)]
    cfg = tmp_path / "certplane.toml"
    cfg.write_text(f'listen = "127.0.0.1:{ports[0]}"\ndata-dir = "{data}"\ndev = true\n'
                   'max-connections = 50\nheader-read-timeout = 7\ncrl-hold = false\n')
    # The file alone: its listen address, data dir and --dev.
    proc, url, line = start(binary, data, [], config=cfg)
    try:
        assert url == f"http://127.0.0.1:{ports[0]}"
        assert "(dev mode)" in line
        assert http_request(url, "GET", "/")[0] == 200  # the dev-mode root
        assert (data / "ca.pem").is_file()
    finally:
        stop(proc)
    # The environment beats the file.
    env = {"CERTPLANE_LISTEN": f"127.0.0.1:{ports[1]}"}
    proc, url, _ = start(binary, data, [], env_extra=env, config=cfg)
    try:
        assert url == f"http://127.0.0.1:{ports[1]}"
    finally:
        stop(proc)
    # A flag beats the environment; CERTPLANE_CONFIG names the file as --config does.
    env["CERTPLANE_CONFIG"] = str(cfg)
    proc, url, _ = start(binary, data, ["--listen", f"127.0.0.1:{ports[2]}"], env_extra=env)
    try:
        assert url == f"http://127.0.0.1:{ports[2]}"
    finally:
        stop(proc)


def test_config_file_unknown_key_and_bad_values_are_refused(binary, tmp_path):
    cases = {
        'listen = "127.0.0.1:0"\nmax-conections = 5\n': "unknown key `max-conections`",
        'dev = "yes"\n': "key `dev`: this flag takes true or false",
        'max-connections = "many"\n': "max-connections",
        'listen = [\n': "not valid TOML",
    }
    for text, expected in cases.items():
        cfg = tmp_path / "bad.toml"
        cfg.write_text(text)
        res = subprocess.run([str(binary), "serve", "--config", str(cfg),
                              "--data-dir", str(tmp_path / "data")],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert res.returncode != 0, (text, res.stdout, res.stderr)
        assert expected in res.stderr, (text, res.stderr)
    missing = subprocess.run([str(binary), "serve", "--config", str(tmp_path / "absent.toml")],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert missing.returncode != 0 and "cannot read the config file" in missing.stderr


def test_config_file_serves_admin_commands(binary, tmp_path):
    """An admin command reads the same file (its keys are that command's flags)."""
    data = tmp_path / "data"
    cfg = tmp_path / "admin.toml"
    cfg.write_text(f'data-dir = "{data}"\n')
    env = sdk_engine.server_env(data)
    res = subprocess.run([str(binary), "admin", "account", "create", "--aws-account-id",
                          ACCOUNT, "--config", str(cfg)], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert res.returncode == 0, res.stderr
    if sdk_engine.ENGINE != "postgres":
        assert (data / "ca.pem").exists() or any(data.iterdir())
