"""Throttling of the CAS dialect with the official SDK (alibabacloud_cas20200407): per user
(account + RAM user) and per action, at rates set with `serve --throttle-rate cas:<Action>=…`.
A throttled call is the gateway's `Throttling.User` (HTTP 400 with `x-acs-retry-after` in ms), which
the SDK raises as its ThrottlingException; it changes nothing (no order, no quota spent) and is
not audited. The SDK does not retry by default (tests/sdk/aliyun/CAPTURES.md)."""

from __future__ import annotations

import json
import time

import pytest
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException

from aliyun_harness import FREE, CertplaneServer, M, cas_client, create_order, package_state
from certplane_server import find_key
from certplane_server import burst as shared_burst

pytestmark = pytest.mark.slow

UID = "2234567890123499"
OTHER_UID = "3234567890123499"


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    s = CertplaneServer(binary, tmp_path_factory.mktemp("cas-throttle") / "data", dev=False,
                        extra_args=["--throttle-rate", "cas:DescribePackageState=3:3",
                                    "--throttle-rate", "cas:CreateCertificateForPackageRequest=1:1"])
    s.data_dir.mkdir(parents=True, exist_ok=True)
    s.root_key = s.create_access_key(UID)
    s.other_key = s.create_access_key(OTHER_UID)
    s.start()
    s.add_package(UID, FREE, 20)
    s.add_package(OTHER_UID, FREE, 20)
    try:
        yield s
    finally:
        s.stop()


_names = iter(range(10_000))


def user_client(srv, tmp_path, signing="v3"):
    name = f"thr{next(_names)}"
    srv.admin("user", "create", "--account", UID, "--name", name)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "yundun-cert:*", "Resource": "*"}]}))
    srv.admin("policy", "create", "--account", UID, "--name", name, "--document", str(path))
    srv.admin("policy", "attach", "--account", UID, "--name", name, "--user", name)
    doc = srv.admin_json("access-key", "create", "--account", UID, "--user", name, "--json")
    return name, cas_client(srv, find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey"),
                            signing=signing)


def burst(fn, n):
    return shared_burst(fn, n, AlibabaCloudException)


def assert_throttled(e):
    assert isinstance(e, ThrottlingException), f"{type(e).__name__}: {getattr(e, 'data', e)!r}"
    assert e.code == "Throttling.User"
    assert e.status_code == 400
    assert isinstance(e.retry_after, int) and 0 < e.retry_after <= 1000, e.retry_after
    data = e.data
    for field in ("RequestId", "HostId", "Code", "Message", "Recommend"):
        assert data.get(field), f"{field} missing from {data!r}"
    assert data["Message"] == "Request was denied due to user flow control."


@pytest.mark.parametrize("signing", ["v3", "v1"])
def test_burst_over_the_rate_is_throttling_user(srv, tmp_path, signing):
    _, c = user_client(srv, tmp_path, signing)
    results = burst(lambda: package_state(c), 10)
    assert [r[0] for r in results[:3]] == ["ok"] * 3, results
    errs = [r[1] for r in results if r[0] == "err"]
    assert errs, "10 back-to-back calls at 3/s were never throttled"
    for e in errs:
        assert_throttled(e)


def test_calls_under_the_rate_all_succeed(srv, tmp_path):
    _, c = user_client(srv, tmp_path)
    for _ in range(8):
        package_state(c)
        time.sleep(0.4)


def test_the_limit_is_per_user(srv, tmp_path):
    _, alice = user_client(srv, tmp_path)
    _, bob = user_client(srv, tmp_path)
    root = cas_client(srv, *srv.root_key)
    other = cas_client(srv, *srv.other_key)
    results = burst(lambda: package_state(alice), 10)
    assert any(r[0] == "err" for r in results)
    for c in (bob, root, other):
        for _ in range(3):
            package_state(c)


def test_a_throttled_order_spends_no_quota(srv, tmp_path):
    name, c = user_client(srv, tmp_path)
    time.sleep(1.2)
    _, used, _ = package_state(c)
    before = c.list_user_certificate_order(M.ListUserCertificateOrderRequest()).body.total_count
    first = create_order(c, "www.throttle-first.com")
    with pytest.raises(ThrottlingException) as ei:
        create_order(c, "www.throttle-second.com")
    assert_throttled(ei.value)
    time.sleep(1.2)
    assert package_state(c)[1] == used + 1
    orders = c.list_user_certificate_order(M.ListUserCertificateOrderRequest()).body
    assert orders.total_count == before + 1
    assert first in {o.order_id for o in orders.certificate_order_list}
    rows = [json.loads(line) for line in srv.admin(
        "audit", "--account", UID, "--principal", name, "--action",
        "yundun-cert:CreateCertificateForPackageRequest", "--json").stdout.splitlines() if line.strip()]
    assert [r["outcome"] for r in rows] == ["allowed"], rows
    # The next second's token lets the same order through.
    create_order(c, "www.throttle-second.com")
