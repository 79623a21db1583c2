"""OnsMqtt 2020-04-20 device certificates through the official SDK.

A device certificate is registered when a device first connects through the device gateway; for
these API tests `register_device` uses `certplane admin mqtt-instance register-device` (the same
rule as a first connection) and skips when the binary has no such command. The error paths need
no registered device and always run."""

from __future__ import annotations

import pytest

from onsmqtt_harness import *  # noqa: F401,F403 (fixtures and helpers)
from onsmqtt_harness import (
    INSTANCE_A, INSTANCE_A2, M, check_request_id, der_sn, expect_error, get_ca, get_device,
    list_devices, list_devices_by_ca, make_ca, make_cert, ms, pem_of, register_ca,
    register_device, same_sn, all_cas, mqtt_client, ACCOUNT_A,
)
from cryptography import x509


def _active(c, ca_sn, device_sn, instance=INSTANCE_A):
    return c.active_device_certificate(M.ActiveDeviceCertificateRequest(
        mqtt_instance_id=instance, ca_sn=ca_sn, device_sn=device_sn)).body


def _inactivate(c, ca_sn, device_sn, instance=INSTANCE_A):
    return c.inactivate_device_certificate(M.InactivateDeviceCertificateRequest(
        mqtt_instance_id=instance, ca_sn=ca_sn, device_sn=device_sn)).body


def _delete(c, ca_sn, device_sn, instance=INSTANCE_A):
    return c.delete_device_certificate(M.DeleteDeviceCertificateRequest(
        mqtt_instance_id=instance, ca_sn=ca_sn, device_sn=device_sn)).body


def _get(c, ca_sn, device_sn, instance=INSTANCE_A):
    return get_device(c, ca_sn, device_sn, instance)


DEVICE_ACTIONS = {"Get": _get, "Active": _active, "Inactivate": _inactivate, "Delete": _delete}


def device(server, ca, cn="mqtt_device", serial=None, instance=INSTANCE_A):
    """A device certificate signed by `ca`, registered in `instance`. Returns the cert."""
    cert, _ = make_cert(ca, cn, serial=serial)
    register_device(server, instance, pem_of(cert))
    return cert


def assert_no_devices(client, instance=INSTANCE_A):
    data = list_devices(client, instance=instance)
    assert data.total == 0 and not data.device_certificate_vos, data.to_map()


# --------------------------------------------------------------------------------------------
# Error paths (no registered device needed)


@pytest.mark.parametrize("action", DEVICE_ACTIONS)
def test_unknown_ca_sn(mqtt, action):
    register_ca(mqtt)
    with expect_error("FindCaBySnError", 400):
        DEVICE_ACTIONS[action](mqtt, make_ca("never registered").sn, "0a1b2c")


@pytest.mark.parametrize("action", DEVICE_ACTIONS)
def test_unknown_device_sn_under_known_ca(mqtt, action):
    ca = register_ca(mqtt)
    with expect_error("FindDeviceBySnError", 400):
        DEVICE_ACTIONS[action](mqtt, ca.extra["sn"], "0a1b2c3d")
    assert_no_devices(mqtt)
    assert get_ca(mqtt, ca.extra["sn"]).status == "1"


@pytest.mark.parametrize("action", DEVICE_ACTIONS)
def test_ca_sn_of_another_instance(mqtt, action):
    ca = register_ca(mqtt, INSTANCE_A2)
    with expect_error("FindCaBySnError", 400):
        DEVICE_ACTIONS[action](mqtt, ca.extra["sn"], "0a1b2c", INSTANCE_A)


@pytest.mark.parametrize("action", DEVICE_ACTIONS)
@pytest.mark.parametrize("which", ["CaSn", "DeviceSn"])
@pytest.mark.parametrize("bad", [None, "", "xyz", "f" * 129], ids=["absent", "empty", "non-hex", "too-long"])
def test_bad_sn_parameters(mqtt, action, which, bad):
    ca = register_ca(mqtt)
    ca_sn, device_sn = ca.extra["sn"], "0a1b2c"
    if which == "CaSn":
        ca_sn = bad
    else:
        device_sn = bad
    with expect_error("ParameterFieldCheckFailed", 400):
        DEVICE_ACTIONS[action](mqtt, ca_sn, device_sn)


def test_list_empty(mqtt):
    data = list_devices(mqtt, "1", "10")
    assert (data.total, data.page_no, data.page_size) == (0, 1, 10)
    assert not data.device_certificate_vos


