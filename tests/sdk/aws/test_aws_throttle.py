"""Throttling of the AWS IoT dialect with boto3: per principal (account + user) and per action,
at rates set with `serve --throttle-rate`. A throttled call is ThrottlingException (HTTP 400, the
status the API reference gives it) in the rest-json error shape botocore parses, changes
nothing, and is not written to the audit trail. Retries are off in every client here
(`total_max_attempts: 1`): botocore retries ThrottlingException by default."""

from __future__ import annotations

import json
import re
import subprocess
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from aws_harness import REGION
from certplane_server import CertplaneServer, find_key, http_request
from certplane_server import burst as shared_burst

pytestmark = pytest.mark.slow

ACCOUNT = "111122223333"
OTHER = "444455556666"
# Low rates so a burst from one test process overruns them; each action its own bucket.
RATES = [
    "iot:DescribeCertificate=4:4",
    "iot:UpdateCertificate=1:2",
    "iot:ListCertificates=2:3",
]


def client(url, key, secret="x"):
    return boto3.session.Session().client(
        "iot", endpoint_url=url, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=60))


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    # Verified mode: throttling is on by default; the overrides set the test rates.
    extra = [a for r in RATES for a in ("--throttle-rate", r)]
    s = CertplaneServer(binary, tmp_path_factory.mktemp("throttle") / "data", dev=False,
                        extra_args=extra).start()
    try:
        for account in (ACCOUNT, OTHER):
            s.admin("account", "create", "--aws-account-id", account)
        yield s
    finally:
        s.stop()


def make_key(srv, account=ACCOUNT, user=None):
    args = ["access-key", "create", "--account", account, "--json"]
    if user:
        args += ["--user", user]
    doc = srv.admin_json(*args)
    return find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey")


_names = iter(range(10_000))


def user_client(srv, tmp_path, account=ACCOUNT):
    """A fresh user allowed every iot: action, and a client signing as it."""
    name = f"thr{next(_names)}"
    srv.admin("user", "create", "--account", account, "--name", name)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
    srv.admin("policy", "create", "--account", account, "--name", name, "--document", str(path))
    srv.admin("policy", "attach", "--account", account, "--name", name, "--user", name)
    return name, client(srv.url, *make_key(srv, account, name))


def burst(fn, n):
    return shared_burst(fn, n, ClientError)


