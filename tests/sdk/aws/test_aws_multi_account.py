"""One SNI_ONLY certificate (RegisterCertificateWithoutCA) registered in several accounts and
regions, as AWS allows: each registration has its own ARN, status, dates and attachments, and
every call sees and changes only the caller's registration. DEFAULT-mode certificates keep one
owner. The device gateway decides a device by the registration of the account its SNI names."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

import certplane_server
import sdk_engine
from aws_harness import (ACCOUNT_A, ACCOUNT_B, ACCOUNT_C, REGION, all_certificate_ids, as_utc,
                         cert_arn, error_code, expect_error, iot_client, status_of)
from aws_x509 import make_ca, make_leaf, make_verification_cert
from certplane_server import CertplaneServer, race_threads
from mqtt_session import closed_within, open_session

WEST = "us-west-2"
POLICY_DOC = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})


def describe(client, cid):
    return client.describe_certificate(certificateId=cid)["certificateDescription"]


@pytest.fixture
def iot_west(make_iot):
    """Account A in a second region."""
    return make_iot(ACCOUNT_A, region=WEST)


def test_one_certificate_registered_in_two_accounts_and_two_regions(server, iot, iot_b, iot_west):
    device = make_leaf(make_ca())
    cid = device.cert_id
    a = iot.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    server.advance(60)
    b = iot_b.register_certificate_without_ca(certificatePem=device.pem, status="INACTIVE")
    server.advance(60)
    w = iot_west.register_certificate_without_ca(certificatePem=device.pem, status="REVOKED")

    # One id (the SHA-256 of the DER) everywhere, one ARN per registration.
    assert a["certificateId"] == b["certificateId"] == w["certificateId"] == cid
    assert a["certificateArn"] == cert_arn(cid, ACCOUNT_A)
    assert b["certificateArn"] == cert_arn(cid, ACCOUNT_B)
    assert w["certificateArn"] == cert_arn(cid, ACCOUNT_A, WEST)

    da, db, dw = describe(iot, cid), describe(iot_b, cid), describe(iot_west, cid)
    assert (da["status"], db["status"], dw["status"]) == ("ACTIVE", "INACTIVE", "REVOKED")
    assert (da["ownedBy"], db["ownedBy"], dw["ownedBy"]) == (ACCOUNT_A, ACCOUNT_B, ACCOUNT_A)
    assert {d["certificateArn"] for d in (da, db, dw)} == {
        a["certificateArn"], b["certificateArn"], w["certificateArn"]}
    for d in (da, db, dw):
        assert d["certificateId"] == cid
        assert d["certificateMode"] == "SNI_ONLY"
        assert "caCertificateId" not in d
    # Each registration has its own creation date.
    assert (as_utc(db["creationDate"]) - as_utc(da["creationDate"])).total_seconds() >= 59
    assert (as_utc(dw["creationDate"]) - as_utc(db["creationDate"])).total_seconds() >= 59

    # ListCertificates: each account and region lists its own registration once.
    assert all_certificate_ids(iot) == [cid]
    assert all_certificate_ids(iot_b) == [cid]
    assert all_certificate_ids(iot_west) == [cid]
    listed_b = iot_b.list_certificates()["certificates"]
    assert listed_b[0]["certificateArn"] == cert_arn(cid, ACCOUNT_B)
    assert listed_b[0]["status"] == "INACTIVE"
    assert listed_b[0]["certificateMode"] == "SNI_ONLY"
    # A third account holding none sees none.
    iot_c = server_client(server, ACCOUNT_C)
    with expect_error(iot_c, "ResourceNotFoundException"):
        iot_c.describe_certificate(certificateId=cid)


def server_client(server, account, region=REGION):
    return iot_client(server.url, access_key=account, region=region)


def test_update_in_one_account_leaves_the_others(iot, iot_b, iot_west):
    device = make_leaf(make_ca())
    cid = device.cert_id
    for client in (iot, iot_b, iot_west):
        client.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    before_b = describe(iot_b, cid)

    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    assert status_of(iot, cid) == "INACTIVE"
    assert status_of(iot_b, cid) == "ACTIVE"
    assert status_of(iot_west, cid) == "ACTIVE"
    after_b = describe(iot_b, cid)
    assert after_b["customerVersion"] == before_b["customerVersion"]
    assert after_b["lastModifiedDate"] == before_b["lastModifiedDate"]

    iot_b.update_certificate(certificateId=cid, newStatus="REVOKED")
    assert (status_of(iot, cid), status_of(iot_b, cid), status_of(iot_west, cid)) == (
        "INACTIVE", "REVOKED", "ACTIVE")
    # B's revocation is B's: A's registration can still be activated.
    iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert status_of(iot, cid) == "ACTIVE"
    with expect_error(iot_b, "CertificateStateException"):
        iot_b.update_certificate(certificateId=cid, newStatus="ACTIVE")


def test_delete_in_one_account_leaves_the_others(iot, iot_b, iot_west):
    device = make_leaf(make_ca())
    cid = device.cert_id
    for client in (iot, iot_b, iot_west):
        client.register_certificate_without_ca(certificatePem=device.pem, status="INACTIVE")

    iot_b.delete_certificate(certificateId=cid)
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_certificate(certificateId=cid)
    assert all_certificate_ids(iot_b) == []
    assert status_of(iot, cid) == "INACTIVE" and status_of(iot_west, cid) == "INACTIVE"
    # B may register it again.
    iot_b.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    assert status_of(iot_b, cid) == "ACTIVE"

    # Deleting the first registration (A's) leaves the later ones whole.
    iot.delete_certificate(certificateId=cid)
    with expect_error(iot, "ResourceNotFoundException"):
        iot.describe_certificate(certificateId=cid)
    assert all_certificate_ids(iot) == []
    db, dw = describe(iot_b, cid), describe(iot_west, cid)
    assert (db["status"], db["ownedBy"], db["certificateArn"]) == (
        "ACTIVE", ACCOUNT_B, cert_arn(cid, ACCOUNT_B))
    assert (dw["status"], dw["ownedBy"], dw["certificateArn"]) == (
        "INACTIVE", ACCOUNT_A, cert_arn(cid, ACCOUNT_A, WEST))
    assert all_certificate_ids(iot_b) == [cid] and all_certificate_ids(iot_west) == [cid]
    # ... which still change on their own, and A can register it again.
    iot_b.update_certificate(certificateId=cid, newStatus="INACTIVE")
    assert status_of(iot_b, cid) == "INACTIVE" and status_of(iot_west, cid) == "INACTIVE"
    iot.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    assert status_of(iot, cid) == "ACTIVE"

    # Every registration gone: the certificate is registered nowhere.
    for client in (iot_west, iot_b):
        client.delete_certificate(certificateId=cid)
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    iot.delete_certificate(certificateId=cid)
    for client in (iot, iot_b, iot_west):
        assert all_certificate_ids(client) == []
        with expect_error(client, "ResourceNotFoundException"):
            client.describe_certificate(certificateId=cid)


def test_an_active_registration_is_not_deleted_and_the_others_stay(iot, iot_b):
    device = make_leaf(make_ca())
    cid = device.cert_id
    iot.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    iot_b.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    with expect_error(iot_b, "CertificateStateException"):
        iot_b.delete_certificate(certificateId=cid)
    assert status_of(iot, cid) == "ACTIVE" and status_of(iot_b, cid) == "ACTIVE"


def test_duplicate_in_the_same_account_and_region_is_409(iot, iot_b, iot_west):
    device = make_leaf(make_ca())
    cid = device.cert_id
    iot.register_certificate_without_ca(certificatePem=device.pem)
    iot_b.register_certificate_without_ca(certificatePem=device.pem)
    iot_west.register_certificate_without_ca(certificatePem=device.pem)
    for client, account, region in ((iot, ACCOUNT_A, REGION), (iot_b, ACCOUNT_B, REGION),
                                    (iot_west, ACCOUNT_A, WEST)):
        with expect_error(client, "ResourceAlreadyExistsException") as ei:
            client.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
        assert ei.value.response.get("resourceId") == cid
        assert ei.value.response.get("resourceArn") == cert_arn(cid, account, region)
        assert all_certificate_ids(client) == [cid]
        assert status_of(client, cid) == "INACTIVE"


def test_default_mode_certificates_keep_one_owner(iot, iot_b, ca_material):
    # Issued by certplane (DEFAULT): no other account may register it without a CA.
    created = iot.create_keys_and_certificate()
    with expect_error(iot_b, "ResourceAlreadyExistsException") as ei:
        iot_b.register_certificate_without_ca(certificatePem=created["certificatePem"])
    assert ei.value.response.get("resourceId") == created["certificateId"]
    # Registered with a DEFAULT-mode CA: the same.
    ca, _ = ca_material
    device = make_leaf(ca)
    iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem)
    with expect_error(iot_b, "ResourceAlreadyExistsException"):
        iot_b.register_certificate_without_ca(certificatePem=device.pem)
    assert all_certificate_ids(iot_b) == []
    assert describe(iot, device.cert_id)["certificateMode"] == "DEFAULT"


def test_a_shared_sni_only_certificate_cannot_be_registered_with_a_ca(iot, iot_b, iot_c):
    ca = make_ca()
    device = make_leaf(ca)
    iot.register_certificate_without_ca(certificatePem=device.pem)
    iot_b.register_certificate_without_ca(certificatePem=device.pem)
    code = iot_c.get_registration_code()["registrationCode"]
    iot_c.register_ca_certificate(caCertificate=ca.pem, setAsActive=True,
                                  verificationCertificate=make_verification_cert(ca, code).pem)
    with expect_error(iot_c, "ResourceAlreadyExistsException"):
        iot_c.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem)
    with expect_error(iot, "ResourceAlreadyExistsException"):
        iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem)
    assert all_certificate_ids(iot_c) == []


def test_attachments_belong_to_each_registration(iot, iot_b):
    device = make_leaf(make_ca())
    cid = device.cert_id
    arn_a = iot.register_certificate_without_ca(certificatePem=device.pem)["certificateArn"]
    arn_b = iot_b.register_certificate_without_ca(certificatePem=device.pem)["certificateArn"]
    iot.create_policy(policyName="p", policyDocument=POLICY_DOC)
    iot.attach_policy(policyName="p", target=arn_a)
    iot.create_thing(thingName="t")
    iot.attach_thing_principal(thingName="t", principal=arn_a)
    assert [p["policyName"] for p in iot.list_attached_policies(target=arn_a)["policies"]] == ["p"]
    assert iot_b.list_attached_policies(target=arn_b)["policies"] == []
    assert iot_b.list_principal_things(principal=arn_b)["things"] == []
    # B's registration has nothing attached: B deletes it; A's, with a thing, is refused.
    iot_b.delete_certificate(certificateId=cid)
    with expect_error(iot, "DeleteConflictException"):
        iot.delete_certificate(certificateId=cid)
    assert iot.list_principal_things(principal=arn_a)["things"] == ["t"]


def test_transfer_of_a_shared_certificate(iot, iot_b, iot_c):
    # Registered in one account only: transferred as any certificate.
    device = make_leaf(make_ca())
    cid = device.cert_id
    iot.register_certificate_without_ca(certificatePem=device.pem)
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    # While it is on its way, no other account registers it.
    with expect_error(iot_c, "ResourceAlreadyExistsException"):
        iot_c.register_certificate_without_ca(certificatePem=device.pem)
    iot_b.accept_certificate_transfer(certificateId=cid)
    assert describe(iot_b, cid)["ownedBy"] == ACCOUNT_B
    # Now registered in two accounts: neither registration can be transferred.
    iot.register_certificate_without_ca(certificatePem=device.pem)
    for client in (iot, iot_b):
        with expect_error(client, "TransferConflictException"):
            client.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_C)
        assert status_of(client, cid) == "INACTIVE"
    assert all_certificate_ids(iot_c) == []


def race(fn, n=12):
    return race_threads(n, fn, ClientError, error_code)


def test_racing_registrations_in_several_accounts_each_make_one(server, iot):
    device = make_leaf(make_ca())
    cid = device.cert_id
    accounts = [f"{i:012d}" for i in range(400000000001, 400000000005)]
    clients = {a: server_client(server, a) for a in accounts}
    # Three threads per account, released together: one registration per account.
    results = race(lambda i: clients[accounts[i % 4]].register_certificate_without_ca(
        certificatePem=device.pem)["certificateArn"])
    for k, account in enumerate(accounts):
        mine = results[k::4]
        ok = [r for r in mine if r[0] == "ok"]
        assert ok == [("ok", cert_arn(cid, account))], results
        assert all(r == ("err", "ResourceAlreadyExistsException") for r in mine if r[0] != "ok")
        assert all_certificate_ids(clients[account]) == [cid]
    # Racing deletes of every registration (the first one among them) leave none.
    results = race(lambda i: clients[accounts[i]].delete_certificate(certificateId=cid), n=4)
    assert all(r[0] == "ok" for r in results), results
    for account in accounts:
        assert all_certificate_ids(clients[account]) == []
    iot.register_certificate_without_ca(certificatePem=device.pem)
    assert all_certificate_ids(iot) == [cid]


# --- The device gateway: SNI picks the account, its registration decides ------------------------

class FakeBroker:
    """Accepts MQTT connections and answers every CONNECT with a CONNACK accepting it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    @staticmethod
    def _client(conn):
        try:
            if conn.recv(2):
                conn.recv(4096)
                conn.sendall(b"\x20\x02\x00\x00")
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def gateway(binary, tmp_path_factory):
    broker = FakeBroker()
    gport = certplane_server.free_port()
    data = tmp_path_factory.mktemp("multi-gw") / "data"
    srv = CertplaneServer(binary, data, dev=True, extra_args=[
        "--gateway", f"127.0.0.1:{gport}", "--gateway-upstream", f"127.0.0.1:{broker.port}"])
    srv.start()
    srv.gateway_port = gport
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", gport), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield srv
    srv.stop()
    broker.close()


