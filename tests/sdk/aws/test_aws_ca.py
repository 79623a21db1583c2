"""CA certificates, registration codes and CA-signed device certificates (spec §3, §4.2, §11.4, §13 #13-20)."""

from __future__ import annotations

import datetime as dt

import pytest

from aws_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    HEX64,
    MARKER_RE,
    REGION,
    all_certificate_ids,
    cert_arn,
    close_to,
    expect_4xx,
    expect_error,
    status_of,
)
from aws_x509 import (
    load_pem,
    make_ca,
    make_leaf,
    make_self_signed,
    make_verification_cert,
    new_key,
)

CA_DESCRIPTION_KEYS = {
    "certificateArn", "certificateId", "status", "certificatePem", "ownedBy", "creationDate",
    "autoRegistrationStatus", "lastModifiedDate", "customerVersion", "generationId", "validity",
    "certificateMode",
}
CA_LIST_ITEM_KEYS = {"certificateArn", "certificateId", "status", "creationDate"}
UNKNOWN_ID = "cd" * 32


def ca_arn(cert_id, account=ACCOUNT_A, region=REGION):
    return f"arn:aws:iot:{region}:{account}:cacert/{cert_id}"


def register_ca(iot, ca=None, **kwargs):
    ca = ca or make_ca()
    code = iot.get_registration_code()["registrationCode"]
    resp = iot.register_ca_certificate(
        caCertificate=ca.pem, verificationCertificate=make_verification_cert(ca, code).pem, **kwargs
    )
    return ca, resp


def describe_ca(iot, ca_id):
    return iot.describe_ca_certificate(certificateId=ca_id)


# --- Registration code ---------------------------------------------------------------------------

def test_registration_code_is_stable_until_deleted(iot):
    first = iot.get_registration_code()["registrationCode"]
    assert HEX64.match(first), first
    assert iot.get_registration_code()["registrationCode"] == first
    assert iot.get_registration_code()["registrationCode"] == first
    resp = iot.delete_registration_code()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    second = iot.get_registration_code()["registrationCode"]
    assert HEX64.match(second)
    assert second != first
    assert iot.get_registration_code()["registrationCode"] == second


def test_registration_code_is_per_account(iot, iot_b):
    assert iot.get_registration_code()["registrationCode"] != iot_b.get_registration_code()["registrationCode"]


def test_old_registration_code_no_longer_validates(iot):
    ca = make_ca()
    old = iot.get_registration_code()["registrationCode"]
    iot.delete_registration_code()
    with expect_error(iot, "RegistrationCodeValidationException"):
        iot.register_ca_certificate(caCertificate=ca.pem,
                                    verificationCertificate=make_verification_cert(ca, old).pem)


# --- RegisterCACertificate ----------------------------------------------------------------------

def test_register_ca_default_mode(server, iot):
    ca, resp = register_ca(iot)
    ca_id = resp["certificateId"]
    assert ca_id == ca.cert_id, "CA certificateId must be the SHA-256 of the DER"
    assert resp["certificateArn"] == ca_arn(ca_id)

    out = describe_ca(iot, ca_id)
    desc = out["certificateDescription"]
    missing = CA_DESCRIPTION_KEYS - set(desc)
    assert not missing, f"missing keys: {sorted(missing)}"
    assert "transferData" not in desc and "caCertificateId" not in desc
    assert desc["certificateArn"] == ca_arn(ca_id)
    assert desc["certificateId"] == ca_id
    assert desc["status"] == "INACTIVE"
    assert desc["autoRegistrationStatus"] == "DISABLE"
    assert desc["certificateMode"] == "DEFAULT"
    assert desc["ownedBy"] == ACCOUNT_A
    assert load_pem(desc["certificatePem"]) == ca.cert
    assert isinstance(desc["customerVersion"], int) and desc["customerVersion"] >= 1
    assert isinstance(desc["generationId"], str) and desc["generationId"]
    assert isinstance(desc["creationDate"], dt.datetime)
    assert isinstance(desc["lastModifiedDate"], dt.datetime)
    assert close_to(desc["creationDate"], server.clock(), 120)
    assert close_to(desc["validity"]["notBefore"], ca.cert.not_valid_before_utc)
    assert close_to(desc["validity"]["notAfter"], ca.cert.not_valid_after_utc)


