"""OnsMqtt 2020-04-20 CA certificates through the official SDK: register codes, registration with
proof of possession, Get/List, activation, deletion, and the documented errors (each leaving the
state unchanged)."""

from __future__ import annotations

import pytest

from onsmqtt_harness import *  # noqa: F401,F403 (fixtures and helpers)
from onsmqtt_harness import (
    ACCOUNT_A, INSTANCE_A, INSTANCE_A2, M, check_request_id, expect_error, get_ca, list_cas,
    all_cas, make_ca, make_cert, ms, pem_of, register_ca, register_code, same_sn, der_sn,
    verification_for, mqtt_client,
)


def register(client, ca, code=None, name="mqtt_ca", instance=INSTANCE_A, verification=None):
    """RegisterCaCertificate with an explicit verification (default: a proof for `code`)."""
    if verification is None:
        verification = verification_for(ca, code if code is not None else register_code(client, instance))
    return client.register_ca_certificate(M.RegisterCaCertificateRequest(
        mqtt_instance_id=instance, ca_name=name, ca_content=ca.pem if hasattr(ca, "pem") else ca,
        verification_content=verification)).body


def assert_no_cas(client, instance=INSTANCE_A):
    data = list_cas(client, instance=instance)
    assert data.total == 0 and not data.ca_certificate_vos, data.to_map()


# --------------------------------------------------------------------------------------------
# GetRegisterCode


def test_register_code_is_stable_until_used(mqtt):
    a = register_code(mqtt)
    b = register_code(mqtt)
    assert a == b


def test_register_code_is_per_instance(mqtt):
    assert register_code(mqtt, INSTANCE_A) != register_code(mqtt, INSTANCE_A2)


def test_register_code_changes_after_registration(mqtt):
    ca = register_ca(mqtt)
    new = register_code(mqtt)
    assert new != ca.extra["code"]
    assert get_ca(mqtt, ca.extra["sn"]).registration_code == ca.extra["code"]
    # The new code proves the next CA; each CA shows the code it used.
    ca2 = register_ca(mqtt, ca=make_ca("second CA"))
    assert ca2.extra["code"] == new
    assert get_ca(mqtt, ca2.extra["sn"]).registration_code == new
    assert get_ca(mqtt, ca.extra["sn"]).registration_code == ca.extra["code"]


def test_register_code_both_signings(server, signing):
    client = mqtt_client(server, ACCOUNT_A, signing=signing)
    assert register_code(client) == register_code(mqtt_client(server, ACCOUNT_A))


# --------------------------------------------------------------------------------------------
# RegisterCaCertificate + GetCaCertificate


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_register_and_get(mqtt, key_type):
    ca = make_ca("Device Root CA", key_type=key_type)
    code = register_code(mqtt)
    verification = verification_for(ca, code)
    body = register(mqtt, ca, verification=verification, name="mqtt_ca")
    check_request_id(body)
    assert body.sn == ca.sn
    d = get_ca(mqtt, body.sn)
    assert d.sn == ca.sn
    assert d.ca_name == "mqtt_ca"
    assert d.status == "1"
    assert d.registration_code == code
    assert d.ca_content.strip() == ca.pem.strip()
    assert d.verification_content.strip() == verification.strip()
    assert d.valid_begin == ms(ca.cert.not_valid_before_utc)
    assert d.valid_end == ms(ca.cert.not_valid_after_utc)


def test_get_ca_wire_types(mqtt):
    """All Data fields are JSON strings (ValidBegin/ValidEnd epoch milliseconds)."""
    ca = register_ca(mqtt)
    raw = mqtt.get_ca_certificate(M.GetCaCertificateRequest(
        mqtt_instance_id=INSTANCE_A, sn=ca.extra["sn"])).body.to_map()
    data = raw["Data"]
    assert set(data) >= {"CaContent", "CaName", "RegistrationCode", "Sn", "Status",
                         "ValidBegin", "ValidEnd", "VerificationContent"}
    for k in ("CaContent", "CaName", "RegistrationCode", "Sn", "Status", "ValidBegin",
              "ValidEnd", "VerificationContent"):
        assert isinstance(data[k], str), (k, data[k])
    assert data["ValidBegin"].isdigit() and data["ValidEnd"].isdigit()
    assert len(data["ValidBegin"]) == 13


