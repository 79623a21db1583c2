"""Wire-level behaviour: JSON shapes on the wire, error format, bad input, unknown operations,
dev endpoints (spec §1, §2, §5, §13 #5-7, #28)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

from aws_harness import (
    expect_4xx,
    signed_request,
)
from certplane_server import http_request, parse_rfc3339


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def test_healthz(server):
    status, _, _ = http_request(server.url, "GET", "/healthz")
    assert status == 200


def test_describe_timestamps_are_json_numbers(server, iot, iot_b):
    cid = iot.create_keys_and_certificate()["certificateId"]
    iot.transfer_certificate(certificateId=cid, targetAwsAccount="222222222222", transferMessage="x")
    resp = signed_request(server.url, "GET", f"/certificates/{cid}")
    assert resp.status == 200, resp.body
    assert resp.headers.get("content-type", "").startswith("application/json")
    assert resp.headers.get("x-amzn-requestid"), "x-amzn-RequestId header missing"
    desc = resp.json()["certificateDescription"]
    for key in ("creationDate", "lastModifiedDate"):
        assert is_number(desc[key]), f"{key} must be epoch seconds (JSON number), got {desc[key]!r}"
    assert is_number(desc["validity"]["notBefore"]) and is_number(desc["validity"]["notAfter"])
    assert is_number(desc["transferData"]["transferDate"])
    now = server.clock().timestamp()
    assert abs(desc["creationDate"] - now) < 120, "creationDate must be seconds, not milliseconds"

    listing = signed_request(server.url, "GET", "/certificates-out-going").json()
    assert is_number(listing["outgoingCertificates"][0]["transferDate"])
    assert is_number(listing["outgoingCertificates"][0]["creationDate"])
    listing = signed_request(server.url, "GET", "/certificates?pageSize=1").json()
    assert is_number(listing["certificates"][0]["creationDate"])


def test_error_wire_format(server):
    resp = signed_request(server.url, "GET", "/certificates/" + "ab" * 32)
    assert resp.status == 404
    assert resp.headers.get("x-amzn-errortype", "").split(":")[0] == "ResourceNotFoundException"
    assert resp.headers.get("content-type", "").startswith("application/json")
    assert resp.headers.get("x-amzn-requestid"), "x-amzn-RequestId header missing on errors"
    body = resp.json()
    assert isinstance(body.get("message"), str) and body["message"]


def test_resource_already_exists_body_carries_resource(server, iot):
    created = iot.create_keys_and_certificate()
    resp = signed_request(server.url, "POST", "/certificate/register-no-ca",
                          json.dumps({"certificatePem": created["certificatePem"]}),
                          {"Content-Type": "application/json"})
    assert resp.status == 409
    assert resp.error_code == "ResourceAlreadyExistsException"
    body = resp.json()
    assert body.get("resourceId") == created["certificateId"]
    assert body.get("resourceArn") == created["certificateArn"]


def test_malformed_json_body_is_a_4xx_json_error(server):
    resp = signed_request(server.url, "POST", "/certificates",
                          b'{"certificateSigningRequest": "abc', {"Content-Type": "application/json"})
    assert 400 <= resp.status < 500, (resp.status, resp.body[:200])
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str)
    assert resp.error_code, "error code missing (x-amzn-ErrorType header or body code/__type)"


def test_wrong_json_type_is_a_4xx(server):
    resp = signed_request(server.url, "POST", "/certificates",
                          b'{"certificateSigningRequest": 42}', {"Content-Type": "application/json"})
    assert 400 <= resp.status < 500, (resp.status, resp.body[:200])
    resp.json()


@pytest.mark.parametrize("call", ["list_jobs", "list_dimensions", "list_role_aliases"])
def test_unimplemented_operation_is_a_4xx_client_error(iot, call):
    with pytest.raises(ClientError) as ei:
        getattr(iot, call)()
    status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, f"{call}: HTTP {status} {ei.value.response['Error']}"
    assert ei.value.response["Error"]["Code"] not in ("500", "InternalFailureException")


def test_unknown_route_is_json_not_html(server):
    for method, path in [("GET", "/jobs"), ("GET", "/definitely/not/a/route"), ("DELETE", "/certificates")]:
        resp = signed_request(server.url, method, path)
        assert 400 <= resp.status < 500, (method, path, resp.status)
        assert not resp.body.lstrip().lower().startswith(b"<"), f"{method} {path}: HTML error body"
        if resp.body:
            resp.json()


def test_too_long_id_is_never_a_500(server):
    for method, path in [("GET", "/certificates/" + "a" * 70), ("PATCH", "/cancel-certificate-transfer/" + "b" * 70),
                         ("GET", "/cacertificate/" + "c" * 70), ("PUT", "/certificates/" + "d" * 70 + "?newStatus=ACTIVE")]:
        resp = signed_request(server.url, method, path)
        assert resp.status == 400, (method, path, resp.status, resp.body[:200])
        assert resp.error_code == "InvalidRequestException"


def test_principal_header_with_encoded_arn_path(server, iot):
    """ListAttachedPolicies sends the target ARN in the path with %3A / %2F; the signature uses
    the double-encoded canonical URI."""
    created = iot.create_keys_and_certificate()
    iot.create_policy(policyName="enc", policyDocument='{"Version":"2012-10-17","Statement":[]}')
    iot.attach_policy(policyName="enc", target=created["certificateArn"])
    got = iot.list_attached_policies(target=created["certificateArn"], recursive=False, pageSize=10)
    assert [p["policyName"] for p in got["policies"]] == ["enc"]


def test_empty_body_ops_accept_empty_body(server, iot):
    cid = iot.create_keys_and_certificate()["certificateId"]
    iot.transfer_certificate(certificateId=cid, targetAwsAccount="222222222222")
    # botocore sends CancelCertificateTransfer with an empty body and Content-Length: 0
    resp = signed_request(server.url, "PATCH", f"/cancel-certificate-transfer/{cid}")
    assert resp.status == 200, resp.body
    assert iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "INACTIVE"


# --- dev clock ---------------------------------------------------------------------------------------

def test_dev_clock_shapes(server, iot):
    status, headers, body = http_request(server.url, "GET", "/dev/clock")
    assert status == 200
    doc = json.loads(body)
    assert set(doc) >= {"now"}
    before = parse_rfc3339(doc["now"])
    real = dt.datetime.now(dt.timezone.utc)
    assert abs((before - real).total_seconds()) < 15 * 60

    status, _, body = http_request(server.url, "POST", "/dev/clock",
                                   json.dumps({"advanceSeconds": 90}).encode(),
                                   {"Content-Type": "application/json"})
    assert status == 200
    after = parse_rfc3339(json.loads(body)["now"])
    delta = (after - before).total_seconds()
    assert 90 <= delta < 90 + 30, delta
    assert (server.clock() - after).total_seconds() >= 0

    # server time drives resource timestamps
    cid = iot.create_keys_and_certificate()["certificateId"]
    created = iot.describe_certificate(certificateId=cid)["certificateDescription"]["creationDate"]
    assert abs((created - after).total_seconds()) < 30, (created, after)


def test_dev_clock_rejects_bad_body(server):
    status, _, _ = http_request(server.url, "POST", "/dev/clock", b"not json",
                                {"Content-Type": "application/json"})
    assert 400 <= status < 500


def test_reset_clears_state(server, iot):
    iot.create_keys_and_certificate()
    iot.create_thing(thingName="gone")
    server.reset()
    assert iot.list_certificates()["certificates"] == []
    assert iot.list_things()["things"] == []


# --- malformed requests never produce a 5xx ----------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("GET", "/certificates?pageSize=abc", None),
    ("GET", "/certificates?pageSize=-1", None),
    ("GET", "/certificates?pageSize=0", None),
    ("GET", "/certificates?pageSize=99999999999999999999", None),
    ("GET", "/cacertificates?pageSize=abc", None),
    ("POST", "/certificates", b"[]"),
    ("POST", "/certificates", b"null"),
    ("POST", "/certificates", b"{}"),
    ("POST", "/cacertificate", b'{"caCertificate": ""}'),
    ("POST", "/certificate/register", b'{"certificatePem": ["x"]}'),
    ("PATCH", "/transfer-certificate/" + "ab" * 32, b"{}"),
    ("PUT", "/certificates/" + "ab" * 32, None),
])
def test_invalid_requests_are_4xx(server, method, path, body):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    resp = signed_request(server.url, method, path, body, headers)
    assert 400 <= resp.status < 500, (method, path, resp.status, resp.body[:200])
    assert resp.error_code, "error code missing"
    resp.json()


@pytest.mark.parametrize("path", [
    "/certificates?marker=%21%21not-a-marker%21%21",
    "/certificates?marker=" + "QUFB" * 300,
    "/certificates?isAscendingOrder=maybe",
    "/certificates-out-going?marker=ZZZZ",
    "/cacertificates?marker=AAAA",
    "/certificates/%ZZ",
])
def test_odd_query_values_never_5xx(server, path):
    resp = signed_request(server.url, "GET", path)
    assert resp.status < 500, (path, resp.status, resp.body[:200])


def test_oversized_body_is_rejected_not_crashing(server):
    body = json.dumps({"certificatePem": "A" * (2 * 1024 * 1024)}).encode()
    resp = signed_request(server.url, "POST", "/certificate/register-no-ca", body,
                          {"Content-Type": "application/json"})
    assert 400 <= resp.status < 500, (resp.status, resp.body[:200])


def test_certificate_pem_over_model_limit(iot):
    op = iot.meta.service_model.operation_model("RegisterCertificateWithoutCA")
    modeled = {s.name for s in op.error_shapes} - {"InternalFailureException", "ServiceUnavailableException"}
    with expect_4xx(modeled):
        iot.register_certificate_without_ca(certificatePem="-----BEGIN CERTIFICATE-----\n"
                                            + "A" * 70000 + "\n-----END CERTIFICATE-----\n")


def test_page_size_upper_bound_is_accepted(iot):
    iot.create_keys_and_certificate()
    assert len(iot.list_certificates(pageSize=250)["certificates"]) == 1