def test_register_ca_rsa(iot):
    ca, resp = register_ca(iot, ca=make_ca(key=new_key("rsa", 2048)))
    assert resp["certificateId"] == ca.cert_id


def test_register_ca_active_with_auto_registration(iot):
    _, resp = register_ca(iot, setAsActive=True, allowAutoRegistration=True)
    desc = describe_ca(iot, resp["certificateId"])["certificateDescription"]
    assert desc["status"] == "ACTIVE"
    assert desc["autoRegistrationStatus"] == "ENABLE"


def test_register_ca_wrong_common_name(iot):
    ca = make_ca()
    iot.get_registration_code()
    wrong = make_verification_cert(ca, "0" * 64)
    with expect_error(iot, "RegistrationCodeValidationException", 400):
        iot.register_ca_certificate(caCertificate=ca.pem, verificationCertificate=wrong.pem)
    assert iot.list_ca_certificates()["certificates"] == []


def test_register_ca_verification_signed_by_other_key(iot):
    ca = make_ca()
    code = iot.get_registration_code()["registrationCode"]
    forged = make_verification_cert(ca, code, signing_key=new_key("ec"))
    with expect_4xx({"CertificateValidationException", "RegistrationCodeValidationException",
                     "InvalidRequestException"}):
        iot.register_ca_certificate(caCertificate=ca.pem, verificationCertificate=forged.pem)
    assert iot.list_ca_certificates()["certificates"] == []


def test_register_ca_default_mode_requires_verification_certificate(iot):
    with expect_4xx():
        iot.register_ca_certificate(caCertificate=make_ca().pem)
    assert iot.list_ca_certificates()["certificates"] == []


def test_register_ca_duplicate(iot):
    ca, resp = register_ca(iot)
    with expect_error(iot, "ResourceAlreadyExistsException", 409) as ei:
        register_ca(iot, ca=ca)
    assert ei.value.response.get("resourceId") == resp["certificateId"]
    assert ei.value.response.get("resourceArn") == resp["certificateArn"]


def test_register_ca_sni_only_without_verification(iot):
    ca = make_ca()
    resp = iot.register_ca_certificate(caCertificate=ca.pem, certificateMode="SNI_ONLY")
    assert resp["certificateId"] == ca.cert_id
    desc = describe_ca(iot, ca.cert_id)["certificateDescription"]
    assert desc["certificateMode"] == "SNI_ONLY"
    assert desc["status"] == "INACTIVE"


def test_register_ca_sni_only_with_verification_is_refused(iot):
    ca = make_ca()
    code = iot.get_registration_code()["registrationCode"]
    with expect_4xx():
        iot.register_ca_certificate(caCertificate=ca.pem, certificateMode="SNI_ONLY",
                                    verificationCertificate=make_verification_cert(ca, code).pem)


def test_default_mode_ca_is_registrable_by_one_account_sni_by_many(iot, iot_b):
    ca, _ = register_ca(iot)
    with expect_4xx():
        register_ca(iot_b, ca=ca)
    sni = make_ca()
    iot.register_ca_certificate(caCertificate=sni.pem, certificateMode="SNI_ONLY")
    iot_b.register_ca_certificate(caCertificate=sni.pem, certificateMode="SNI_ONLY")
    assert describe_ca(iot_b, sni.cert_id)["certificateDescription"]["ownedBy"] == ACCOUNT_B
    assert describe_ca(iot, sni.cert_id)["certificateDescription"]["ownedBy"] == ACCOUNT_A


def test_register_ca_non_pem_is_a_4xx(iot):
    with expect_4xx():
        iot.register_ca_certificate(caCertificate="not a pem", certificateMode="SNI_ONLY")