@pytest.mark.parametrize("serial", [
    0x7F,                       # one byte, high bit clear
    0x80,                       # high bit set: DER adds a 00 byte
    0x0ABC,                     # leading zero nibble: even-length hex
    0xFFEEDDCCBBAA99887766,     # high bit set, 10 bytes
    1,
])
def test_sn_is_der_serial_hex(mqtt, serial):
    ca = make_ca(serial=serial)
    body = register(mqtt, ca)
    assert body.sn == der_sn(serial)
    assert get_ca(mqtt, body.sn).sn == der_sn(serial)


def test_sn_lookup_ignores_case_and_leading_zeros(mqtt):
    ca = register_ca(mqtt, ca=make_ca(serial=0x80A1B2C3D4))
    sn = ca.extra["sn"]
    assert sn == "0080a1b2c3d4"
    for variant in (sn.upper(), sn.lstrip("0"), "0000" + sn, sn.lstrip("0").upper()):
        assert get_ca(mqtt, variant).sn == sn


def test_register_both_signings(server, signing):
    client = mqtt_client(server, ACCOUNT_A, signing=signing)
    ca = register_ca(client, name="CA name with spaces & symbols =+/ 中文")
    d = get_ca(client, ca.extra["sn"])
    assert d.ca_name == "CA name with spaces & symbols =+/ 中文"
    assert d.ca_content.strip() == ca.pem.strip()


def test_ca_name_128_characters_is_accepted(mqtt):
    name = "n" * 128
    ca = register_ca(mqtt, name=name)
    assert get_ca(mqtt, ca.extra["sn"]).ca_name == name


def test_intermediate_ca_can_be_registered(mqtt):
    root = make_ca("root")
    inter = make_ca("intermediate", issuer=root)
    ca = register_ca(mqtt, ca=inter)
    assert ca.extra["sn"] == inter.sn


def test_same_ca_in_another_instance_is_separate(mqtt):
    """A CA registered in one instance is not seen from another instance of the same account."""
    ca = register_ca(mqtt, INSTANCE_A)
    with expect_error("FindCaBySnError", 400):
        get_ca(mqtt, ca.extra["sn"], instance=INSTANCE_A2)
    assert_no_cas(mqtt, INSTANCE_A2)


# --------------------------------------------------------------------------------------------
# RegisterCaCertificate errors (and nothing changes)


def _unchanged(mqtt, code_before):
    assert_no_cas(mqtt)
    assert register_code(mqtt) == code_before, "a failed registration consumed the register code"


def test_wrong_register_code(mqtt):
    ca = make_ca()
    code = register_code(mqtt)
    with expect_error("RegisterCodeError", 400):
        register(mqtt, ca, code="0" * len(code))
    _unchanged(mqtt, code)


def test_register_code_of_another_instance(mqtt):
    ca = make_ca()
    code = register_code(mqtt, INSTANCE_A)
    other = register_code(mqtt, INSTANCE_A2)
    with expect_error("RegisterCodeError", 400):
        register(mqtt, ca, code=other)
    _unchanged(mqtt, code)
    assert register_code(mqtt, INSTANCE_A2) == other


def test_verification_without_common_name(mqtt):
    ca = make_ca()
    code = register_code(mqtt)
    with expect_error("RegisterCodeError", 400):
        register(mqtt, ca, verification=verification_for(ca, None))
    _unchanged(mqtt, code)


def test_used_register_code(mqtt):
    first = register_ca(mqtt)
    code_now = register_code(mqtt)
    ca = make_ca("second")
    with expect_error("RegisterCodeUsed", 401):
        register(mqtt, ca, code=first.extra["code"])
    assert [c.sn for c in all_cas(mqtt)] == [first.extra["sn"]]
    assert register_code(mqtt) == code_now


def test_racing_registrations_on_one_code(mqtt):
    """Two CAs proving the same code at once: one registers, the other is told the code is used."""
    import certplane_server
    code = register_code(mqtt)
    cas = [make_ca(f"racer {i}") for i in range(2)]
    proofs = [verification_for(ca, code) for ca in cas]
    results = certplane_server.race_threads(
        2, lambda i: register(mqtt, cas[i], verification=proofs[i]), Exception,
        lambda e: (getattr(e, "code", None), getattr(e, "status_code", None)))
    oks = [r for r in results if r[0] == "ok"]
    errs = [r[1] for r in results if r[0] == "err"]
    assert len(oks) == 1 and errs == [("RegisterCodeUsed", 401)], results
    assert len(all_cas(mqtt)) == 1


