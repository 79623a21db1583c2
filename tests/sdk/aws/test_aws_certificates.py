"""Device certificates: create, CSR, register, describe, list, update, delete (spec §3, §4, §11.1, §11.3, §13)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aws_harness import (
    ACCOUNT_A,
    HEX64,
    MARKER_RE,
    all_certificate_ids,
    as_utc,
    cert_arn,
    close_to,
    expect_4xx,
    expect_error,
    openssl_verify,
    status_of,
)
from aws_x509 import (
    cert_id_of,
    load_pem,
    make_ca,
    make_csr,
    make_csr_with_broken_signature,
    make_leaf,
    new_key,
    public_der,
)

DESCRIPTION_KEYS = {
    "certificateArn", "certificateId", "status", "certificatePem", "ownedBy", "creationDate",
    "lastModifiedDate", "customerVersion", "transferData", "generationId", "validity",
    "certificateMode",
}
LIST_ITEM_KEYS = {"certificateArn", "certificateId", "status", "certificateMode", "creationDate"}
UNKNOWN_ID = "ab" * 32


def create(iot, active=False):
    return iot.create_keys_and_certificate(setAsActive=active)


# --- CreateKeysAndCertificate -------------------------------------------------------------------

def test_create_keys_and_certificate_active_shape(iot):
    resp = iot.create_keys_and_certificate(setAsActive=True)
    cid = resp["certificateId"]
    assert HEX64.match(cid), cid
    assert resp["certificateArn"] == cert_arn(cid)
    pem = resp["certificatePem"]
    assert pem.lstrip().startswith("-----BEGIN CERTIFICATE-----")
    cert = load_pem(pem)
    assert cert_id_of(pem) == cid, "certificateId must be the hex SHA-256 of the DER certificate"

    pub_pem = resp["keyPair"]["PublicKey"]
    priv_pem = resp["keyPair"]["PrivateKey"]
    assert "-----BEGIN PUBLIC KEY-----" in pub_pem, "PublicKey must be SPKI PEM"
    assert "-----BEGIN RSA PRIVATE KEY-----" in priv_pem, "PrivateKey must be PKCS#1 PEM"
    pub = serialization.load_pem_public_key(pub_pem.encode())
    priv = serialization.load_pem_private_key(priv_pem.encode(), password=None)
    assert isinstance(priv, rsa.RSAPrivateKey) and priv.key_size == 2048
    assert public_der(pub) == public_der(cert) == public_der(priv)

    assert status_of(iot, cid) == "ACTIVE"


def test_create_keys_and_certificate_default_inactive(iot):
    resp = iot.create_keys_and_certificate()
    assert status_of(iot, resp["certificateId"]) == "INACTIVE"
    resp = iot.create_keys_and_certificate(setAsActive=False)
    assert status_of(iot, resp["certificateId"]) == "INACTIVE"


def test_each_create_yields_a_new_certificate_and_key(iot):
    a, b = create(iot), create(iot)
    assert a["certificateId"] != b["certificateId"]
    assert a["keyPair"]["PrivateKey"] != b["keyPair"]["PrivateKey"]


def test_issued_certificate_verifies_against_server_ca_with_openssl(server, iot, tmp_path):
    assert server.ca_pem_path.is_file(), f"{server.ca_pem_path} missing"
    resp = create(iot, active=True)
    res = openssl_verify(server.ca_pem_path, resp["certificatePem"], tmp_path, server.clock())
    assert res.returncode == 0 and ": OK" in res.stdout, res.stdout + res.stderr


# --- CreateCertificateFromCsr --------------------------------------------------------------------

def test_create_from_csr_set_as_active_false_is_inactive(iot):
    csr, key = make_csr()
    resp = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=False)
    cid = resp["certificateId"]
    assert HEX64.match(cid)
    assert resp["certificateArn"] == cert_arn(cid)
    assert cert_id_of(resp["certificatePem"]) == cid
    assert public_der(load_pem(resp["certificatePem"])) == public_der(key), \
        "issued certificate must carry the CSR's public key"
    assert status_of(iot, cid) == "INACTIVE"


def test_create_from_csr_set_as_active_true_and_default(iot):
    csr, _ = make_csr()
    active = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    assert status_of(iot, active["certificateId"]) == "ACTIVE"
    default = iot.create_certificate_from_csr(certificateSigningRequest=csr)
    assert status_of(iot, default["certificateId"]) == "INACTIVE"


def test_create_from_same_csr_twice_gives_distinct_certificates(iot):
    csr, _ = make_csr()
    one = iot.create_certificate_from_csr(certificateSigningRequest=csr)
    two = iot.create_certificate_from_csr(certificateSigningRequest=csr)
    assert one["certificateId"] != two["certificateId"]
    assert {one["certificateId"], two["certificateId"]} <= set(all_certificate_ids(iot))


def test_create_from_ec_p256_csr(iot):
    csr, key = make_csr(new_key("ec"))
    resp = iot.create_certificate_from_csr(certificateSigningRequest=csr)
    assert public_der(load_pem(resp["certificatePem"])) == public_der(key)


def test_csr_certificate_verifies_against_server_ca_with_openssl(server, iot, tmp_path):
    csr, _ = make_csr()
    resp = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    res = openssl_verify(server.ca_pem_path, resp["certificatePem"], tmp_path, server.clock())
    assert res.returncode == 0 and ": OK" in res.stdout, res.stdout + res.stderr


def test_create_from_rsa1024_csr_is_refused(iot):
    csr, _ = make_csr(new_key("rsa", 1024))
    before = all_certificate_ids(iot)
    with expect_error(iot, "InvalidRequestException"):
        iot.create_certificate_from_csr(certificateSigningRequest=csr)
    assert all_certificate_ids(iot) == before


def test_create_from_csr_with_broken_signature_is_refused(iot):
    with expect_error(iot, "InvalidRequestException"):
        iot.create_certificate_from_csr(certificateSigningRequest=make_csr_with_broken_signature())
    assert all_certificate_ids(iot) == []


def test_create_from_garbage_csr_is_refused(iot):
    with expect_error(iot, "InvalidRequestException"):
        iot.create_certificate_from_csr(certificateSigningRequest="this is not a CSR")


# --- RegisterCertificateWithoutCA and re-registration ------------------------------------------

def test_register_without_ca_is_sni_only(iot):
    other_ca = make_ca()  # never registered
    device = make_leaf(other_ca)
    resp = iot.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    assert resp["certificateId"] == device.cert_id
    assert resp["certificateArn"] == cert_arn(device.cert_id)
    desc = iot.describe_certificate(certificateId=device.cert_id)["certificateDescription"]
    assert desc["certificateMode"] == "SNI_ONLY"
    assert desc["status"] == "ACTIVE"
    assert "caCertificateId" not in desc
    assert load_pem(desc["certificatePem"]) == device.cert


def test_register_without_ca_status_inactive(iot):
    device = make_leaf(make_ca())
    iot.register_certificate_without_ca(certificatePem=device.pem, status="INACTIVE")
    assert status_of(iot, device.cert_id) == "INACTIVE"


def test_register_pem_of_deleted_certificate_gives_same_id_then_conflict(iot):
    created = create(iot)
    cid, pem = created["certificateId"], created["certificatePem"]
    iot.delete_certificate(certificateId=cid)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_certificate(certificateId=cid)

    again = iot.register_certificate_without_ca(certificatePem=pem, status="INACTIVE")
    assert again["certificateId"] == cid

    with expect_error(iot, "ResourceAlreadyExistsException") as ei:
        iot.register_certificate_without_ca(certificatePem=pem, status="INACTIVE")
    assert ei.value.response.get("resourceId") == cid
    assert ei.value.response.get("resourceArn") == cert_arn(cid)


def test_register_existing_issued_certificate_conflicts(iot):
    created = create(iot)
    with expect_error(iot, "ResourceAlreadyExistsException") as ei:
        iot.register_certificate_without_ca(certificatePem=created["certificatePem"])
    assert ei.value.response.get("resourceId") == created["certificateId"]


def test_register_non_pem_is_a_modeled_4xx(iot):
    op = iot.meta.service_model.operation_model("RegisterCertificateWithoutCA")
    modeled = {s.name for s in op.error_shapes}
    with expect_4xx(modeled - {"InternalFailureException", "ServiceUnavailableException"}):
        iot.register_certificate_without_ca(certificatePem="definitely not a certificate")
    op = iot.meta.service_model.operation_model("RegisterCertificate")
    modeled = {s.name for s in op.error_shapes}
    with expect_4xx(modeled - {"InternalFailureException", "ServiceUnavailableException"}):
        iot.register_certificate(certificatePem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# --- DescribeCertificate -------------------------------------------------------------------------

def test_describe_certificate_full_shape(server, iot):
    resp = create(iot, active=True)
    cid = resp["certificateId"]
    now = server.clock()
    desc = iot.describe_certificate(certificateId=cid)["certificateDescription"]
    missing = DESCRIPTION_KEYS - set(desc)
    assert not missing, f"missing keys: {sorted(missing)}"
    assert desc["certificateArn"] == cert_arn(cid)
    assert desc["certificateId"] == cid
    assert desc["status"] == "ACTIVE"
    assert load_pem(desc["certificatePem"]) == load_pem(resp["certificatePem"])
    assert desc["ownedBy"] == ACCOUNT_A
    assert "previousOwnedBy" not in desc
    assert "caCertificateId" not in desc
    assert desc["certificateMode"] == "DEFAULT"
    assert isinstance(desc["customerVersion"], int) and desc["customerVersion"] >= 1
    assert isinstance(desc["generationId"], str) and desc["generationId"]
    assert isinstance(desc["transferData"], dict)
    for key in ("creationDate", "lastModifiedDate"):
        assert isinstance(desc[key], dt.datetime), key
        assert close_to(desc[key], now, 120), f"{key}={desc[key]} far from server clock {now}"
    assert as_utc(desc["lastModifiedDate"]) >= as_utc(desc["creationDate"])

    cert = load_pem(resp["certificatePem"])
    validity = desc["validity"]
    assert isinstance(validity["notBefore"], dt.datetime)
    assert isinstance(validity["notAfter"], dt.datetime)
    assert close_to(validity["notBefore"], cert.not_valid_before_utc), (validity, cert.not_valid_before_utc)
    assert close_to(validity["notAfter"], cert.not_valid_after_utc), (validity, cert.not_valid_after_utc)


def test_describe_registered_certificate_validity_matches_x509(iot):
    ca = make_ca()
    nb = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    na = dt.datetime(2031, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)
    device = make_leaf(ca, not_before=nb, not_after=na)
    iot.register_certificate_without_ca(certificatePem=device.pem, status="INACTIVE")
    validity = iot.describe_certificate(certificateId=device.cert_id)["certificateDescription"]["validity"]
    assert close_to(validity["notBefore"], nb) and close_to(validity["notAfter"], na), validity


def test_describe_unknown_certificate_is_not_found(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_certificate(certificateId=UNKNOWN_ID)


def test_other_account_cannot_see_certificate(iot, iot_b):
    cid = create(iot)["certificateId"]
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_certificate(certificateId=cid)
    assert cid not in all_certificate_ids(iot_b)
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.update_certificate(certificateId=cid, newStatus="ACTIVE")
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.delete_certificate(certificateId=cid)
    assert status_of(iot, cid) == "INACTIVE"


def test_seventy_char_certificate_id_is_invalid_request(iot_novalidate):
    bad = "a" * 70
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.describe_certificate(certificateId=bad)
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.update_certificate(certificateId=bad, newStatus="INACTIVE")
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.delete_certificate(certificateId=bad)


def test_non_hex_certificate_id_is_a_4xx(iot_novalidate):
    with expect_4xx({"InvalidRequestException", "ResourceNotFoundException"}):
        iot_novalidate.describe_certificate(certificateId="z" * 64)


# --- ListCertificates ---------------------------------------------------------------------------

def create_spaced(server, iot, n):
    """Create n certificates with strictly increasing creation dates (dev clock +1s each)."""
    ids = []
    for _ in range(n):
        ids.append(create(iot)["certificateId"])
        server.advance(1)
    return ids


def test_list_certificates_pages_of_two(server, iot):
    created = create_spaced(server, iot, 5)
    pages, marker = [], None
    for _ in range(10):
        kwargs = {"pageSize": 2, "ascendingOrder": True}
        if marker:
            kwargs["marker"] = marker
        resp = iot.list_certificates(**kwargs)
        pages.append(resp["certificates"])
        marker = resp.get("nextMarker")
        if not marker:
            break
        assert MARKER_RE.match(marker), f"nextMarker {marker!r} does not match the model's Marker pattern"
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [c["certificateId"] for p in pages for c in p]
    assert ids == created, "ascending pages must return creation order without gaps or repeats"
    for item in (c for p in pages for c in p):
        assert LIST_ITEM_KEYS <= set(item), item
        assert item["certificateArn"] == cert_arn(item["certificateId"])
        assert item["status"] == "INACTIVE"
        assert item["certificateMode"] == "DEFAULT"
        assert isinstance(item["creationDate"], dt.datetime)


def test_list_certificates_last_page_has_no_marker(server, iot):
    create_spaced(server, iot, 2)
    resp = iot.list_certificates(pageSize=2)
    assert len(resp["certificates"]) == 2
    assert "nextMarker" not in resp
    assert "nextMarker" not in iot.list_certificates()


def test_list_certificates_paginator_returns_all(server, iot):
    created = create_spaced(server, iot, 5)
    result = iot.get_paginator("list_certificates").paginate(
        PaginationConfig={"PageSize": 2}).build_full_result()
    ids = [c["certificateId"] for c in result["certificates"]]
    assert sorted(ids) == sorted(created) and len(ids) == 5


def test_list_certificates_ascending_vs_descending(server, iot):
    created = create_spaced(server, iot, 4)
    asc = [c["certificateId"] for c in iot.list_certificates(ascendingOrder=True)["certificates"]]
    desc = [c["certificateId"] for c in iot.list_certificates(ascendingOrder=False)["certificates"]]
    assert asc == created
    assert desc == list(reversed(created))
    paged_desc = [c["certificateId"] for c in iot.get_paginator("list_certificates").paginate(
        ascendingOrder=False, PaginationConfig={"PageSize": 3}).build_full_result()["certificates"]]
    assert paged_desc == list(reversed(created))


def test_list_certificates_empty(iot):
    resp = iot.list_certificates()
    assert resp["certificates"] == []
    assert "nextMarker" not in resp


def test_list_certificates_page_size_over_limit_is_invalid(iot_novalidate):
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.list_certificates(pageSize=251)


def test_list_certificates_reflects_status(iot):
    cid = create(iot, active=True)["certificateId"]
    items = {c["certificateId"]: c for c in iot.list_certificates()["certificates"]}
    assert items[cid]["status"] == "ACTIVE"


# --- Region scoping and session tokens ------------------------------------------------------------

def test_region_scoping(iot, make_iot):
    us_id = create(iot)["certificateId"]
    eu = make_iot(ACCOUNT_A, region="eu-west-1")
    assert us_id not in all_certificate_ids(eu)
    with expect_error(eu, "ResourceNotFoundException"):
        eu.describe_certificate(certificateId=us_id)
    eu_resp = eu.create_keys_and_certificate(setAsActive=True)
    eu_id = eu_resp["certificateId"]
    assert eu_resp["certificateArn"] == cert_arn(eu_id, region="eu-west-1")
    desc = eu.describe_certificate(certificateId=eu_id)["certificateDescription"]
    assert desc["certificateArn"].startswith("arn:aws:iot:eu-west-1:111111111111:cert/")
    assert all_certificate_ids(eu) == [eu_id]
    assert eu_id not in all_certificate_ids(iot)


def test_session_token_client_in_other_region(make_iot):
    client = make_iot(ACCOUNT_A, region="ap-southeast-2", session_token="FwoGZXIvYXdzEXAMPLETOKEN")
    resp = client.create_keys_and_certificate()
    assert resp["certificateArn"] == cert_arn(resp["certificateId"], region="ap-southeast-2")
    assert all_certificate_ids(client) == [resp["certificateId"]]


# --- UpdateCertificate -----------------------------------------------------------------------------

def test_update_certificate_transitions(server, iot):
    cid = create(iot)["certificateId"]
    created = iot.describe_certificate(certificateId=cid)["certificateDescription"]
    server.advance(5)
    assert iot.update_certificate(certificateId=cid, newStatus="ACTIVE")["ResponseMetadata"]["HTTPStatusCode"] == 200
    desc = iot.describe_certificate(certificateId=cid)["certificateDescription"]
    assert desc["status"] == "ACTIVE"
    assert as_utc(desc["lastModifiedDate"]) > as_utc(created["lastModifiedDate"]), \
        "lastModifiedDate must move when the status changes"
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    assert status_of(iot, cid) == "INACTIVE"


def test_update_certificate_same_status_twice_is_ok(iot):
    cid = create(iot)["certificateId"]
    iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert status_of(iot, cid) == "ACTIVE"
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    assert status_of(iot, cid) == "INACTIVE"


@pytest.mark.parametrize("target", ["PENDING_TRANSFER", "PENDING_ACTIVATION"])
def test_update_certificate_to_internal_status_is_refused(iot, target):
    cid = create(iot)["certificateId"]
    with expect_4xx({"InvalidRequestException", "CertificateStateException"}):
        iot.update_certificate(certificateId=cid, newStatus=target)
    assert status_of(iot, cid) == "INACTIVE"


@pytest.mark.parametrize("later", ["ACTIVE", "INACTIVE"])
def test_revoked_is_final(iot, later):
    cid = create(iot, active=True)["certificateId"]
    iot.update_certificate(certificateId=cid, newStatus="REVOKED")
    assert status_of(iot, cid) == "REVOKED"
    with expect_error(iot, "CertificateStateException"):
        iot.update_certificate(certificateId=cid, newStatus=later)
    assert status_of(iot, cid) == "REVOKED"


def test_update_certificate_bad_enum_is_invalid_request(iot_novalidate):
    cid = iot_novalidate.create_keys_and_certificate()["certificateId"]
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.update_certificate(certificateId=cid, newStatus="BOGUS")
    assert status_of(iot_novalidate, cid) == "INACTIVE"


def test_update_unknown_certificate_is_not_found(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_certificate(certificateId=UNKNOWN_ID, newStatus="ACTIVE")


# --- DeleteCertificate ------------------------------------------------------------------------------

@pytest.mark.parametrize("force", [False, True])
def test_delete_active_certificate_is_refused(iot, force):
    cid = create(iot, active=True)["certificateId"]
    with expect_error(iot, "CertificateStateException", 406):
        iot.delete_certificate(certificateId=cid, forceDelete=force)
    assert status_of(iot, cid) == "ACTIVE"


def test_delete_inactive_certificate(iot):
    cid = create(iot)["certificateId"]
    resp = iot.delete_certificate(certificateId=cid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_certificate(certificateId=cid)
    assert cid not in all_certificate_ids(iot)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.delete_certificate(certificateId=cid)


def test_delete_revoked_certificate(iot):
    cid = create(iot)["certificateId"]
    iot.update_certificate(certificateId=cid, newStatus="REVOKED")
    iot.delete_certificate(certificateId=cid)
    assert cid not in all_certificate_ids(iot)


@pytest.mark.parametrize("force", [False, True])
def test_delete_with_thing_attached_conflicts(iot, force):
    resp = create(iot)
    iot.create_thing(thingName="dev-thing")
    iot.attach_thing_principal(thingName="dev-thing", principal=resp["certificateArn"])
    with expect_error(iot, "DeleteConflictException", 409):
        iot.delete_certificate(certificateId=resp["certificateId"], forceDelete=force)
    assert status_of(iot, resp["certificateId"]) == "INACTIVE"
    iot.detach_thing_principal(thingName="dev-thing", principal=resp["certificateArn"])
    iot.delete_certificate(certificateId=resp["certificateId"])
    assert resp["certificateId"] not in all_certificate_ids(iot)


def test_delete_with_policy_attached_needs_force(iot):
    resp = create(iot)
    iot.create_policy(policyName="p1", policyDocument='{"Version":"2012-10-17","Statement":[]}')
    iot.attach_policy(policyName="p1", target=resp["certificateArn"])
    with expect_error(iot, "DeleteConflictException", 409):
        iot.delete_certificate(certificateId=resp["certificateId"])
    assert status_of(iot, resp["certificateId"]) == "INACTIVE"
    iot.delete_certificate(certificateId=resp["certificateId"], forceDelete=True)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_certificate(certificateId=resp["certificateId"])


def test_delete_unknown_certificate_is_not_found(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.delete_certificate(certificateId=UNKNOWN_ID)


def test_ca_certificates_are_not_listed_as_device_certificates(iot, ca_material):
    _, ca_id = ca_material
    assert ca_id not in all_certificate_ids(iot)


def test_list_certificates_paging_with_equal_creation_times(iot):
    """No clock movement between creates: ties in creationDate must not break paging."""
    created = {create(iot)["certificateId"] for _ in range(7)}
    for ascending in (True, False):
        seen, marker, markers = [], None, set()
        for _ in range(10):
            kwargs = {"pageSize": 2, "ascendingOrder": ascending}
            if marker:
                kwargs["marker"] = marker
            resp = iot.list_certificates(**kwargs)
            seen.extend(c["certificateId"] for c in resp["certificates"])
            marker = resp.get("nextMarker")
            if not marker:
                break
            assert marker not in markers, "nextMarker repeated"
            markers.add(marker)
        assert len(seen) == 7 and set(seen) == created, seen
