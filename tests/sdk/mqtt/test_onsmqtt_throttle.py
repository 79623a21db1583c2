"""Throttling of the OnsMqtt dialect with the official SDK (alibabacloud_onsmqtt20200420):
ApsaraMQ's published 500 calls per second per user (seed 003) by default, lower rates set with
`serve --throttle-rate onsmqtt:<Action>=…`; a throttled call is `Throttling.User` (HTTP 400,
`x-acs-retry-after`), raised by the SDK as its ThrottlingException, and changes nothing."""

from __future__ import annotations

import json
import time

import pytest
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException

from onsmqtt_harness import INSTANCE_A, OnsMqttServer, all_cas, mqtt_client, register_ca, register_code
from certplane_server import find_key
from certplane_server import burst as shared_burst

pytestmark = pytest.mark.slow

UID = "1234567890123499"


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    s = OnsMqttServer(binary, tmp_path_factory.mktemp("mqtt-throttle") / "data", dev=False,
                      extra_args=["--throttle-rate", "onsmqtt:GetRegisterCode=3:3",
                                  "--throttle-rate", "onsmqtt:RegisterCaCertificate=1:1"])
    s.data_dir.mkdir(parents=True, exist_ok=True)
    s.root_key = s.create_access_key(UID)
    s.create_instance(UID, INSTANCE_A)
    s.start()
    try:
        yield s
    finally:
        s.stop()


_names = iter(range(10_000))


def user_client(srv, tmp_path):
    name = f"mqthr{next(_names)}"
    srv.admin("user", "create", "--account", UID, "--name", name)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "mq:*", "Resource": "*"}]}))
    srv.admin("policy", "create", "--account", UID, "--name", name, "--document", str(path))
    srv.admin("policy", "attach", "--account", UID, "--name", name, "--user", name)
    doc = srv.admin_json("access-key", "create", "--account", UID, "--user", name, "--json")
    return mqtt_client(srv, find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey"))


def burst(fn, n):
    return shared_burst(fn, n, AlibabaCloudException)


def assert_throttled(e):
    assert isinstance(e, ThrottlingException), f"{type(e).__name__}: {getattr(e, 'data', e)!r}"
    assert (e.code, e.status_code) == ("Throttling.User", 400)
    assert isinstance(e.retry_after, int) and e.retry_after > 0
    assert e.data.get("RequestId") and e.data.get("Message")


def test_burst_over_the_rate_is_throttling_user(srv, tmp_path):
    c = user_client(srv, tmp_path)
    results = burst(lambda: register_code(c), 10)
    assert [r[0] for r in results[:3]] == ["ok"] * 3, results
    errs = [r[1] for r in results if r[0] == "err"]
    assert errs
    for e in errs:
        assert_throttled(e)


def test_calls_under_the_rate_all_succeed(srv, tmp_path):
    c = user_client(srv, tmp_path)
    for _ in range(8):
        register_code(c)
        time.sleep(0.4)


def test_the_limit_is_per_user(srv, tmp_path):
    alice = user_client(srv, tmp_path)
    bob = user_client(srv, tmp_path)
    root = mqtt_client(srv, *srv.root_key)
    assert any(r[0] == "err" for r in burst(lambda: register_code(alice), 10))
    for c in (bob, root):
        for _ in range(3):
            register_code(c)


def test_default_is_500_per_second(srv, tmp_path):
    # ListCaCertificate has no override: 500/s per user, far above what one client sends.
    c = user_client(srv, tmp_path)
    for _ in range(60):
        all_cas(c)


def test_a_throttled_registration_changes_nothing(srv, tmp_path):
    c = user_client(srv, tmp_path)
    time.sleep(1.2)
    before = len(all_cas(c))
    register_ca(c, name="thr_first")
    with pytest.raises(ThrottlingException) as ei:
        register_ca(c, name="thr_second")
    assert_throttled(ei.value)
    assert len(all_cas(c)) == before + 1
    time.sleep(1.2)
    register_ca(c, name="thr_second")
    assert len(all_cas(c)) == before + 2