def test_used_register_code_is_refused(mqtt):
    """Whatever the code, a used register code proves nothing and changes nothing."""
    first = register_ca(mqtt)
    code_now = register_code(mqtt)
    with pytest.raises(Exception) as info:
        register(mqtt, make_ca("second"), code=first.extra["code"])
    assert getattr(info.value, "code", None) in ("RegisterCodeError", "RegisterCodeUsed")
    assert [c.sn for c in all_cas(mqtt)] == [first.extra["sn"]]
    assert register_code(mqtt) == code_now


def test_registered_twice(mqtt):
    ca = register_ca(mqtt)
    code = register_code(mqtt)
    with expect_error("SnNotUnique", 401):
        register(mqtt, ca, code=code)
    assert [c.sn for c in all_cas(mqtt)] == [ca.extra["sn"]]
    assert register_code(mqtt) == code, "a refused registration consumed the register code"


def test_registered_twice_even_when_inactive(mqtt):
    ca = register_ca(mqtt)
    mqtt.inactivate_ca_certificate(M.InactivateCaCertificateRequest(
        mqtt_instance_id=INSTANCE_A, sn=ca.extra["sn"]))
    with expect_error("SnNotUnique", 401):
        register(mqtt, ca)
    assert get_ca(mqtt, ca.extra["sn"]).status == "0"


@pytest.mark.parametrize("ca_flag", [False, None], ids=["ca-false", "no-basic-constraints"])
def test_not_a_ca(mqtt, ca_flag):
    ca = make_ca(ca=ca_flag)
    code = register_code(mqtt)
    with expect_error("CertificateContentError", 401):
        register(mqtt, ca, code=code)
    _unchanged(mqtt, code)


def test_verification_not_signed_by_ca_key(mqtt):
    ca = make_ca()
    impostor = make_ca("impostor")
    code = register_code(mqtt)
    with expect_error("CertificateContentError", 401):
        register(mqtt, ca, verification=verification_for(ca, code, signer_key=impostor.key))
    _unchanged(mqtt, code)


def test_verification_signed_by_another_ca(mqtt):
    ca = make_ca()
    other = make_ca("other")
    code = register_code(mqtt)
    with expect_error("CertificateContentError", 401):
        register(mqtt, ca, verification=verification_for(other, code))
    _unchanged(mqtt, code)


@pytest.mark.parametrize("field", ["CaContent", "VerificationContent"])
@pytest.mark.parametrize("garbage", [
    "not a certificate",
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
], ids=["text", "bad-der", "truncated"])
def test_garbage_pem(mqtt, field, garbage):
    ca = make_ca()
    code = register_code(mqtt)
    ca_pem = garbage if field == "CaContent" else ca.pem
    ver = garbage if field == "VerificationContent" else verification_for(ca, code)
    with expect_error("CertificateContentError", 401):
        register(mqtt, ca_pem, verification=ver)
    _unchanged(mqtt, code)


@pytest.mark.parametrize("missing", ["CaName", "CaContent", "VerificationContent"])
@pytest.mark.parametrize("empty", [False, True], ids=["absent", "empty"])
def test_register_missing_parameter(mqtt, missing, empty):
    ca = make_ca()
    code = register_code(mqtt)
    kw = dict(mqtt_instance_id=INSTANCE_A, ca_name="ca", ca_content=ca.pem,
              verification_content=verification_for(ca, code))
    attr = {"CaName": "ca_name", "CaContent": "ca_content",
            "VerificationContent": "verification_content"}[missing]
    kw[attr] = "" if empty else None
    with expect_error("ParameterFieldCheckFailed", 400):
        mqtt.register_ca_certificate(M.RegisterCaCertificateRequest(**kw))
    _unchanged(mqtt, code)


def test_ca_name_too_long(mqtt):
    ca = make_ca()
    code = register_code(mqtt)
    with expect_error("ParameterFieldCheckFailed", 400):
        register(mqtt, ca, code=code, name="n" * 129)
    _unchanged(mqtt, code)


# --------------------------------------------------------------------------------------------
# ListCaCertificate


def test_list_empty(mqtt):
    data = list_cas(mqtt, "1", "10")
    assert data.total == 0
    assert data.page_no == 1 and data.page_size == 10
    assert not data.ca_certificate_vos