def test_list_by_ca_empty(mqtt):
    ca = register_ca(mqtt)
    data = list_devices_by_ca(mqtt, ca.extra["sn"], "1", "10")
    assert (data.total, data.page_no, data.page_size) == (0, 1, 10)
    assert not data.device_certificate_vos


def test_list_wire_types(mqtt):
    raw = mqtt.list_device_certificate(M.ListDeviceCertificateRequest(
        mqtt_instance_id=INSTANCE_A, page_no="2", page_size="7")).body.to_map()
    check_request_id(raw)
    data = raw["Data"]
    for k in ("PageNo", "PageSize", "Total"):
        assert isinstance(data[k], int) and not isinstance(data[k], bool), (k, data[k])
    assert (data["PageNo"], data["PageSize"], data["Total"]) == (2, 7, 0)
    assert data["DeviceCertificateVOS"] == []


def test_list_by_unknown_ca(mqtt):
    with expect_error("FindCaBySnError", 400):
        list_devices_by_ca(mqtt, make_ca().sn)


@pytest.mark.parametrize("bad", [None, "", "nothex"], ids=["absent", "empty", "non-hex"])
def test_list_by_ca_bad_ca_sn(mqtt, bad):
    with expect_error("ParameterFieldCheckFailed", 400):
        mqtt.list_device_certificate_by_ca_sn(M.ListDeviceCertificateByCaSnRequest(
            mqtt_instance_id=INSTANCE_A, ca_sn=bad, page_no="1", page_size="10"))


@pytest.mark.parametrize("by_ca", [False, True], ids=["all", "by-ca"])
@pytest.mark.parametrize("page_no,page_size", [
    ("0", "10"), ("x", "10"), (None, "10"), ("1", "0"), ("1", "101"), ("1", None), ("1", "1e2"),
])
def test_list_bad_paging(mqtt, by_ca, page_no, page_size):
    if by_ca:
        sn = register_ca(mqtt).extra["sn"]
        call = lambda: mqtt.list_device_certificate_by_ca_sn(M.ListDeviceCertificateByCaSnRequest(
            mqtt_instance_id=INSTANCE_A, ca_sn=sn, page_no=page_no, page_size=page_size))
    else:
        call = lambda: mqtt.list_device_certificate(M.ListDeviceCertificateRequest(
            mqtt_instance_id=INSTANCE_A, page_no=page_no, page_size=page_size))
    with expect_error("ParameterFieldCheckFailed", 400):
        call()


# --------------------------------------------------------------------------------------------
# Registered devices


def test_get_device(server, mqtt):
    ca = register_ca(mqtt)
    cert = device(server, ca, cn="mqtt_device")
    d = get_device(mqtt, ca.extra["sn"], sn_of_cert(cert))
    assert d.ca_sn == ca.extra["sn"]
    assert d.device_sn == sn_of_cert(cert)
    assert d.device_name == "mqtt_device"
    assert d.status == "1"
    assert d.valid_begin == ms(cert.not_valid_before_utc)
    assert d.valid_end == ms(cert.not_valid_after_utc)
    shown = x509.load_pem_x509_certificate(d.device_content.encode())
    assert shown == cert


def test_get_device_wire_types(server, mqtt):
    ca = register_ca(mqtt)
    cert = device(server, ca)
    raw = mqtt.get_device_certificate(M.GetDeviceCertificateRequest(
        mqtt_instance_id=INSTANCE_A, ca_sn=ca.extra["sn"], device_sn=sn_of_cert(cert))).body.to_map()
    data = raw["Data"]
    for k in ("CaSn", "DeviceContent", "DeviceName", "DeviceSn", "Status", "ValidBegin", "ValidEnd"):
        assert isinstance(data[k], str), (k, data.get(k))
    assert len(data["ValidBegin"]) == 13 and data["ValidBegin"].isdigit()


def sn_of_cert(cert) -> str:
    return der_sn(cert.serial_number)


@pytest.mark.parametrize("serial", [0x80, 0x7F, 0xABCDEF, 0x8000000000000001])
def test_device_sn_encoding_and_variants(server, mqtt, serial):
    ca = register_ca(mqtt)
    device(server, ca, serial=serial)
    sn = der_sn(serial)
    assert get_device(mqtt, ca.extra["sn"], sn).device_sn == sn
    for variant in (sn.upper(), sn.lstrip("0"), "00" + sn):
        assert get_device(mqtt, ca.extra["sn"].upper(), variant).device_sn == sn
    [vo] = list_devices(mqtt).device_certificate_vos
    assert vo.device_sn == sn