def connect(gw, cert_file, key_file, server_name):
    """TLS with SNI `server_name`, then an MQTT CONNECT: True when the CONNACK came back."""
    s = session(gw, cert_file, key_file, server_name)
    if s is None:
        return False
    s.close()
    return True


def endpoint(account, region=REGION):
    return f"a{account}-ats.iot.{region}.localhost"


def test_gateway_admits_by_the_registration_of_the_named_account(gateway, tmp_path):
    gateway.reset()
    iot = iot_client(gateway.url, access_key=ACCOUNT_A)
    iot_b = iot_client(gateway.url, access_key=ACCOUNT_B)
    assert iot_b.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == endpoint(
        ACCOUNT_B)
    ca = make_ca()
    device = make_leaf(ca)
    cert_file, key_file = tmp_path / "dev.pem", tmp_path / "dev.key"
    cert_file.write_text(device.pem)
    key_file.write_bytes(device.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    # Admission wants the device's CA registered (and active) in the tenant: SNI_ONLY CAs may
    # be registered by several accounts.
    for client in (iot, iot_b):
        client.register_ca_certificate(caCertificate=ca.pem, certificateMode="SNI_ONLY",
                                       setAsActive=True)
    iot.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    iot_b.register_certificate_without_ca(certificatePem=device.pem, status="INACTIVE")

    def settles(want_a, want_b):
        deadline = time.time() + 5
        while time.time() < deadline:
            got = (connect(gateway, cert_file, key_file, endpoint(ACCOUNT_A)),
                   connect(gateway, cert_file, key_file, endpoint(ACCOUNT_B)))
            if got == (want_a, want_b):
                return True
            time.sleep(0.1)
        return False

    assert settles(True, False), "A (ACTIVE) must admit, B (INACTIVE) refuse"
    # An account holding no registration refuses it.
    assert not connect(gateway, cert_file, key_file, endpoint(ACCOUNT_C))
    # Swap the statuses: the decisions follow each account's own registration.
    iot.update_certificate(certificateId=device.cert_id, newStatus="INACTIVE")
    iot_b.update_certificate(certificateId=device.cert_id, newStatus="ACTIVE")
    assert settles(False, True), "A (INACTIVE) must refuse, B (ACTIVE) admit"
    # Deleting A's registration (the first one) leaves B's admitting.
    iot.delete_certificate(certificateId=device.cert_id)
    assert settles(False, True)


def session(gw, cert_file, key_file, server_name):
    """The open TLS socket of an MQTT session through the gateway (None when refused)."""
    return open_session(gw.gateway_port, gw.data_dir / "ca.pem", cert_file, key_file,
                        server_name, "multi")


def test_gateway_live_sessions_follow_their_own_accounts_registration(gateway, tmp_path):
    gateway.reset()
    iot = iot_client(gateway.url, access_key=ACCOUNT_A)
    iot_b = iot_client(gateway.url, access_key=ACCOUNT_B)
    ca = make_ca()
    device = make_leaf(ca)
    cert_file, key_file = tmp_path / "live.pem", tmp_path / "live.key"
    cert_file.write_text(device.pem)
    key_file.write_bytes(device.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    for client in (iot, iot_b):
        client.register_ca_certificate(caCertificate=ca.pem, certificateMode="SNI_ONLY",
                                       setAsActive=True)
        client.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
    sa = session(gateway, cert_file, key_file, endpoint(ACCOUNT_A))
    sb = session(gateway, cert_file, key_file, endpoint(ACCOUNT_B))
    assert sa is not None and sb is not None
    try:
        # B's registration made INACTIVE: B's session ends, A's goes on.
        iot_b.update_certificate(certificateId=device.cert_id, newStatus="INACTIVE")
        assert closed_within(sb, 3.0), "B's session outlived B's UpdateCertificate INACTIVE"
        assert not closed_within(sa, 1.0), "A's session was closed by B's change"
        # B's registration deleted: A's session still goes on.
        iot_b.delete_certificate(certificateId=device.cert_id)
        assert not closed_within(sa, 1.0), "A's session was closed by B's delete"
        # A's made INACTIVE: A's session ends.
        iot.update_certificate(certificateId=device.cert_id, newStatus="INACTIVE")
        assert closed_within(sa, 3.0), "A's session outlived A's UpdateCertificate INACTIVE"
    finally:
        sa.close()
        sb.close()


def test_registrations_survive_a_restart_and_the_first_one_can_go(binary, tmp_path):
    srv = CertplaneServer(binary, tmp_path / "data", dev=True).start()
    try:
        device = make_leaf(make_ca())
        cid = device.cert_id
        a = iot_client(srv.url, access_key=ACCOUNT_A)
        b = iot_client(srv.url, access_key=ACCOUNT_B)
        a.register_certificate_without_ca(certificatePem=device.pem, status="INACTIVE")
        b.register_certificate_without_ca(certificatePem=device.pem, status="ACTIVE")
        srv.stop()
        srv.start()
        a = iot_client(srv.url, access_key=ACCOUNT_A)
        b = iot_client(srv.url, access_key=ACCOUNT_B)
        assert (status_of(a, cid), status_of(b, cid)) == ("INACTIVE", "ACTIVE")
        a.delete_certificate(certificateId=cid)
        srv.stop()
        srv.start()
        b = iot_client(srv.url, access_key=ACCOUNT_B)
        a = iot_client(srv.url, access_key=ACCOUNT_A)
        assert describe(b, cid)["certificateArn"] == cert_arn(cid, ACCOUNT_B)
        assert status_of(b, cid) == "ACTIVE"
        assert all_certificate_ids(a) == []
        with expect_error(b, "ResourceAlreadyExistsException"):
            b.register_certificate_without_ca(certificatePem=device.pem)
        a.register_certificate_without_ca(certificatePem=device.pem)
        assert all_certificate_ids(a) == [cid]
    finally:
        srv.stop()


class SharedNode(CertplaneServer):
    """A second node on the storage (PostgreSQL database) of `shares_with`'s data dir."""

    shares_with = None

    def env(self) -> dict:
        return sdk_engine.server_env(self.shares_with or self.data_dir)


def test_two_nodes_register_in_different_accounts_and_race_in_one(binary, tmp_path):
    if sdk_engine.ENGINE != "postgres":
        pytest.skip("two nodes share a store only on PostgreSQL (this run is on SQLite)")
    n1 = CertplaneServer(binary, tmp_path / "n1", dev=True).start()
    n2 = SharedNode(binary, tmp_path / "n2", dev=True)
    n2.shares_with = n1.data_dir
    n2.start()
    try:
        accounts = [f"{i:012d}" for i in range(500000000001, 500000000005)]
        nodes = [n1, n2]
        clients = {(a, k): iot_client(nodes[k].url, access_key=a) for a in accounts
                   for k in range(2)}
        device = make_leaf(make_ca())
        cid = device.cert_id
        # Each account registers through both nodes at once: one registration per account.
        results = race(lambda i: clients[(accounts[i % 4], (i // 4) % 2)]
                       .register_certificate_without_ca(certificatePem=device.pem)
                       ["certificateArn"], n=16)
        for k, account in enumerate(accounts):
            mine = results[k::4]
            assert [r for r in mine if r[0] == "ok"] == [("ok", cert_arn(cid, account))], results
            assert all(r == ("err", "ResourceAlreadyExistsException")
                       for r in mine if r[0] != "ok"), results
        # A change through one node is the other node's answer at once.
        clients[(accounts[0], 0)].update_certificate(certificateId=cid, newStatus="ACTIVE")
        assert status_of(clients[(accounts[0], 1)], cid) == "ACTIVE"
        assert status_of(clients[(accounts[1], 1)], cid) == "INACTIVE"
        # Racing deletes through both nodes leave exactly the active registration.
        results = race(lambda i: clients[(accounts[1 + i % 3], i % 2)].delete_certificate(
            certificateId=cid), n=6)
        assert sum(r[0] == "ok" for r in results) == 3, results
        assert all(r[0] == "ok" or r[1] == "ResourceNotFoundException" for r in results), results
        for account in accounts[1:]:
            assert all_certificate_ids(clients[(account, 0)]) == []
        assert all_certificate_ids(clients[(accounts[0], 1)]) == [cid]
    finally:
        n2.stop()
        n1.stop()
