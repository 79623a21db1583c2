"""Concurrent requests on one resource: no lost updates, exactly-once creation."""

from __future__ import annotations

from botocore.exceptions import ClientError

from aws_harness import error_code, status_of
from aws_x509 import make_ca, make_leaf
from certplane_server import race_threads

THREADS = 16


def race(fn, n=THREADS):
    """Run fn(i) in n threads released together; return per-thread ('ok', value) or ('err', code)."""
    return race_threads(n, fn, ClientError, error_code)


def test_revoke_racing_activate_ends_revoked(iot):
    for _ in range(5):
        cid = iot.create_keys_and_certificate()["certificateId"]
        results = race(lambda i: iot.update_certificate(
            certificateId=cid, newStatus="REVOKED" if i % 2 == 0 else "ACTIVE"))
        revokes = [r for i, r in enumerate(results) if i % 2 == 0]
        activates = [r for i, r in enumerate(results) if i % 2 == 1]
        assert any(r[0] == "ok" for r in revokes), results
        assert all(r[0] == "ok" or r[1] == "CertificateStateException" for r in revokes), results
        assert all(r[0] == "ok" or r[1] == "CertificateStateException" for r in activates), results
        assert status_of(iot, cid) == "REVOKED", "an ACTIVE update overwrote REVOKED (lost update)"


def test_concurrent_get_registration_code_agrees(iot):
    results = race(lambda i: iot.get_registration_code()["registrationCode"])
    assert all(r[0] == "ok" for r in results), results
    assert len({r[1] for r in results}) == 1, results
    assert iot.get_registration_code()["registrationCode"] == results[0][1]


def test_concurrent_duplicate_registration_creates_one(iot):
    device = make_leaf(make_ca())
    results = race(lambda i: iot.register_certificate_without_ca(certificatePem=device.pem)["certificateId"])
    ok = [r for r in results if r[0] == "ok"]
    assert len(ok) == 1, results
    assert ok[0][1] == device.cert_id
    assert all(r == ("err", "ResourceAlreadyExistsException") for r in results if r[0] != "ok"), results
    listed = [c["certificateId"] for c in iot.list_certificates()["certificates"]]
    assert listed == [device.cert_id]


def test_concurrent_creates_are_all_listed(iot):
    results = race(lambda i: iot.create_keys_and_certificate()["certificateId"], n=12)
    assert all(r[0] == "ok" for r in results), results
    ids = {r[1] for r in results}
    assert len(ids) == 12
    listed = set()
    for page in iot.get_paginator("list_certificates").paginate(PaginationConfig={"PageSize": 5}):
        listed.update(c["certificateId"] for c in page["certificates"])
    assert listed == ids


def test_default_mode_ca_registered_by_racing_accounts_has_one_owner(make_iot):
    """A DEFAULT-mode CA belongs to one account per region: accounts racing to register the same
    CA get one winner and ResourceAlreadyExistsException for the rest."""
    from aws_x509 import make_verification_cert
    accounts = [f"{i:012d}" for i in range(700000000001, 700000000007)]
    for round_ in range(3):
        ca = make_ca()
        clients = [make_iot(a) for a in accounts]
        verifications = [make_verification_cert(ca, c.get_registration_code()["registrationCode"])
                         for c in clients]
        results = race(lambda i: clients[i].register_ca_certificate(
            caCertificate=ca.pem, verificationCertificate=verifications[i].pem)["certificateId"],
            n=len(accounts))
        winners = [r for r in results if r[0] == "ok"]
        assert len(winners) == 1, (round_, results)
        assert all(r == ("err", "ResourceAlreadyExistsException") for r in results if r[0] != "ok"), results
        owners = [a for a, c in zip(accounts, clients)
                  if any(x["certificateId"] == winners[0][1] for x in c.list_ca_certificates()["certificates"])]
        assert len(owners) == 1, owners