def test_register_ca_with_registration_config(iot):
    config = {"templateBody": '{"Resources": {}}', "roleArn": "arn:aws:iam::111111111111:role/JITPRole"}
    _, resp = register_ca(iot, registrationConfig=config, allowAutoRegistration=True)
    out = describe_ca(iot, resp["certificateId"])
    assert out.get("registrationConfig", {}).get("templateBody") == config["templateBody"]
    assert out["registrationConfig"].get("roleArn") == config["roleArn"]


# --- DescribeCACertificate / ListCACertificates ------------------------------------------------------

def test_describe_unknown_ca(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_ca_certificate(certificateId=UNKNOWN_ID)


def test_describe_ca_of_other_account(iot, iot_b):
    _, resp = register_ca(iot)
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_ca_certificate(certificateId=resp["certificateId"])
    assert iot_b.list_ca_certificates()["certificates"] == []


def test_list_ca_certificates_paging_and_order(server, iot):
    ids = []
    for _ in range(3):
        ids.append(register_ca(iot)[1]["certificateId"])
        server.advance(1)
    # device certificates must not show up
    iot.create_keys_and_certificate(setAsActive=True)

    pages, marker = [], None
    for _ in range(10):
        kwargs = {"pageSize": 2, "ascendingOrder": True}
        if marker:
            kwargs["marker"] = marker
        resp = iot.list_ca_certificates(**kwargs)
        pages.append(resp["certificates"])
        marker = resp.get("nextMarker")
        if not marker:
            break
        assert MARKER_RE.match(marker), marker
    assert [len(p) for p in pages] == [2, 1]
    items = [c for p in pages for c in p]
    assert [c["certificateId"] for c in items] == ids
    for item in items:
        assert CA_LIST_ITEM_KEYS <= set(item), item
        assert item["certificateArn"] == ca_arn(item["certificateId"])
        assert item["status"] in ("ACTIVE", "INACTIVE")
        assert isinstance(item["creationDate"], dt.datetime)

    desc = [c["certificateId"] for c in iot.list_ca_certificates(ascendingOrder=False)["certificates"]]
    assert desc == list(reversed(ids))
    full = iot.get_paginator("list_ca_certificates").paginate(
        PaginationConfig={"PageSize": 1}).build_full_result()["certificates"]
    assert sorted(c["certificateId"] for c in full) == sorted(ids)


# --- UpdateCACertificate --------------------------------------------------------------------------------

def test_update_ca_status_and_auto_registration(iot):
    _, resp = register_ca(iot)
    ca_id = resp["certificateId"]
    out = iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE",
                                    newAutoRegistrationStatus="ENABLE")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    desc = describe_ca(iot, ca_id)["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["autoRegistrationStatus"] == "ENABLE"
    items = {c["certificateId"]: c for c in iot.list_ca_certificates()["certificates"]}
    assert items[ca_id]["status"] == "ACTIVE"

    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    desc = describe_ca(iot, ca_id)["certificateDescription"]
    assert desc["status"] == "INACTIVE" and desc["autoRegistrationStatus"] == "ENABLE"
    iot.update_ca_certificate(certificateId=ca_id, newAutoRegistrationStatus="DISABLE")
    assert describe_ca(iot, ca_id)["certificateDescription"]["autoRegistrationStatus"] == "DISABLE"


def test_update_ca_registration_config_replaces(iot):
    _, resp = register_ca(iot, registrationConfig={"templateBody": '{"Resources": {}}'})
    ca_id = resp["certificateId"]
    new = {"templateBody": '{"Parameters": {}, "Resources": {}}',
           "roleArn": "arn:aws:iam::111111111111:role/NewRole"}
    iot.update_ca_certificate(certificateId=ca_id, registrationConfig=new)
    cfg = describe_ca(iot, ca_id).get("registrationConfig", {})
    assert cfg.get("templateBody") == new["templateBody"]
    assert cfg.get("roleArn") == new["roleArn"]


def test_update_ca_remove_auto_registration(iot):
    _, resp = register_ca(iot, allowAutoRegistration=True,
                          registrationConfig={"templateBody": '{"Resources": {}}'})
    out = iot.update_ca_certificate(certificateId=resp["certificateId"], removeAutoRegistration=True)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_update_ca_bad_status(iot_novalidate):
    _, resp = register_ca(iot_novalidate)
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.update_ca_certificate(certificateId=resp["certificateId"], newStatus="REVOKED_OR_WHATEVER")
    assert describe_ca(iot_novalidate, resp["certificateId"])["certificateDescription"]["status"] == "INACTIVE"


def test_update_unknown_ca(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.update_ca_certificate(certificateId=UNKNOWN_ID, newStatus="ACTIVE")


# --- DeleteCACertificate ---------------------------------------------------------------------------------

def test_delete_ca(iot):
    _, resp = register_ca(iot, setAsActive=True)
    ca_id = resp["certificateId"]
    with expect_error(iot, "CertificateStateException", 406):
        iot.delete_ca_certificate(certificateId=ca_id)
    assert describe_ca(iot, ca_id)["certificateDescription"]["status"] == "ACTIVE"
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    out = iot.delete_ca_certificate(certificateId=ca_id)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    with expect_error(iot, "ResourceNotFoundException"):
        describe_ca(iot, ca_id)
    assert iot.list_ca_certificates()["certificates"] == []
    with expect_error(iot, "ResourceNotFoundException"):
        iot.delete_ca_certificate(certificateId=ca_id)


# --- RegisterCertificate (with CA) and ListCertificatesByCA -----------------------------------------

def test_register_certificate_signed_by_registered_ca(iot, ca_material):
    ca, ca_id = ca_material
    device = make_leaf(ca)
    resp = iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem, setAsActive=True)
    assert resp["certificateId"] == device.cert_id
    assert resp["certificateArn"] == cert_arn(device.cert_id)
    desc = iot.describe_certificate(certificateId=device.cert_id)["certificateDescription"]
    assert desc["caCertificateId"] == ca_id
    assert desc["status"] == "ACTIVE"
    assert desc["certificateMode"] == "DEFAULT"
    assert desc["ownedBy"] == ACCOUNT_A
    assert load_pem(desc["certificatePem"]) == device.cert
    assert close_to(desc["validity"]["notAfter"], device.cert.not_valid_after_utc)


def test_register_certificate_finds_ca_without_ca_pem(iot, ca_material):
    ca, ca_id = ca_material
    device = make_leaf(ca)
    iot.register_certificate(certificatePem=device.pem, status="INACTIVE")
    desc = iot.describe_certificate(certificateId=device.cert_id)["certificateDescription"]
    assert desc["caCertificateId"] == ca_id
    assert desc["status"] == "INACTIVE"


@pytest.mark.parametrize("status", ["ACTIVE", "INACTIVE", "REVOKED"])
def test_register_certificate_status(iot, ca_material, status):
    ca, _ = ca_material
    device = make_leaf(ca)
    iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem, status=status)
    assert status_of(iot, device.cert_id) == status