def test_list_wire_types(mqtt):
    register_ca(mqtt)
    raw = mqtt.list_ca_certificate(M.ListCaCertificateRequest(
        mqtt_instance_id=INSTANCE_A, page_no="1", page_size="10")).body.to_map()
    data = raw["Data"]
    for k in ("PageNo", "PageSize", "Total"):
        assert isinstance(data[k], int) and not isinstance(data[k], bool), (k, data[k])
    assert (data["PageNo"], data["PageSize"], data["Total"]) == (1, 10, 1)
    assert isinstance(data["CaCertificateVOS"], list) and len(data["CaCertificateVOS"]) == 1
    vo = data["CaCertificateVOS"][0]
    assert set(vo) >= {"CaContent", "CaName", "RegistrationCode", "Sn", "Status",
                       "ValidBegin", "ValidEnd", "VerificationContent"}


def test_list_shows_what_get_shows(mqtt):
    ca = register_ca(mqtt)
    [vo] = all_cas(mqtt)
    assert vo.to_map() == get_ca(mqtt, ca.extra["sn"]).to_map()


def test_list_pages(mqtt):
    sns = [register_ca(mqtt, name=f"ca{i}", ca=make_ca(f"CA {i}")).extra["sn"] for i in range(5)]
    seen = []
    for page in (1, 2, 3):
        data = list_cas(mqtt, str(page), "2")
        assert data.total == 5, "Total is the number of results"
        assert (data.page_no, data.page_size) == (page, 2)
        seen += [c.sn for c in data.ca_certificate_vos or []]
    assert sorted(seen) == sorted(sns) and len(seen) == 5
    beyond = list_cas(mqtt, "4", "2")
    assert beyond.total == 5 and not beyond.ca_certificate_vos
    assert len(list_cas(mqtt, "1", "100").ca_certificate_vos) == 5


def test_list_is_per_instance(mqtt):
    a = register_ca(mqtt, INSTANCE_A)
    b = register_ca(mqtt, INSTANCE_A2, ca=make_ca("other"))
    assert [c.sn for c in all_cas(mqtt, INSTANCE_A)] == [a.extra["sn"]]
    assert [c.sn for c in all_cas(mqtt, INSTANCE_A2)] == [b.extra["sn"]]


@pytest.mark.parametrize("page_no,page_size", [
    ("0", "10"), ("-1", "10"), ("abc", "10"), ("1.5", "10"), (None, "10"), ("", "10"),
    ("1", "0"), ("1", "101"), ("1", "-5"), ("1", "x"), ("1", None), ("1", ""),
])
def test_list_bad_paging(mqtt, page_no, page_size):
    with expect_error("ParameterFieldCheckFailed", 400):
        mqtt.list_ca_certificate(M.ListCaCertificateRequest(
            mqtt_instance_id=INSTANCE_A, page_no=page_no, page_size=page_size))


def test_list_page_size_bounds(mqtt):
    assert list_cas(mqtt, "1", "1").page_size == 1
    assert list_cas(mqtt, "1", "100").page_size == 100


# --------------------------------------------------------------------------------------------
# Active / Inactivate / Delete


def _active(c, sn, instance=INSTANCE_A):
    return c.active_ca_certificate(M.ActiveCaCertificateRequest(mqtt_instance_id=instance, sn=sn)).body


def _inactivate(c, sn, instance=INSTANCE_A):
    return c.inactivate_ca_certificate(M.InactivateCaCertificateRequest(mqtt_instance_id=instance, sn=sn)).body


def _delete(c, sn, instance=INSTANCE_A):
    return c.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=instance, sn=sn)).body


def test_inactivate_and_activate(mqtt):
    ca = register_ca(mqtt)
    sn = ca.extra["sn"]
    body = _inactivate(mqtt, sn)
    check_request_id(body)
    assert body.sn == sn
    assert get_ca(mqtt, sn).status == "0"
    assert all_cas(mqtt)[0].status == "0"
    body = _active(mqtt, sn)
    check_request_id(body)
    assert body.sn == sn
    assert get_ca(mqtt, sn).status == "1"


def test_status_changes_are_idempotent(mqtt):
    sn = register_ca(mqtt).extra["sn"]
    _active(mqtt, sn)
    assert get_ca(mqtt, sn).status == "1"
    _inactivate(mqtt, sn)
    _inactivate(mqtt, sn)
    assert get_ca(mqtt, sn).status == "0"


