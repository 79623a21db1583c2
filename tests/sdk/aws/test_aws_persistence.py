"""Restart persistence: stop the server (SIGTERM, SIGKILL), start it on the same data dir, and
everything written before is still there."""

from __future__ import annotations

import signal

import pytest

from aws_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    all_certificate_ids,
    iot_client,
    openssl_verify,
)
from aws_x509 import load_pem, make_ca, make_leaf, make_verification_cert
from certplane_server import CertplaneServer

POLICY_DOC = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}'

pytestmark = pytest.mark.slow


def seed(a, b):
    """Write one of everything; return what must survive."""
    s = {}
    s["active"] = a.create_keys_and_certificate(setAsActive=True)
    s["inactive"] = a.create_keys_and_certificate()
    s["revoked"] = a.create_keys_and_certificate()
    a.update_certificate(certificateId=s["revoked"]["certificateId"], newStatus="REVOKED")

    s["pending"] = a.create_keys_and_certificate()["certificateId"]
    a.transfer_certificate(certificateId=s["pending"], targetAwsAccount=ACCOUNT_B, transferMessage="persist me")
    s["accepted"] = a.create_keys_and_certificate()["certificateId"]
    a.transfer_certificate(certificateId=s["accepted"], targetAwsAccount=ACCOUNT_B)
    b.accept_certificate_transfer(certificateId=s["accepted"], setAsActive=True)
    s["rejected"] = a.create_keys_and_certificate()["certificateId"]
    a.transfer_certificate(certificateId=s["rejected"], targetAwsAccount=ACCOUNT_B)
    b.reject_certificate_transfer(certificateId=s["rejected"], rejectReason="no")

    s["code"] = a.get_registration_code()["registrationCode"]
    ca = make_ca()
    s["ca"] = ca
    s["ca_id"] = a.register_ca_certificate(
        caCertificate=ca.pem, verificationCertificate=make_verification_cert(ca, s["code"]).pem,
        setAsActive=True)["certificateId"]
    device = make_leaf(ca)
    a.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem, setAsActive=True)
    s["device"] = device

    a.create_thing(thingName="persisted-thing", attributePayload={"attributes": {"k": "v"}})
    a.attach_thing_principal(thingName="persisted-thing", principal=s["inactive"]["certificateArn"])
    a.create_policy(policyName="persisted-policy", policyDocument=POLICY_DOC)
    a.attach_policy(policyName="persisted-policy", target=s["inactive"]["certificateArn"])
    return s


def verify(a, b, s):
    def desc(client, cid):
        return client.describe_certificate(certificateId=cid)["certificateDescription"]

    for name, status in (("active", "ACTIVE"), ("inactive", "INACTIVE"), ("revoked", "REVOKED")):
        d = desc(a, s[name]["certificateId"])
        assert d["status"] == status, name
        assert load_pem(d["certificatePem"]) == load_pem(s[name]["certificatePem"]), name

    d = desc(a, s["pending"])
    assert d["status"] == "PENDING_TRANSFER"
    assert d["transferData"]["transferMessage"] == "persist me"
    out = a.list_outgoing_certificates()["outgoingCertificates"]
    assert [(o["certificateId"], o["transferredTo"]) for o in out] == [(s["pending"], ACCOUNT_B)]

    d = desc(b, s["accepted"])
    assert (d["status"], d["ownedBy"], d["previousOwnedBy"]) == ("ACTIVE", ACCOUNT_B, ACCOUNT_A)
    assert s["accepted"] not in all_certificate_ids(a)
    d = desc(a, s["rejected"])
    assert d["status"] == "INACTIVE" and d["transferData"]["rejectReason"] == "no"

    assert a.get_registration_code()["registrationCode"] == s["code"]
    ca_desc = a.describe_ca_certificate(certificateId=s["ca_id"])["certificateDescription"]
    assert ca_desc["status"] == "ACTIVE"
    assert load_pem(ca_desc["certificatePem"]) == s["ca"].cert
    d = desc(a, s["device"].cert_id)
    assert d["caCertificateId"] == s["ca_id"] and d["status"] == "ACTIVE"
    by_ca = a.list_certificates_by_ca(caCertificateId=s["ca_id"])["certificates"]
    assert [c["certificateId"] for c in by_ca] == [s["device"].cert_id]

    arn = s["inactive"]["certificateArn"]
    assert a.describe_thing(thingName="persisted-thing")["attributes"] == {"k": "v"}
    assert a.list_principal_things(principal=arn)["things"] == ["persisted-thing"]
    assert [p["policyName"] for p in a.list_attached_policies(target=arn)["policies"]] == ["persisted-policy"]

    # the pending transfer can still be completed, and finished ones stay finished
    b.accept_certificate_transfer(certificateId=s["pending"])
    assert desc(b, s["pending"])["ownedBy"] == ACCOUNT_B
    with pytest.raises(Exception) as ei:
        b.accept_certificate_transfer(certificateId=s["accepted"])
    assert getattr(ei.value, "response", {}).get("Error", {}).get("Code") == "TransferAlreadyCompletedException"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_state_survives_restart(binary, tmp_path, sig):
    srv = CertplaneServer(binary, tmp_path / "data", dev=True).start()
    try:
        ca_pem_before = srv.ca_pem_path.read_bytes()
        s = seed(iot_client(srv.url, ACCOUNT_A), iot_client(srv.url, ACCOUNT_B))
        code = srv.stop(sig)
        if sig == signal.SIGTERM:
            assert code is not None, "server did not exit within 20s of SIGTERM"
        srv.start()
        assert srv.ca_pem_path.read_bytes() == ca_pem_before, "issuing CA changed across restart"
        a, b = iot_client(srv.url, ACCOUNT_A), iot_client(srv.url, ACCOUNT_B)
        verify(a, b, s)

        # still issuing from the same CA after restart
        fresh = a.create_keys_and_certificate(setAsActive=True)
        res = openssl_verify(srv.ca_pem_path, fresh["certificatePem"], tmp_path, srv.clock())
        assert res.returncode == 0, res.stdout + res.stderr
        res = openssl_verify(srv.ca_pem_path, s["active"]["certificatePem"], tmp_path, srv.clock())
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        srv.stop()


def test_sigterm_exits_cleanly(binary, tmp_path):
    srv = CertplaneServer(binary, tmp_path / "data", dev=True).start()
    try:
        iot_client(srv.url).create_keys_and_certificate()
        code = srv.stop(signal.SIGTERM)
        assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), f"exit code {code} after SIGTERM"
    finally:
        srv.stop()