def test_register_certificate_duplicate(iot, ca_material):
    ca, _ = ca_material
    device = make_leaf(ca)
    iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem)
    with expect_error(iot, "ResourceAlreadyExistsException") as ei:
        iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem)
    assert ei.value.response.get("resourceId") == device.cert_id


def test_list_certificates_by_ca(server, iot, ca_material):
    ca, ca_id = ca_material
    devices = []
    for _ in range(3):
        d = make_leaf(ca)
        iot.register_certificate(certificatePem=d.pem, caCertificatePem=ca.pem)
        devices.append(d.cert_id)
        server.advance(1)
    other = iot.create_keys_and_certificate()["certificateId"]
    sni = make_leaf(make_ca())
    iot.register_certificate_without_ca(certificatePem=sni.pem)

    listed = iot.list_certificates_by_ca(caCertificateId=ca_id, ascendingOrder=True)["certificates"]
    assert [c["certificateId"] for c in listed] == devices
    for item in listed:
        assert {"certificateArn", "certificateId", "status", "creationDate"} <= set(item)
        assert item["certificateArn"] == cert_arn(item["certificateId"])
    paged = iot.get_paginator("list_certificates_by_ca").paginate(
        caCertificateId=ca_id, PaginationConfig={"PageSize": 2}).build_full_result()["certificates"]
    assert sorted(c["certificateId"] for c in paged) == sorted(devices)
    first = iot.list_certificates_by_ca(caCertificateId=ca_id, pageSize=2)
    assert len(first["certificates"]) == 2 and first.get("nextMarker")
    assert other not in [c["certificateId"] for c in paged]
    assert set(devices) | {other, sni.cert_id} == set(all_certificate_ids(iot))


