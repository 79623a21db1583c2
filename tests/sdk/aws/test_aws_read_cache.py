"""DescribeCertificate answers from a cache of decoded, rendered certificates: every read must
still see every write acknowledged before it — its own, another account's, another process's
on the same data dir, another node's on the same database — and never a removed or replaced
certificate. Run on both engines."""

from __future__ import annotations

import pytest

import sdk_engine
from aws_harness import ACCOUNT_A, ACCOUNT_B, expect_error, iot_client
from aws_x509 import make_self_signed
from certplane_server import CertplaneServer

STATUSES = ["INACTIVE", "ACTIVE", "REVOKED", "INACTIVE", "ACTIVE"]


def describe(iot, cert_id):
    return iot.describe_certificate(certificateId=cert_id)["certificateDescription"]


def test_every_acknowledged_change_is_described_at_once(iot, iot_b):
    made = [iot.create_keys_and_certificate(setAsActive=True)["certificateId"] for _ in range(3)]
    for cid in made:
        describe(iot, cid)  # cached
    for i in range(40):
        cid = made[i % len(made)]
        before = describe(iot, cid)
        status = "INACTIVE" if before["status"] == "ACTIVE" else "ACTIVE"
        iot.update_certificate(certificateId=cid, newStatus=status)
        after = describe(iot, cid)
        assert after["status"] == status, (i, before, after)
        assert after["customerVersion"] == before["customerVersion"] + 1
        assert after["generationId"] != before["generationId"]
        # The others were not touched and still answer as before.
        for other in made:
            if other != cid:
                assert describe(iot, other)["status"] in ("ACTIVE", "INACTIVE")
    # Another account sees neither the cached answer nor the certificate …
    with expect_error(iot_b, "ResourceNotFoundException", 404):
        iot_b.describe_certificate(certificateId=made[0])
    # … until it is offered to it, and then the very next read shows the transfer.
    iot.update_certificate(certificateId=made[0], newStatus="INACTIVE")
    iot.transfer_certificate(certificateId=made[0], targetAwsAccount=ACCOUNT_B)
    assert describe(iot, made[0])["status"] == "PENDING_TRANSFER"
    assert describe(iot_b, made[0])["status"] == "PENDING_TRANSFER"
    iot_b.accept_certificate_transfer(certificateId=made[0], setAsActive=True)
    owned = describe(iot_b, made[0])
    assert (owned["status"], owned["ownedBy"], owned["previousOwnedBy"]) == (
        "ACTIVE", ACCOUNT_B, ACCOUNT_A)
    with expect_error(iot, "ResourceNotFoundException", 404):
        iot.describe_certificate(certificateId=made[0])


def test_a_deleted_and_registered_again_certificate_is_never_served_old(iot):
    pem = make_self_signed("cache-reregistered").pem
    cid = iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")["certificateId"]
    first = describe(iot, cid)
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    iot.delete_certificate(certificateId=cid)
    with expect_error(iot, "ResourceNotFoundException", 404):
        iot.describe_certificate(certificateId=cid)
    # The same certificate again: the same id and a fresh registration, whose first version
    # number is the one the deleted registration started with.
    again = iot.register_certificate_without_ca(certificatePem=pem, status="INACTIVE")
    assert again["certificateId"] == cid
    now = describe(iot, cid)
    assert now["status"] == "INACTIVE"
    assert now["generationId"] != first["generationId"]


class _SharedNode(CertplaneServer):
    """A server on another server's storage: the same SQLite data dir (a second process), or
    the same PostgreSQL database (a second node)."""
    shares_with = None

    def env(self) -> dict:
        return sdk_engine.server_env(self.shares_with or self.data_dir)


@pytest.mark.slow
def test_changes_through_another_process_or_node_are_described_at_once(binary, tmp_path):
    first = CertplaneServer(binary, tmp_path / "node0", dev=True).start()
    nodes = [first]
    try:
        second = _SharedNode(binary, tmp_path / "node1", dev=True)
        if sdk_engine.ENGINE == "sqlite":
            # A second process on the same data dir: it tells the first (the feed's hub)
            # of each change before it answers.
            second.data_dir = first.data_dir
        else:
            second.shares_with = first.data_dir
        nodes.append(second.start())
        clients = [iot_client(n.url, access_key=ACCOUNT_A) for n in nodes]
        made = [clients[0].create_keys_and_certificate(setAsActive=True)["certificateId"]
                for _ in range(2)]
        for c in clients:
            for cid in made:
                describe(c, cid)
        for i in range(60):
            writer, reader = clients[i % 2], clients[(i + 1) % 2]
            cid = made[i % 2]
            status = STATUSES[i % len(STATUSES)]
            if status == "REVOKED":
                # REVOKED is final for certplane's REVOKED → ACTIVE rule: use a fresh one.
                cid = writer.create_keys_and_certificate(setAsActive=False)["certificateId"]
                describe(reader, cid)
            writer.update_certificate(certificateId=cid, newStatus=status)
            got = describe(reader, cid)
            assert got["status"] == status, (i, status, got)
            assert describe(writer, cid)["status"] == status
    finally:
        for n in reversed(nodes):
            n.stop()
