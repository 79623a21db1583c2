"""Wire protocol of the CAS dialect: both SDK signing styles, dev-mode accounts, the error body,
unknown actions, JSON types the SDK models expect (it does not coerce), query encoding."""

from __future__ import annotations

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    DEFAULT_DEV_ACCOUNT,
    DEFAULT_PRODUCT_CODE,
    FREE,
    REQUEST_ID_RE,
    M,
    call_action,
    cas_client,
    create_order,
    expect_error,
    package_state,
    v1_request,
    v3_request,
)


def test_describe_package_state_both_signing_styles(funded, signing):
    client = cas_client(funded, ACCOUNT_A, signing=signing)
    resp = client.describe_package_state(M.DescribePackageStateRequest(product_code=FREE))
    assert resp.status_code == 200
    body = resp.body
    assert body.product_code == FREE
    assert (body.total_count, body.used_count, body.issued_count) == (5, 0, 0)
    for v in (body.total_count, body.used_count, body.issued_count):
        assert type(v) is int, f"counts must be JSON integers, got {v!r}"
    assert REQUEST_ID_RE.match(body.request_id), f"RequestId not an upper-case UUID: {body.request_id!r}"


def test_success_response_is_json(funded):
    resp = v3_request(funded.url, "DescribePackageState", {"ProductCode": FREE})
    assert resp.status == 200, resp.body
    assert resp.headers.get("content-type", "").startswith("application/json")
    doc = resp.json()
    assert doc["TotalCount"] == 5 and REQUEST_ID_RE.match(doc["RequestId"])
    resp = v1_request(funded.url, "DescribePackageState", {"ProductCode": FREE})
    assert resp.status == 200, resp.body
    assert resp.json()["TotalCount"] == 5


def test_request_ids_are_unique(funded, cas):
    ids = {cas.describe_package_state(M.DescribePackageStateRequest(product_code=FREE)).body.request_id
           for _ in range(5)}
    assert len(ids) == 5


def test_dev_account_is_the_16_digit_access_key(server):
    server.add_package(ACCOUNT_A, FREE, 3)
    server.add_package(ACCOUNT_B, FREE, 7)
    assert package_state(cas_client(server, ACCOUNT_A))[0] == 3
    assert package_state(cas_client(server, ACCOUNT_B))[0] == 7


def test_dev_other_access_keys_map_to_default_uid(server):
    server.add_package(DEFAULT_DEV_ACCOUNT, FREE, 4)
    for key in ("LTAI5tDevAccessKey", "12345"):  # not 16 digits
        for signing in ("v3", "v1"):
            assert package_state(cas_client(server, key, signing=signing))[0] == 4


def test_dev_accepts_any_secret(funded, signing):
    client = cas_client(funded, ACCOUNT_A, secret="not-the-secret", signing=signing)
    assert package_state(client) == (5, 0, 0)


def test_order_id_is_json_integer_and_round_trips(funded, cas, signing):
    order_id = create_order(cas_client(funded, ACCOUNT_A, signing=signing), "www.wire-types.com")
    body = cas_client(funded, ACCOUNT_A, signing=signing).describe_certificate_state(
        M.DescribeCertificateStateRequest(order_id=order_id)).body
    assert body.type == "domain_verify"
    raw = v3_request(funded.url, "CreateCertificateForPackageRequest",
                     {"ProductCode": FREE, "Domain": "www.wire-types2.com", "ValidateType": "DNS"})
    assert raw.status == 200, raw.body
    assert type(raw.json()["OrderId"]) is int, f"OrderId must be a JSON number: {raw.body!r}"


def test_default_product_code(server, cas):
    """DescribePackageState without ProductCode reports the documented default plan."""
    server.add_package(ACCOUNT_A, DEFAULT_PRODUCT_CODE, 2)
    body = cas.describe_package_state(M.DescribePackageStateRequest()).body
    assert body.product_code == DEFAULT_PRODUCT_CODE
    assert body.total_count == 2


@pytest.mark.parametrize("signing_style", ["v3", "v1"])
def test_unknown_action(server, signing_style):
    client = cas_client(server, ACCOUNT_A, signing=signing_style)
    with expect_error("InvalidApi.NotFound", 404):
        call_action(client, "DescribeNothingAtAll", {"OrderId": 1})


def test_unknown_action_raw_v1(server):
    resp = v1_request(server.url, "NoSuchAction", {})
    assert resp.status == 404, resp.body
    assert resp.json()["Code"] == "InvalidApi.NotFound"


def test_error_body_shape(server, cas):
    """Error body: RequestId, HostId, Code, Message (+ Recommend); 4xx raised as ClientException."""
    resp = v3_request(server.url, "DescribeCertificateState", {"OrderId": 987654321})
    assert resp.status == 404, resp.body
    assert resp.headers.get("content-type", "").startswith("application/json")
    doc = resp.json()
    assert doc["Code"] == "NotFoundOrder"
    assert doc.get("Message")
    assert REQUEST_ID_RE.match(doc.get("RequestId", "")), doc
    assert "HostId" in doc, doc
    with expect_error("NotFoundOrder", 404) as err:
        cas.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=987654321))
    assert err.data["RequestId"] and err.data["Code"] == "NotFoundOrder"
    assert "x-acs-retry-after" not in resp.headers


def test_query_encoding_with_spaces_and_specials(funded, signing):
    """Values with spaces (sent as '+'), '*', '~', '/', non-ASCII survive decoding."""
    client = cas_client(funded, ACCOUNT_A, signing=signing)
    order_id = create_order(client, "www.encoding-test.com", username="Zhang San ~*/+",
                            company_name="阿里 测试 Co., Ltd.", email="a+b@example.com")
    assert describe_domain(client, order_id) == "www.encoding-test.com"


def describe_domain(client, order_id):
    return client.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=order_id)).body.domain


def test_boolean_parameters_python_style(funded, cas):
    """The SDK sends booleans as Python's str(bool): CertFilter=True / CertFilter=False."""
    from cas_x509 import make_ca, make_leaf
    ca = make_ca()
    leaf = make_leaf(ca, "bool.example.com")
    cert_id = cas.upload_user_certificate(M.UploadUserCertificateRequest(
        name="bool_test", cert=leaf.pem, key=leaf.key_pem)).body.cert_id
    full = cas.get_user_certificate_detail(M.GetUserCertificateDetailRequest(cert_id=cert_id, cert_filter=False)).body
    assert full.cert and "BEGIN CERTIFICATE" in full.cert
    filtered = cas.get_user_certificate_detail(M.GetUserCertificateDetailRequest(cert_id=cert_id, cert_filter=True)).body
    assert not filtered.cert and not filtered.key
