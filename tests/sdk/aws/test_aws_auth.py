"""Authentication: dev-mode account selection and verified (real SigV4) mode with admin-created
accounts and keys."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from aws_harness import (
    ACCOUNT_A,
    DEFAULT_DEV_ACCOUNT,
    RawResponse,
    cert_arn,
    expect_error,
    iot_client,
    signed_request,
)
from certplane_server import CertplaneServer, find_key, http_request

VERIFIED_A = "111122223333"
VERIFIED_B = "444455556666"


# --- dev mode: who is the caller? ----------------------------------------------------------------

def owner_of_new_cert(client):
    cid = client.create_keys_and_certificate()["certificateId"]
    return client.describe_certificate(certificateId=cid)["certificateDescription"]["ownedBy"]


def test_dev_account_is_twelve_digit_access_key(make_iot):
    assert owner_of_new_cert(make_iot("111111111111")) == "111111111111"
    assert owner_of_new_cert(make_iot("222222222222")) == "222222222222"


def test_dev_account_from_moto_header(make_iot):
    client = make_iot("AKIAIOSFODNN7EXAMPLE", extra_headers={"x-moto-account-id": "555555555555"})
    resp = client.create_keys_and_certificate()
    assert resp["certificateArn"] == cert_arn(resp["certificateId"], "555555555555")
    assert owner_of_new_cert(client) == "555555555555"


def test_dev_twelve_digit_key_wins_over_header(make_iot):
    client = make_iot("111111111111", extra_headers={"x-moto-account-id": "555555555555"})
    assert owner_of_new_cert(client) == "111111111111"


def test_dev_default_account(make_iot):
    client = make_iot("AKIAIOSFODNN7EXAMPLE")
    resp = client.create_keys_and_certificate()
    assert resp["certificateArn"] == cert_arn(resp["certificateId"], DEFAULT_DEV_ACCOUNT)
    assert owner_of_new_cert(client) == DEFAULT_DEV_ACCOUNT


def test_dev_mode_ignores_secret(make_iot):
    one = make_iot(ACCOUNT_A, secret="first-secret")
    two = make_iot(ACCOUNT_A, secret="another-secret")
    cid = one.create_keys_and_certificate()["certificateId"]
    assert two.describe_certificate(certificateId=cid)["certificateDescription"]["ownedBy"] == ACCOUNT_A


# --- verified mode ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verified(binary, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("verified") / "data", dev=False).start()
    keys = {}
    try:
        for account in (VERIFIED_A, VERIFIED_B):
            srv.admin("account", "create", "--aws-account-id", account)
            doc = srv.admin_json("access-key", "create", "--account", account, "--json")
            akid, secret = find_key(doc, "AccessKeyId"), find_key(doc, "SecretAccessKey")
            assert akid and secret, f"access-key create output lacks AccessKeyId/SecretAccessKey: {doc}"
            keys[account] = (akid, secret)
        yield srv, keys
    finally:
        srv.stop()


def verified_client(verified, account, **kwargs):
    srv, keys = verified
    akid, secret = keys[account]
    return iot_client(srv.url, access_key=akid, secret=secret, **kwargs)


def assert_auth_error(exc: ClientError, code: str, status: int = 403):
    err = exc.response["Error"]
    assert err.get("Code") == code, f"expected {code}, got {err.get('Code')}: {err.get('Message')!r}"
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_verified_full_transfer(verified):
    a = verified_client(verified, VERIFIED_A)
    b = verified_client(verified, VERIFIED_B)
    resp = a.create_keys_and_certificate(setAsActive=False)
    cid = resp["certificateId"]
    assert resp["certificateArn"] == cert_arn(cid, VERIFIED_A)
    desc = a.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["ownedBy"] == VERIFIED_A

    with pytest.raises(ClientError) as ei:
        b.describe_certificate(certificateId=cid)
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"

    a.transfer_certificate(certificateId=cid, targetAwsAccount=VERIFIED_B, transferMessage="verified")
    assert a.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "PENDING_TRANSFER"
    out = a.list_outgoing_certificates()["outgoingCertificates"]
    assert [(o["certificateId"], o["transferredTo"]) for o in out] == [(cid, VERIFIED_B)]
    pending = {c["certificateId"]: c["status"] for c in b.list_certificates()["certificates"]}
    assert pending.get(cid) == "PENDING_TRANSFER"

    b.accept_certificate_transfer(certificateId=cid, setAsActive=True)
    desc = b.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["status"] == "ACTIVE"
    assert desc["ownedBy"] == VERIFIED_B
    assert desc["previousOwnedBy"] == VERIFIED_A
    assert isinstance(desc["transferData"]["acceptDate"], dt.datetime)
    with pytest.raises(ClientError) as ei:
        a.describe_certificate(certificateId=cid)
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with expect_error(b, "TransferAlreadyCompletedException", 410):
        b.accept_certificate_transfer(certificateId=cid)


def test_verified_key_created_while_running(verified):
    srv, _ = verified
    doc = srv.admin_json("access-key", "create", "--account", VERIFIED_A, "--json")
    client = iot_client(srv.url, access_key=find_key(doc, "AccessKeyId"), secret=find_key(doc, "SecretAccessKey"))
    assert isinstance(client.list_certificates()["certificates"], list)


def test_unknown_access_key(verified):
    srv, _ = verified
    client = iot_client(srv.url, access_key="AKIAUNKNOWNKEY000000", secret="whatever")
    with pytest.raises(ClientError) as ei:
        client.list_certificates()
    assert_auth_error(ei.value, "UnrecognizedClientException")


def test_wrong_secret(verified):
    srv, keys = verified
    akid, secret = keys[VERIFIED_A]
    client = iot_client(srv.url, access_key=akid, secret=secret + "x")
    with pytest.raises(ClientError) as ei:
        client.list_certificates()
    assert_auth_error(ei.value, "InvalidSignatureException")


def test_twelve_digit_key_is_not_an_account_in_verified_mode(verified):
    srv, _ = verified
    client = iot_client(srv.url, access_key=VERIFIED_A, secret="x")
    with pytest.raises(ClientError) as ei:
        client.list_certificates()
    assert_auth_error(ei.value, "UnrecognizedClientException")


def _signing_time(offset: dt.timedelta):
    fixed = (dt.datetime.now(dt.timezone.utc) + offset).replace(tzinfo=None)
    return mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: fixed)


@pytest.mark.parametrize("minutes", [-20, 20])
def test_signature_outside_window_is_expired(verified, minutes):
    client = verified_client(verified, VERIFIED_A)
    with _signing_time(dt.timedelta(minutes=minutes)):
        with pytest.raises(ClientError) as ei:
            client.list_certificates()
    assert_auth_error(ei.value, "InvalidSignatureException")
    assert "Signature expired" in ei.value.response["Error"]["Message"]


@pytest.mark.parametrize("minutes", [-10, 10])
def test_signature_inside_window_is_accepted(verified, minutes):
    client = verified_client(verified, VERIFIED_A)
    with _signing_time(dt.timedelta(minutes=minutes)):
        assert isinstance(client.list_certificates()["certificates"], list)


def test_missing_authentication_token(verified):
    srv, _ = verified
    status, headers, body = http_request(srv.url, "GET", "/certificates")
    resp = RawResponse(status, headers, body)
    assert status == 403
    assert resp.error_code == "MissingAuthenticationTokenException"
    assert not body.lstrip().startswith(b"<")


def test_tampered_body_fails_signature(verified):
    """Sign one body, send another: the payload hash in the canonical request must catch it."""
    srv, keys = verified
    akid, secret = keys[VERIFIED_A]
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="PATCH", url=srv.url + "/reject-certificate-transfer/" + "ab" * 32,
                     data=b'{"rejectReason": "a"}', headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(akid, secret), "iot", "us-east-1").add_auth(req)
    prepared = req.prepare()
    headers = dict(prepared.headers.items())
    headers.pop("Content-Length", None)
    status, hdrs, body = http_request(srv.url, "PATCH", "/reject-certificate-transfer/" + "ab" * 32,
                                      b'{"rejectReason": "b"}', headers)
    resp = RawResponse(status, hdrs, body)
    assert status == 403, (status, body)
    assert resp.error_code == "InvalidSignatureException"


def test_verified_signed_raw_request_succeeds(verified):
    """Control for the tamper test: the same raw path signs correctly."""
    srv, keys = verified
    akid, secret = keys[VERIFIED_A]
    resp = signed_request(srv.url, "GET", "/certificates?pageSize=1", access_key=akid, secret=secret)
    assert resp.status == 200, resp.body
    assert isinstance(resp.json()["certificates"], list)


def test_verified_other_region_and_encoded_path(verified):
    a = verified_client(verified, VERIFIED_A, region="eu-central-1")
    created = a.create_keys_and_certificate()
    assert created["certificateArn"] == cert_arn(created["certificateId"], VERIFIED_A, "eu-central-1")
    a.create_policy(policyName="verified-pol", policyDocument='{"Version":"2012-10-17","Statement":[]}')
    a.attach_policy(policyName="verified-pol", target=created["certificateArn"])
    got = a.list_attached_policies(target=created["certificateArn"])["policies"]
    assert [p["policyName"] for p in got] == ["verified-pol"]
    a.create_thing(thingName="verified-thing")
    a.attach_thing_principal(thingName="verified-thing", principal=created["certificateArn"])
    assert a.list_principal_things(principal=created["certificateArn"])["things"] == ["verified-thing"]