def assert_throttled(c, e):
    assert isinstance(e, c.exceptions.ThrottlingException), repr(e)
    assert e.response["Error"]["Code"] == "ThrottlingException"
    assert e.response["Error"]["Message"] == "Rate exceeded"
    meta = e.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 400
    assert meta["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    assert meta["RequestId"]
    # One attempt only: the client's retries are off, so the server saw exactly this call.
    assert meta["RetryAttempts"] == 0


def refill(seconds=1.5):
    time.sleep(seconds)


def test_burst_over_the_rate_is_throttling_exception(srv, tmp_path):
    _, c = user_client(srv, tmp_path)
    cid = c.create_keys_and_certificate(setAsActive=True)["certificateId"]
    results = burst(lambda: c.describe_certificate(certificateId=cid), 12)
    oks = [r for r in results if r[0] == "ok"]
    errs = [r[1] for r in results if r[0] == "err"]
    # The burst of 4 passes (plus whatever refilled at 4/s while the calls ran); the rest is refused.
    assert results[0][0] == "ok" and len(oks) >= 4, results
    assert errs, "12 back-to-back calls at 4/s were never throttled"
    for e in errs:
        assert_throttled(c, e)
    # Counted on /metrics, by dialect and throttle action.
    status, _, body = http_request(srv.url, "GET", "/metrics")
    assert status == 200
    m = re.search(r'^certplane_throttled_calls_total\{([^}]*)\} (\d+)', body.decode(), re.M)
    assert m and 'dialect="aws-iot"' in m.group(1) and int(m.group(2)) >= len(errs), body[:2000]


def test_calls_under_the_rate_all_succeed(srv, tmp_path):
    _, c = user_client(srv, tmp_path)
    cid = c.create_keys_and_certificate(setAsActive=True)["certificateId"]
    refill()
    # 4/s sustained: one call every 0.35 s never runs the bucket dry.
    for _ in range(10):
        c.describe_certificate(certificateId=cid)
        time.sleep(0.35)


def test_the_limit_is_per_principal(srv, tmp_path):
    _, alice = user_client(srv, tmp_path)
    _, bob = user_client(srv, tmp_path)
    root = client(srv.url, *make_key(srv))
    other_account = client(srv.url, *make_key(srv, OTHER))
    cid = root.create_keys_and_certificate(setAsActive=True)["certificateId"]
    ocid = other_account.create_keys_and_certificate(setAsActive=True)["certificateId"]
    refill()
    results = burst(lambda: alice.describe_certificate(certificateId=cid), 12)
    assert any(r[0] == "err" for r in results), "alice was never throttled"
    # Alice's bucket is empty now; bob, the account's root user and another account each have
    # their own, full one.
    for c, target in ((bob, cid), (root, cid), (other_account, ocid)):
        for _ in range(3):
            c.describe_certificate(certificateId=target)
    # ...and alice's other actions have their own buckets too.
    alice.list_certificates()


def test_a_second_key_of_the_same_user_shares_its_bucket(srv, tmp_path):
    name, first = user_client(srv, tmp_path)
    second = client(srv.url, *make_key(srv, ACCOUNT, name))
    root = client(srv.url, *make_key(srv))
    cid = root.create_keys_and_certificate(setAsActive=True)["certificateId"]
    refill()
    results = burst(lambda: first.describe_certificate(certificateId=cid), 12)
    assert any(r[0] == "err" for r in results)
    with pytest.raises(ClientError) as ei:
        second.describe_certificate(certificateId=cid)
    assert_throttled(second, ei.value)


def test_a_throttled_update_changes_nothing_and_is_not_audited(srv, tmp_path):
    name, c = user_client(srv, tmp_path)
    cid = c.create_keys_and_certificate(setAsActive=False)["certificateId"]
    refill()
    # UpdateCertificate: a burst of 2 at 1/s. Two changes pass, the third is throttled.
    c.update_certificate(certificateId=cid, newStatus="ACTIVE")
    c.update_certificate(certificateId=cid, newStatus="INACTIVE")
    with pytest.raises(ClientError) as ei:
        c.update_certificate(certificateId=cid, newStatus="REVOKED")
    assert_throttled(c, ei.value)
    desc = c.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["status"] == "INACTIVE"
    rows = [json.loads(line) for line in srv.admin(
        "audit", "--account", ACCOUNT, "--principal", name, "--action", "iot:UpdateCertificate",
        "--json").stdout.splitlines() if line.strip()]
    # The two changes are recorded; the throttled call is not (COMPATIBILITY.md, "Throttling").
    assert [r["outcome"] for r in rows] == ["allowed", "allowed"], rows
    # A second later the bucket has a token again and the same change goes through.
    time.sleep(1.1)
    c.update_certificate(certificateId=cid, newStatus="REVOKED")
    assert c.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "REVOKED"


def test_default_rate_applies_to_actions_without_an_override(srv, tmp_path):
    # GetRegistrationCode has no override: AWS's 10 TPS. A burst of 40 overruns it (40 calls
    # would have to take over 3 s for the refill to keep up).
    _, c = user_client(srv, tmp_path)
    refill()
    results = burst(lambda: c.get_registration_code(), 40)
    oks = sum(1 for r in results if r[0] == "ok")
    assert [r[0] for r in results[:10]] == ["ok"] * 10, results
    assert oks < 40, results
    for e in (r[1] for r in results if r[0] == "err"):
        assert_throttled(c, e)


def test_dev_mode_does_not_throttle_unless_asked(binary, tmp_path):
    dev = CertplaneServer(binary, tmp_path / "dev", dev=True).start()
    try:
        c = client(dev.url, "123456789012")
        # Far over AWS's 10 TPS: --dev is an emulator and does not throttle by default.
        for _ in range(40):
            c.list_certificates()
    finally:
        dev.stop()


def test_dev_mode_with_throttle_on_keys_by_access_key(binary, tmp_path):
    dev = CertplaneServer(binary, tmp_path / "dev", dev=True, extra_args=[
        "--throttle", "on", "--throttle-rate", "iot:ListCertificates=1:3"]).start()
    try:
        a = client(dev.url, "AKIDTHROTTLEA")
        b = client(dev.url, "AKIDTHROTTLEB")  # same default dev account, another key
        results = burst(lambda: a.list_certificates(), 8)
        assert [r[0] for r in results[:3]] == ["ok"] * 3
        errs = [r[1] for r in results if r[0] == "err"]
        assert errs
        for e in errs:
            assert_throttled(a, e)
        for _ in range(3):
            b.list_certificates()
    finally:
        dev.stop()


def test_throttle_off_and_bad_flags(binary, tmp_path):
    off = CertplaneServer(binary, tmp_path / "off", dev=False, extra_args=[
        "--throttle", "off", "--throttle-rate", "iot:ListCertificates=1:1"]).start()
    try:
        off.admin("account", "create", "--aws-account-id", ACCOUNT)
        doc = off.admin_json("access-key", "create", "--account", ACCOUNT, "--json")
        c = client(off.url, find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey"))
        for _ in range(10):
            c.list_certificates()
    finally:
        off.stop()
    for bad in ("iot:ListCertificates", "iot:ListCertificates=0", "iot:ListCertificates=2:0", "=3"):
        res = subprocess.run([str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir",
                              str(tmp_path / "bad"), "--throttle-rate", bad],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert res.returncode != 0, bad
        assert "--throttle-rate" in res.stderr, res.stderr