def test_register_certificate_inherits_sni_only_mode(iot):
    ca = make_ca()
    iot.register_ca_certificate(caCertificate=ca.pem, certificateMode="SNI_ONLY", setAsActive=True)
    device = make_leaf(ca)
    iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem, setAsActive=True)
    desc = iot.describe_certificate(certificateId=device.cert_id)["certificateDescription"]
    assert desc["certificateMode"] == "SNI_ONLY"
    assert desc["caCertificateId"] == ca.cert_id


def test_register_certificate_unregistered_ca(iot):
    stranger = make_ca()
    device = make_leaf(stranger)
    with expect_error(iot, "CertificateValidationException", 400):
        iot.register_certificate(certificatePem=device.pem, caCertificatePem=stranger.pem)
    with expect_error(iot, "CertificateValidationException", 400):
        iot.register_certificate(certificatePem=device.pem)
    assert all_certificate_ids(iot) == []


def test_register_certificate_not_signed_by_given_ca(iot, ca_material):
    ca, _ = ca_material
    impostor = make_leaf(ca, signing_key=new_key("ec"))  # issuer name says `ca`, signature doesn't
    with expect_error(iot, "CertificateValidationException", 400):
        iot.register_certificate(certificatePem=impostor.pem, caCertificatePem=ca.pem)
    assert all_certificate_ids(iot) == []


def test_register_certificate_with_ca_of_other_account(iot, iot_b, ca_material):
    ca, _ = ca_material
    device = make_leaf(ca)
    with expect_error(iot_b, "CertificateValidationException", 400):
        iot_b.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem)


def test_register_certificate_ambiguous_ca(iot):
    key = new_key("ec")
    ca1 = make_ca(cn="twin CA", key=key)
    ca2 = make_ca(cn="twin CA", key=key)
    assert ca1.cert_id != ca2.cert_id
    for ca in (ca1, ca2):
        iot.register_ca_certificate(caCertificate=ca.pem, certificateMode="SNI_ONLY", setAsActive=True)
    device = make_leaf(ca1)
    with expect_error(iot, "CertificateConflictException", 409):
        iot.register_certificate(certificatePem=device.pem)
    iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca2.pem)
    desc = iot.describe_certificate(certificateId=device.cert_id)["certificateDescription"]
    assert desc["caCertificateId"] == ca2.cert_id


def test_register_certificate_self_signed_without_ca(iot):
    cert = make_self_signed()
    iot.register_certificate_without_ca(certificatePem=cert.pem, status="ACTIVE")
    assert status_of(iot, cert.cert_id) == "ACTIVE"


def test_list_ca_certificates_by_template_pages_over_matches(iot):
    """templateName filters before the page is cut: pageSize counts matching CAs."""
    config = {"templateBody": '{"Resources": {}}', "templateName": "fleet-a"}
    wanted = []
    for i in range(4):
        _, resp = register_ca(iot, registrationConfig=config if i % 2 else {"templateBody": "{}"})
        if i % 2:
            wanted.append(resp["certificateId"])
    seen, marker = [], None
    while True:
        kw = {"marker": marker} if marker else {}
        page = iot.list_ca_certificates(templateName="fleet-a", pageSize=1, **kw)
        assert len(page["certificates"]) == 1, page
        seen += [c["certificateId"] for c in page["certificates"]]
        marker = page.get("nextMarker")
        if not marker:
            break
    assert sorted(seen) == sorted(wanted)
    with expect_error(iot, "InvalidRequestException", 400):
        iot.list_ca_certificates(templateName="bad name")