def test_status_change_leaves_other_cas(mqtt):
    a = register_ca(mqtt).extra["sn"]
    b = register_ca(mqtt, ca=make_ca("b")).extra["sn"]
    _inactivate(mqtt, a)
    assert get_ca(mqtt, a).status == "0"
    assert get_ca(mqtt, b).status == "1"


def test_actions_accept_sn_variants(mqtt):
    sn = register_ca(mqtt, ca=make_ca(serial=0x80FEDCBA)).extra["sn"]
    assert sn == "0080fedcba"
    body = _inactivate(mqtt, sn.upper())
    assert same_sn(body.sn, sn)
    assert get_ca(mqtt, sn).status == "0"
    _active(mqtt, sn.lstrip("0"))
    assert get_ca(mqtt, sn).status == "1"
    body = _delete(mqtt, "00" + sn.upper())
    assert same_sn(body.sn, sn)
    assert_no_cas(mqtt)


def test_delete(mqtt):
    keep = register_ca(mqtt, ca=make_ca("keep")).extra["sn"]
    sn = register_ca(mqtt).extra["sn"]
    body = _delete(mqtt, sn)
    check_request_id(body)
    assert body.sn == sn
    with expect_error("FindCaBySnError", 400):
        get_ca(mqtt, sn)
    assert [c.sn for c in all_cas(mqtt)] == [keep]
    with expect_error("FindCaBySnError", 400):
        _delete(mqtt, sn)


def test_delete_inactive(mqtt):
    sn = register_ca(mqtt).extra["sn"]
    _inactivate(mqtt, sn)
    _delete(mqtt, sn)
    assert_no_cas(mqtt)


def test_reregister_after_delete(mqtt):
    ca = register_ca(mqtt)
    _delete(mqtt, ca.extra["sn"])
    again = register_ca(mqtt, ca=ca, name="again")
    assert again.extra["sn"] == ca.sn
    d = get_ca(mqtt, ca.sn)
    assert d.ca_name == "again" and d.status == "1"
    assert d.registration_code == again.extra["code"]


@pytest.mark.parametrize("action", ["Get", "Active", "Inactivate", "Delete"])
def test_unknown_sn(mqtt, action):
    sn = register_ca(mqtt).extra["sn"]
    other = make_ca("never registered").sn
    call = {"Get": get_ca, "Active": _active, "Inactivate": _inactivate, "Delete": _delete}[action]
    with expect_error("FindCaBySnError", 400):
        call(mqtt, other)
    [vo] = all_cas(mqtt)
    assert vo.sn == sn and vo.status == "1"


@pytest.mark.parametrize("action", ["Get", "Active", "Inactivate", "Delete"])
def test_sn_of_another_instance(mqtt, action):
    sn = register_ca(mqtt, INSTANCE_A2).extra["sn"]
    call = {"Get": get_ca, "Active": _active, "Inactivate": _inactivate, "Delete": _delete}[action]
    if action == "Active":
        _inactivate(mqtt, sn, INSTANCE_A2)
    with expect_error("FindCaBySnError", 400):
        call(mqtt, sn, INSTANCE_A)
    assert get_ca(mqtt, sn, INSTANCE_A2).status == ("0" if action == "Active" else "1")


@pytest.mark.parametrize("action", ["Get", "Active", "Inactivate", "Delete"])
@pytest.mark.parametrize("bad", [None, "", "not-hex!", "g" * 10, "a" * 129],
                         ids=["absent", "empty", "symbols", "non-hex", "too-long"])
def test_bad_sn(mqtt, action, bad):
    register_ca(mqtt)
    call = {"Get": get_ca, "Active": _active, "Inactivate": _inactivate, "Delete": _delete}[action]
    with expect_error("ParameterFieldCheckFailed", 400):
        call(mqtt, bad)
    [vo] = all_cas(mqtt)
    assert vo.status == "1"


def test_sn_of_128_hex_digits_is_well_formed(mqtt):
    with expect_error("FindCaBySnError", 400):
        get_ca(mqtt, "a" * 128)


def test_reset_clears_cas_and_keeps_instances(server, mqtt):
    register_ca(mqtt)
    server.reset()
    assert_no_cas(mqtt)
    register_ca(mqtt)
