"""Verified mode (no --dev): real ACS3-HMAC-SHA256 and v1 HMAC-SHA1 signature checks, unknown
keys, clock skew and nonce replay, with the official SDK and with hand-signed requests."""

from __future__ import annotations

import uuid

import pytest

from aliyun_harness import (
    FREE,
    CertplaneServer,
    M,
    _utc_stamp,
    assert_raw_error,
    cas_client,
    create_order,
    expect_error,
    package_state,
    v1_request,
    v1_signed_params,
    v3_request,
    v3_signed,
)
from cas_x509 import make_csr
import sdk_engine

pytestmark = pytest.mark.slow

UID = "1234567890123456"


@pytest.fixture(scope="module")
def verified(binary, tmp_path_factory):
    # These tests sign many calls of one action back to back, over CAS's 10 calls per second;
    # throttling has its own tests (test_aliyun_throttle.py).
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("verified") / "data", dev=False,
                          extra_args=["--throttle", "off"])
    srv.data_dir.mkdir(parents=True, exist_ok=True)
    key_id, secret = srv.create_access_key(UID)
    srv.start()
    srv.add_package(UID, FREE, 50)
    srv.key_id, srv.secret = key_id, secret
    yield srv
    srv.stop()


def test_sdk_calls_pass(verified, signing):
    client = cas_client(verified, verified.key_id, verified.secret, signing=signing)
    total, _, _ = package_state(client)
    assert total == 50


def test_sdk_csr_and_special_characters_pass(verified, signing):
    """Signing covers form-decoded values: the CSR's spaces arrive as '+', '*' and '~' as sent."""
    client = cas_client(verified, verified.key_id, verified.secret, signing=signing)
    csr, _ = make_csr("www.signed-csr.com")
    order_id = create_order(client, None, csr=csr, username="Li Si *~ 测试", company_name="A&B = C/D")
    body = client.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=order_id)).body
    assert body.domain == "www.signed-csr.com"


def test_wrong_secret(verified, signing):
    client = cas_client(verified, verified.key_id, verified.secret + "x", signing=signing)
    with expect_error("SignatureDoesNotMatch", 400):
        client.describe_package_state(M.DescribePackageStateRequest(product_code=FREE))


def test_unknown_access_key(verified, signing):
    client = cas_client(verified, "LTAI5tNoSuchKey0000000000", "whatever", signing=signing)
    with expect_error("InvalidAccessKeyId.NotFound", 404):
        client.describe_package_state(M.DescribePackageStateRequest(product_code=FREE))


def test_wrong_secret_changes_nothing(verified):
    client = cas_client(verified, verified.key_id, verified.secret)
    before = package_state(client)
    bad = cas_client(verified, verified.key_id, "wrong")
    with expect_error("SignatureDoesNotMatch", 400):
        create_order(bad, "www.never-created.com")
    assert package_state(client) == before


def test_raw_v1_ok_then_replay(verified):
    signed = v1_signed_params("DescribePackageState", {"ProductCode": FREE}, verified.key_id, verified.secret)
    first = v1_request(verified.url, "", signed=signed)
    assert first.status == 200, first.body
    again = v1_request(verified.url, "", signed=signed)
    assert_raw_error(again, "SignatureNonceUsed", 400)


def test_raw_v3_ok_then_replay(verified):
    signed = v3_signed(verified.url, "DescribePackageState", {"ProductCode": FREE},
                       verified.key_id, verified.secret)
    first = v3_request(verified.url, "", signed=signed)
    assert first.status == 200, first.body
    again = v3_request(verified.url, "", signed=signed)
    assert_raw_error(again, "SignatureNonceUsed", 400)


def test_replayed_create_makes_one_order(verified):
    client = cas_client(verified, verified.key_id, verified.secret)
    _, used_before, _ = package_state(client)
    signed = v1_signed_params("CreateCertificateForPackageRequest",
                              {"ProductCode": FREE, "Domain": "www.replay-once.com", "ValidateType": "DNS"},
                              verified.key_id, verified.secret)
    first = v1_request(verified.url, "", signed=signed)
    assert first.status == 200, first.body
    assert_raw_error(v1_request(verified.url, "", signed=signed), "SignatureNonceUsed", 400)
    assert package_state(client)[1] == used_before + 1


