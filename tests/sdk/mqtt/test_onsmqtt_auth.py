"""OnsMqtt 2020-04-20 instance checks on every action, unknown actions and versions, and verified
mode (no --dev): v3 and v1 signatures, wrong secret, unknown key, replayed nonce."""

from __future__ import annotations

import pytest

from onsmqtt_harness import *  # noqa: F401,F403 (fixtures and helpers)
from onsmqtt_harness import (
    ACCOUNT_A, ACCOUNT_B, ACTION_CALLS, INSTANCE_A, INSTANCE_B, INSTANCE_BASIC, INSTANCE_PRO,
    UNKNOWN_INSTANCE, M, OnsMqttServer, all_cas, assert_raw_error, call_action, check_request_id,
    expect_error, make_session_instances, mqtt_client, register_ca, register_code,
    v1_request, v1_signed_params, v3_request, v3_signed,
)

ACTIONS = sorted(ACTION_CALLS)


@pytest.mark.parametrize("action", ACTIONS)
def test_unknown_instance(mqtt, action):
    with expect_error("MqttInstanceNotFound", 400):
        ACTION_CALLS[action](mqtt, UNKNOWN_INSTANCE)


@pytest.mark.parametrize("action", ACTIONS)
def test_another_accounts_instance(mqtt_b, action):
    with expect_error("MqttOwnerCheckError", 403):
        ACTION_CALLS[action](mqtt_b, INSTANCE_A)


@pytest.mark.parametrize("instance", [INSTANCE_PRO, INSTANCE_BASIC])
@pytest.mark.parametrize("action", ACTIONS)
def test_non_platinum_instance(mqtt, action, instance):
    with expect_error("InstancePermissionCheckFailed", 400):
        ACTION_CALLS[action](mqtt, instance)


@pytest.mark.parametrize("bad", [None, "", "POST-CN-UPPER", "a", "post_cn_underscore", "-post-cn"],
                         ids=["absent", "empty", "upper", "short", "underscore", "leading-dash"])
@pytest.mark.parametrize("action", ACTIONS)
def test_bad_instance_id(mqtt, action, bad):
    with expect_error("ParameterFieldCheckFailed", 400):
        ACTION_CALLS[action](mqtt, bad)


def test_other_account_changes_nothing(mqtt, mqtt_b):
    ca = register_ca(mqtt)
    sn = ca.extra["sn"]
    for call in (lambda: mqtt_b.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=INSTANCE_A, sn=sn)),
                 lambda: mqtt_b.inactivate_ca_certificate(M.InactivateCaCertificateRequest(mqtt_instance_id=INSTANCE_A, sn=sn))):
        with expect_error("MqttOwnerCheckError", 403):
            call()
    [vo] = all_cas(mqtt)
    assert vo.sn == sn and vo.status == "1"
    # B's own instance works for B and is empty.
    assert all_cas(mqtt_b, INSTANCE_B) == []


def test_unknown_action(mqtt):
    with expect_error("InvalidApi.NotFound", 404):
        call_action(mqtt, "DescribeNothing", {"MqttInstanceId": INSTANCE_A})


def test_cas_action_on_onsmqtt_version(mqtt):
    with expect_error("InvalidApi.NotFound", 404):
        call_action(mqtt, "DescribePackageState", {"ProductCode": "x"})


def test_unknown_version(mqtt):
    with expect_error("InvalidVersion", 400):
        call_action(mqtt, "GetRegisterCode", {"MqttInstanceId": INSTANCE_A}, version="2019-01-01")


def test_request_ids_are_unique(mqtt):
    ids = {mqtt.get_register_code(M.GetRegisterCodeRequest(mqtt_instance_id=INSTANCE_A)).body.request_id
           for _ in range(5)}
    assert len(ids) == 5


# --------------------------------------------------------------------------------------------
# Verified mode


@pytest.fixture(scope="module")
def verified(binary, tmp_path_factory):
    srv = OnsMqttServer(binary, tmp_path_factory.mktemp("onsmqtt-verified") / "data", dev=False)
    srv.data_dir.mkdir(parents=True, exist_ok=True)
    srv.key_id, srv.secret = srv.create_access_key(ACCOUNT_A)
    srv.key_b, srv.secret_b = srv.create_access_key(ACCOUNT_B)
    try:
        srv.start()
    except BaseException:
        srv.start()
    make_session_instances(srv)
    yield srv
    srv.stop()


def test_verified_calls_pass(verified, signing):
    client = mqtt_client(verified, verified.key_id, verified.secret, signing=signing)
    ca = register_ca(client)
    assert [c.sn for c in all_cas(client)] == [ca.extra["sn"]]
    client.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=INSTANCE_A, sn=ca.extra["sn"]))


def test_verified_wrong_secret(verified, signing):
    client = mqtt_client(verified, verified.key_id, verified.secret + "x", signing=signing)
    with expect_error("SignatureDoesNotMatch", 400):
        register_code(client)


def test_verified_unknown_key(verified, signing):
    client = mqtt_client(verified, "LTAI5tNoSuchKey0000000000", "whatever", signing=signing)
    with expect_error("InvalidAccessKeyId.NotFound", 404):
        register_code(client)


def test_verified_account_of_the_key(verified):
    """The key's account decides ownership: B's key on A's instance is MqttOwnerCheckError."""
    client = mqtt_client(verified, verified.key_b, verified.secret_b)
    with expect_error("MqttOwnerCheckError", 403):
        register_code(client, INSTANCE_A)
    register_code(client, INSTANCE_B)


def test_verified_wrong_secret_changes_nothing(verified):
    good = mqtt_client(verified, verified.key_id, verified.secret)
    code = register_code(good)
    bad = mqtt_client(verified, verified.key_id, "wrong")
    with expect_error("SignatureDoesNotMatch", 400):
        register_ca(bad)
    assert register_code(good) == code
    assert all_cas(good) == []


def test_raw_v1_replay(verified):
    signed = v1_signed_params("GetRegisterCode", {"MqttInstanceId": INSTANCE_A},
                              verified.key_id, verified.secret)
    first = v1_request(verified.url, signed)
    assert first.status == 200, first.body
    check_request_id(first.json())
    assert_raw_error(v1_request(verified.url, signed), "SignatureNonceUsed", 400)


def test_raw_v3_replay(verified):
    signed = v3_signed(verified.url, "ListCaCertificate",
                       {"MqttInstanceId": INSTANCE_A, "PageNo": "1", "PageSize": "10"},
                       verified.key_id, verified.secret)
    first = v3_request(verified.url, signed)
    assert first.status == 200, first.body
    assert isinstance(first.json()["Data"]["Total"], int)
    assert_raw_error(v3_request(verified.url, signed), "SignatureNonceUsed", 400)


def test_raw_replayed_delete_acts_once(verified):
    client = mqtt_client(verified, verified.key_id, verified.secret)
    ca = register_ca(client)
    signed = v1_signed_params("DeleteCaCertificate", {"MqttInstanceId": INSTANCE_A, "Sn": ca.extra["sn"]},
                              verified.key_id, verified.secret)
    assert v1_request(verified.url, signed).status == 200
    assert_raw_error(v1_request(verified.url, signed), "SignatureNonceUsed", 400)
    assert all_cas(client) == []