def test_list_devices_and_by_ca(server, mqtt):
    ca1 = register_ca(mqtt, ca=make_ca("CA one"))
    ca2 = register_ca(mqtt, ca=make_ca("CA two"))
    d1 = [device(server, ca1, cn=f"one-{i}") for i in range(3)]
    d2 = [device(server, ca2, cn=f"two-{i}") for i in range(2)]
    everything = list_devices(mqtt)
    assert everything.total == 5
    by_sn = {vo.device_sn: vo for vo in everything.device_certificate_vos}
    assert set(by_sn) == {sn_of_cert(c) for c in d1 + d2}
    for c in d1:
        assert by_sn[sn_of_cert(c)].ca_sn == ca1.extra["sn"]
    for c in d2:
        assert by_sn[sn_of_cert(c)].ca_sn == ca2.extra["sn"]
    assert by_sn[sn_of_cert(d1[0])].device_name == "one-0"
    one = list_devices_by_ca(mqtt, ca1.extra["sn"])
    assert one.total == 3
    assert {vo.device_sn for vo in one.device_certificate_vos} == {sn_of_cert(c) for c in d1}
    assert all(vo.ca_sn == ca1.extra["sn"] for vo in one.device_certificate_vos)
    two = list_devices_by_ca(mqtt, ca2.extra["sn"])
    assert two.total == 2
    # The list entry is what Get shows.
    vo = by_sn[sn_of_cert(d2[0])]
    assert vo.to_map() == get_device(mqtt, ca2.extra["sn"], vo.device_sn).to_map()


def test_list_devices_pages(server, mqtt):
    ca = register_ca(mqtt)
    certs = [device(server, ca, cn=f"dev-{i}") for i in range(5)]
    for lister in (lambda p, s: list_devices(mqtt, p, s),
                   lambda p, s: list_devices_by_ca(mqtt, ca.extra["sn"], p, s)):
        seen = []
        for page in ("1", "2", "3"):
            data = lister(page, "2")
            assert data.total == 5
            assert (data.page_no, data.page_size) == (int(page), 2)
            seen += [vo.device_sn for vo in data.device_certificate_vos or []]
        assert sorted(seen) == sorted(sn_of_cert(c) for c in certs)
        assert not lister("4", "2").device_certificate_vos


def test_device_under_another_ca_is_not_found(server, mqtt):
    ca1 = register_ca(mqtt, ca=make_ca("CA one"))
    ca2 = register_ca(mqtt, ca=make_ca("CA two"))
    cert = device(server, ca1)
    with expect_error("FindDeviceBySnError", 400):
        get_device(mqtt, ca2.extra["sn"], sn_of_cert(cert))


def test_devices_are_per_instance(server, mqtt):
    ca = register_ca(mqtt, INSTANCE_A)
    cert = device(server, ca)
    assert_no_devices(mqtt, INSTANCE_A2)
    assert list_devices(mqtt, instance=INSTANCE_A).total == 1
    # The same CA registered in the other instance does not bring the device along.
    register_ca(mqtt, INSTANCE_A2, ca=ca)
    assert list_devices_by_ca(mqtt, ca.sn, instance=INSTANCE_A2).total == 0
    with expect_error("FindDeviceBySnError", 400):
        get_device(mqtt, ca.sn, sn_of_cert(cert), instance=INSTANCE_A2)


def test_inactivate_and_activate_device(server, mqtt):
    ca = register_ca(mqtt)
    cert = device(server, ca)
    sn = sn_of_cert(cert)
    body = _inactivate(mqtt, ca.extra["sn"], sn)
    check_request_id(body)
    assert body.device_sn == sn
    assert get_device(mqtt, ca.extra["sn"], sn).status == "0"
    assert list_devices(mqtt).device_certificate_vos[0].status == "0"
    body = _active(mqtt, ca.extra["sn"], sn)
    check_request_id(body)
    assert body.device_sn == sn
    assert get_device(mqtt, ca.extra["sn"], sn).status == "1"


def test_device_status_changes_are_idempotent(server, mqtt):
    ca = register_ca(mqtt)
    sn = sn_of_cert(device(server, ca))
    _active(mqtt, ca.extra["sn"], sn)
    _inactivate(mqtt, ca.extra["sn"], sn)
    _inactivate(mqtt, ca.extra["sn"], sn)
    assert get_device(mqtt, ca.extra["sn"], sn).status == "0"