def test_replay_to_another_node_is_refused(verified, binary, tmp_path):
    """Nonces live in the shared database: a request replayed to a second node on the same
    PostgreSQL database is refused as on the first, and changes nothing."""
    url = sdk_engine.database_url(verified.data_dir)
    if url is None:
        pytest.skip("two nodes share a database only on PostgreSQL (CERTPLANE_SDK_ENGINE=postgres)")
    other = CertplaneServer(binary, tmp_path / "second-node", dev=False,
                            extra_args=["--database-url", url, "--throttle", "off"])
    other.start()
    try:
        client = cas_client(verified, verified.key_id, verified.secret)
        _, used_before, _ = package_state(client)
        signed = v1_signed_params("CreateCertificateForPackageRequest",
                                  {"ProductCode": FREE, "Domain": "www.replay-two-nodes.com",
                                   "ValidateType": "DNS"},
                                  verified.key_id, verified.secret)
        first = v1_request(verified.url, "", signed=signed)
        assert first.status == 200, first.body
        assert_raw_error(v1_request(other.url, "", signed=signed), "SignatureNonceUsed", 400)
        assert package_state(client)[1] == used_before + 1
        # And the other way round: first use on the second node, replay on the first.
        signed = v1_signed_params("DescribePackageState", {"ProductCode": FREE},
                                  verified.key_id, verified.secret)
        assert v1_request(other.url, "", signed=signed).status == 200
        assert_raw_error(v1_request(verified.url, "", signed=signed), "SignatureNonceUsed", 400)
    finally:
        other.stop()


def test_same_nonce_new_signature_is_replay(verified):
    """The nonce alone identifies a replay, even in a differently signed request."""
    nonce = uuid.uuid4().hex
    ok = v1_request(verified.url, "DescribePackageState", {"ProductCode": FREE},
                    verified.key_id, verified.secret, nonce=nonce)
    assert ok.status == 200, ok.body
    again = v1_request(verified.url, "DescribePackageState", {"ProductCode": "symantec-free-1-free"},
                       verified.key_id, verified.secret, nonce=nonce)
    assert_raw_error(again, "SignatureNonceUsed", 400)


@pytest.mark.parametrize("offset", [-20 * 60, 20 * 60, -3 * 86400])
def test_raw_v1_stale_timestamp(verified, offset):
    resp = v1_request(verified.url, "DescribePackageState", {"ProductCode": FREE},
                      verified.key_id, verified.secret, timestamp=_utc_stamp(offset))
    assert_raw_error(resp, "InvalidTimeStamp.Expired", 400)


@pytest.mark.parametrize("offset", [-20 * 60, 20 * 60])
def test_raw_v3_stale_date(verified, offset):
    resp = v3_request(verified.url, "DescribePackageState", {"ProductCode": FREE},
                      verified.key_id, verified.secret, date=_utc_stamp(offset))
    assert_raw_error(resp, "InvalidTimeStamp.Expired", 400)


def test_raw_timestamp_within_window(verified):
    resp = v1_request(verified.url, "DescribePackageState", {"ProductCode": FREE},
                      verified.key_id, verified.secret, timestamp=_utc_stamp(-10 * 60))
    assert resp.status == 200, resp.body


def test_raw_v1_malformed_timestamp(verified):
    resp = v1_request(verified.url, "DescribePackageState", {"ProductCode": FREE},
                      verified.key_id, verified.secret, timestamp="yesterday at noon")
    assert_raw_error(resp, "InvalidTimeStamp.Format", 400)


def test_raw_v1_tampered_parameter(verified):
    signed = v1_signed_params("DescribePackageState", {"ProductCode": FREE}, verified.key_id, verified.secret)
    signed["ProductCode"] = "symantec-free-1-free"
    assert_raw_error(v1_request(verified.url, "", signed=signed), "SignatureDoesNotMatch", 400)


def test_raw_v3_tampered_query(verified):
    target, headers = v3_signed(verified.url, "DescribePackageState", {"ProductCode": FREE},
                                verified.key_id, verified.secret)
    target = target.replace(FREE, "symantec-free-1-free")
    assert_raw_error(v3_request(verified.url, "", signed=(target, headers)), "SignatureDoesNotMatch", 400)


def test_unsigned_request_is_refused(verified):
    """No Authorization header and no v1 signature parameters: a 4xx JSON error, never 200/5xx."""
    from aliyun_harness import RawResponse
    from certplane_server import http_request
    status, headers, body = http_request(
        verified.url, "POST", "/?ProductCode=" + FREE,
        b"", {"x-acs-action": "DescribePackageState", "x-acs-version": "2020-04-07",
              "Content-Length": "0"})
    assert_raw_error(RawResponse(status, headers, body),
                     {"IncompleteSignature", "MissingAuthorization", "MissingAccessKeyId",
                      "InvalidAccessKeyId.NotFound", "MissingParameter", "MissingSignature"})


def test_v1_and_v3_see_same_account(verified):
    a = package_state(cas_client(verified, verified.key_id, verified.secret, signing="v3"))
    b = package_state(cas_client(verified, verified.key_id, verified.secret, signing="v1"))
    assert a == b