def test_delete_device(server, mqtt):
    ca = register_ca(mqtt)
    keep = sn_of_cert(device(server, ca, cn="keep"))
    sn = sn_of_cert(device(server, ca, cn="gone"))
    body = _delete(mqtt, ca.extra["sn"], sn)
    check_request_id(body)
    assert body.device_sn == sn
    with expect_error("FindDeviceBySnError", 400):
        get_device(mqtt, ca.extra["sn"], sn)
    assert [vo.device_sn for vo in list_devices(mqtt).device_certificate_vos] == [keep]
    with expect_error("FindDeviceBySnError", 400):
        _delete(mqtt, ca.extra["sn"], sn)


def test_deleted_device_registers_again(server, mqtt):
    ca = register_ca(mqtt)
    cert = device(server, ca)
    _delete(mqtt, ca.extra["sn"], sn_of_cert(cert))
    register_device(server, INSTANCE_A, pem_of(cert))
    assert get_device(mqtt, ca.extra["sn"], sn_of_cert(cert)).status == "1"


def test_delete_inactive_device(server, mqtt):
    ca = register_ca(mqtt)
    sn = sn_of_cert(device(server, ca))
    _inactivate(mqtt, ca.extra["sn"], sn)
    _delete(mqtt, ca.extra["sn"], sn)
    assert_no_devices(mqtt)


def test_delete_ca_removes_its_devices(server, mqtt):
    ca1 = register_ca(mqtt, ca=make_ca("CA one"))
    ca2 = register_ca(mqtt, ca=make_ca("CA two"))
    gone = sn_of_cert(device(server, ca1))
    kept = sn_of_cert(device(server, ca2))
    mqtt.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=INSTANCE_A, sn=ca1.extra["sn"]))
    data = list_devices(mqtt)
    assert data.total == 1 and [vo.device_sn for vo in data.device_certificate_vos] == [kept]
    with expect_error("FindCaBySnError", 400):
        get_device(mqtt, ca1.extra["sn"], gone)
    # Registered again, the CA has no devices.
    again = register_ca(mqtt, ca=ca1)
    assert list_devices_by_ca(mqtt, again.extra["sn"]).total == 0
    with expect_error("FindDeviceBySnError", 400):
        get_device(mqtt, ca1.extra["sn"], gone)


def test_inactive_ca_keeps_device_status(server, mqtt):
    ca = register_ca(mqtt)
    sn = sn_of_cert(device(server, ca))
    mqtt.inactivate_ca_certificate(M.InactivateCaCertificateRequest(
        mqtt_instance_id=INSTANCE_A, sn=ca.extra["sn"]))
    assert get_device(mqtt, ca.extra["sn"], sn).status == "1"


def test_register_device_refused_under_inactive_ca(server, mqtt):
    ca = register_ca(mqtt)
    mqtt.inactivate_ca_certificate(M.InactivateCaCertificateRequest(
        mqtt_instance_id=INSTANCE_A, sn=ca.extra["sn"]))
    cert, _ = make_cert(ca, "dev")
    res = register_device(server, INSTANCE_A, pem_of(cert), expect_ok=False)
    assert res.returncode != 0, res.stdout
    assert_no_devices(mqtt)


def test_register_device_refused_without_registered_ca(server, mqtt):
    register_ca(mqtt)
    stranger = make_ca("not registered")
    cert, _ = make_cert(stranger, "dev")
    res = register_device(server, INSTANCE_A, pem_of(cert), expect_ok=False)
    assert res.returncode != 0, res.stdout
    assert_no_devices(mqtt)


def test_device_failures_change_nothing(server, mqtt):
    ca = register_ca(mqtt)
    sn = sn_of_cert(device(server, ca))
    before = list_devices(mqtt).to_map()
    for action in ("Active", "Inactivate", "Delete"):
        with expect_error("FindDeviceBySnError", 400):
            DEVICE_ACTIONS[action](mqtt, ca.extra["sn"], sn + "0")
        with expect_error("FindCaBySnError", 400):
            DEVICE_ACTIONS[action](mqtt, make_ca().sn, sn)
    assert list_devices(mqtt).to_map() == before


def test_devices_both_signings(server, signing):
    client = mqtt_client(server, ACCOUNT_A, signing=signing)
    ca = register_ca(client)
    sn = sn_of_cert(device(server, ca))
    assert get_device(client, ca.extra["sn"], sn).device_sn == sn
    assert list_devices_by_ca(client, ca.extra["sn"]).total == 1
    _inactivate(client, ca.extra["sn"], sn)
    assert get_device(client, ca.extra["sn"], sn).status == "0"
