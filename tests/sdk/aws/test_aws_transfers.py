"""Certificate transfers between accounts A (111111111111) and B (222222222222)
(spec §3, §11.2, §13 #21-25; seed: CancelCertificateTransfer)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from botocore.exceptions import ClientError

from aws_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    ACCOUNT_C,
    all_certificate_ids,
    as_utc,
    cert_arn,
    close_to,
    error_code,
    expect_4xx,
    expect_error,
    status_of,
)

UNKNOWN_ID = "ef" * 32
POLICY_DOC = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}'


def new_inactive(iot):
    resp = iot.create_keys_and_certificate(setAsActive=False)
    return resp["certificateId"], resp["certificateArn"]


def start_transfer(iot, message="take it", target=ACCOUNT_B):
    cid, _ = new_inactive(iot)
    kwargs = {"certificateId": cid, "targetAwsAccount": target}
    if message is not None:
        kwargs["transferMessage"] = message
    iot.transfer_certificate(**kwargs)
    return cid


def describe(client, cid):
    return client.describe_certificate(certificateId=cid)["certificateDescription"]


def outgoing_ids(client):
    result = client.get_paginator("list_outgoing_certificates").paginate().build_full_result()
    return [c["certificateId"] for c in result.get("outgoingCertificates", [])]


def assert_still_pending(iot, iot_b, cid):
    desc = describe(iot, cid)
    assert desc["status"] == "PENDING_TRANSFER"
    assert desc["ownedBy"] == ACCOUNT_A
    assert cid in outgoing_ids(iot)


# --- TransferCertificate preconditions ------------------------------------------------------------

def test_transfer_active_certificate_is_refused(iot):
    cid = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    with expect_error(iot, "CertificateStateException", 406):
        iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    assert status_of(iot, cid) == "ACTIVE"
    assert outgoing_ids(iot) == []


def test_transfer_with_policy_attached_conflicts(iot):
    cid, arn = new_inactive(iot)
    iot.create_policy(policyName="pol", policyDocument=POLICY_DOC)
    iot.attach_policy(policyName="pol", target=arn)
    with expect_error(iot, "TransferConflictException", 409):
        iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    assert status_of(iot, cid) == "INACTIVE"
    iot.detach_policy(policyName="pol", target=arn)
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    assert status_of(iot, cid) == "PENDING_TRANSFER"


def test_transfer_with_thing_attached_conflicts(iot):
    cid, arn = new_inactive(iot)
    iot.create_thing(thingName="sensor-1")
    iot.attach_thing_principal(thingName="sensor-1", principal=arn)
    with expect_error(iot, "TransferConflictException", 409):
        iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B)
    assert status_of(iot, cid) == "INACTIVE"
    assert outgoing_ids(iot) == []


def test_transfer_message_length_limit(iot):
    cid, _ = new_inactive(iot)
    with expect_error(iot, "InvalidRequestException", 400):
        iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B, transferMessage="m" * 129)
    assert status_of(iot, cid) == "INACTIVE"
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B, transferMessage="m" * 128)
    assert describe(iot, cid)["transferData"]["transferMessage"] == "m" * 128


def test_message_limits_count_characters_not_bytes(iot, iot_b):
    cid, _ = new_inactive(iot)
    message = "\u00e9" * 128  # 128 characters, 256 UTF-8 bytes
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B, transferMessage=message)
    assert describe(iot, cid)["transferData"]["transferMessage"] == message
    iot_b.reject_certificate_transfer(certificateId=cid, rejectReason="\u6f22" * 128)
    assert describe(iot, cid)["transferData"]["rejectReason"] == "\u6f22" * 128


def test_transfer_to_malformed_account_is_invalid(iot_novalidate):
    cid = iot_novalidate.create_keys_and_certificate()["certificateId"]
    with expect_error(iot_novalidate, "InvalidRequestException"):
        iot_novalidate.transfer_certificate(certificateId=cid, targetAwsAccount="12345")
    assert status_of(iot_novalidate, cid) == "INACTIVE"


def test_transfer_unknown_certificate(iot):
    with expect_error(iot, "ResourceNotFoundException"):
        iot.transfer_certificate(certificateId=UNKNOWN_ID, targetAwsAccount=ACCOUNT_B)


def test_reject_message_length_limit(iot, iot_b):
    cid = start_transfer(iot)
    with expect_error(iot_b, "InvalidRequestException"):
        iot_b.reject_certificate_transfer(certificateId=cid, rejectReason="r" * 129)
    assert_still_pending(iot, iot_b, cid)


# --- Happy path ------------------------------------------------------------------------------------

def test_transfer_happy_path_shapes(server, iot, iot_b):
    cid, arn = new_inactive(iot)
    before = server.clock()
    resp = iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B,
                                    transferMessage="hello world")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    transferred = resp["transferredCertificateArn"]
    assert isinstance(transferred, str) and transferred.endswith(f":cert/{cid}")

    desc = describe(iot, cid)
    assert desc["status"] == "PENDING_TRANSFER"
    assert desc["ownedBy"] == ACCOUNT_A
    td = desc["transferData"]
    assert td["transferMessage"] == "hello world"
    assert isinstance(td["transferDate"], dt.datetime)
    assert close_to(td["transferDate"], before, 120)
    assert "acceptDate" not in td and "rejectDate" not in td

    out = iot.list_outgoing_certificates()["outgoingCertificates"]
    assert len(out) == 1
    item = out[0]
    assert item["certificateId"] == cid
    assert item["certificateArn"] == arn
    assert item["transferredTo"] == ACCOUNT_B
    assert item["transferMessage"] == "hello world"
    assert isinstance(item["transferDate"], dt.datetime)
    assert isinstance(item["creationDate"], dt.datetime)
    assert iot_b.list_outgoing_certificates()["outgoingCertificates"] == []

    # The target discovers the pending transfer through ListCertificates.
    listed = {c["certificateId"]: c for c in iot_b.list_certificates()["certificates"]}
    assert cid in listed and listed[cid]["status"] == "PENDING_TRANSFER"


def test_accept_with_set_as_active(iot, iot_b):
    cid = start_transfer(iot, "for you")
    resp = iot_b.accept_certificate_transfer(certificateId=cid, setAsActive=True)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200

    desc = describe(iot_b, cid)
    assert desc["status"] == "ACTIVE"
    assert desc["ownedBy"] == ACCOUNT_B
    assert desc["previousOwnedBy"] == ACCOUNT_A
    assert desc["certificateArn"] == cert_arn(cid, ACCOUNT_B)
    td = desc["transferData"]
    assert isinstance(td["acceptDate"], dt.datetime)
    assert isinstance(td["transferDate"], dt.datetime)
    assert as_utc(td["acceptDate"]) >= as_utc(td["transferDate"])
    assert td.get("transferMessage") == "for you"

    with expect_error(iot, "ResourceNotFoundException", 404):
        iot.describe_certificate(certificateId=cid)
    assert cid not in all_certificate_ids(iot)
    assert outgoing_ids(iot) == []
    listed = {c["certificateId"]: c for c in iot_b.list_certificates()["certificates"]}
    assert listed[cid]["status"] == "ACTIVE"
    assert listed[cid]["certificateArn"] == cert_arn(cid, ACCOUNT_B)

    with expect_error(iot_b, "TransferAlreadyCompletedException", 410):
        iot_b.accept_certificate_transfer(certificateId=cid, setAsActive=True)
    assert describe(iot_b, cid)["status"] == "ACTIVE"


def test_accept_without_set_as_active_is_inactive(iot, iot_b):
    cid = start_transfer(iot, message=None)
    iot_b.accept_certificate_transfer(certificateId=cid)
    desc = describe(iot_b, cid)
    assert desc["status"] == "INACTIVE"
    assert desc["ownedBy"] == ACCOUNT_B
    # the new owner can manage it
    iot_b.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert status_of(iot_b, cid) == "ACTIVE"


def test_reject_returns_certificate_to_source(iot, iot_b):
    cid = start_transfer(iot)
    resp = iot_b.reject_certificate_transfer(certificateId=cid, rejectReason="not mine")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    desc = describe(iot, cid)
    assert desc["status"] == "INACTIVE"
    assert desc["ownedBy"] == ACCOUNT_A
    td = desc["transferData"]
    assert td["rejectReason"] == "not mine"
    assert isinstance(td["rejectDate"], dt.datetime)
    assert "acceptDate" not in td
    assert outgoing_ids(iot) == []
    assert cid not in all_certificate_ids(iot_b)
    with expect_error(iot, "TransferAlreadyCompletedException", 410):
        iot.cancel_certificate_transfer(certificateId=cid)
    assert describe(iot, cid)["status"] == "INACTIVE"


def test_cancel_by_source(iot, iot_b):
    cid = start_transfer(iot)
    resp = iot.cancel_certificate_transfer(certificateId=cid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    desc = describe(iot, cid)
    assert desc["status"] == "INACTIVE"
    assert desc["ownedBy"] == ACCOUNT_A
    assert outgoing_ids(iot) == []
    assert cid not in all_certificate_ids(iot_b)
    with expect_error(iot_b, "TransferAlreadyCompletedException", 410):
        iot_b.accept_certificate_transfer(certificateId=cid)
    assert describe(iot, cid)["status"] == "INACTIVE"
    # The source may now use or delete it again.
    iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert status_of(iot, cid) == "ACTIVE"


def act(iot, iot_b, action, cid):
    if action == "accept":
        return iot_b.accept_certificate_transfer(certificateId=cid)
    if action == "reject":
        return iot_b.reject_certificate_transfer(certificateId=cid)
    if action == "cancel":
        return iot.cancel_certificate_transfer(certificateId=cid)
    raise ValueError(action)


@pytest.mark.parametrize("first", ["accept", "reject", "cancel"])
@pytest.mark.parametrize("second", ["accept", "reject", "cancel"])
def test_any_action_after_finished_transfer_is_already_completed(iot, iot_b, first, second):
    cid = start_transfer(iot)
    act(iot, iot_b, first, cid)
    owner = iot_b if first == "accept" else iot
    expected = describe(owner, cid)
    client = iot_b if second in ("accept", "reject") else iot
    with expect_error(client, "TransferAlreadyCompletedException", 410):
        act(iot, iot_b, second, cid)
    after = describe(owner, cid)
    assert (after["status"], after["ownedBy"]) == (expected["status"], expected["ownedBy"])


def test_new_transfer_after_rejection(iot, iot_b):
    cid = start_transfer(iot)
    iot_b.reject_certificate_transfer(certificateId=cid)
    iot.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_B, transferMessage="again")
    assert describe(iot, cid)["status"] == "PENDING_TRANSFER"
    iot_b.accept_certificate_transfer(certificateId=cid, setAsActive=True)
    assert describe(iot_b, cid)["status"] == "ACTIVE"


def test_transfer_back_to_original_owner(iot, iot_b):
    cid = start_transfer(iot)
    iot_b.accept_certificate_transfer(certificateId=cid)
    iot_b.transfer_certificate(certificateId=cid, targetAwsAccount=ACCOUNT_A)
    assert outgoing_ids(iot_b) == [cid]
    iot.accept_certificate_transfer(certificateId=cid)
    desc = describe(iot, cid)
    assert desc["ownedBy"] == ACCOUNT_A
    assert desc["previousOwnedBy"] == ACCOUNT_B
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.describe_certificate(certificateId=cid)


# --- Wrong caller ---------------------------------------------------------------------------------

def test_target_cannot_cancel(iot, iot_b):
    cid = start_transfer(iot)
    with expect_4xx():
        iot_b.cancel_certificate_transfer(certificateId=cid)
    assert_still_pending(iot, iot_b, cid)
    iot_b.accept_certificate_transfer(certificateId=cid)
    assert describe(iot_b, cid)["ownedBy"] == ACCOUNT_B


@pytest.mark.parametrize("action", ["accept", "reject"])
def test_source_cannot_accept_or_reject(iot, iot_b, action):
    cid = start_transfer(iot)
    with expect_4xx():
        if action == "accept":
            iot.accept_certificate_transfer(certificateId=cid, setAsActive=True)
        else:
            iot.reject_certificate_transfer(certificateId=cid)
    assert_still_pending(iot, iot_b, cid)
    iot.cancel_certificate_transfer(certificateId=cid)
    assert status_of(iot, cid) == "INACTIVE"


@pytest.mark.parametrize("action", ["accept", "reject", "cancel"])
def test_third_account_cannot_touch_transfer(iot, iot_b, iot_c, action):
    cid = start_transfer(iot)
    with expect_4xx():
        {"accept": iot_c.accept_certificate_transfer, "reject": iot_c.reject_certificate_transfer,
         "cancel": iot_c.cancel_certificate_transfer}[action](certificateId=cid)
    assert_still_pending(iot, iot_b, cid)


def test_accept_unknown_certificate(iot_b):
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.accept_certificate_transfer(certificateId=UNKNOWN_ID)
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.reject_certificate_transfer(certificateId=UNKNOWN_ID)
    with expect_error(iot_b, "ResourceNotFoundException"):
        iot_b.cancel_certificate_transfer(certificateId=UNKNOWN_ID)


def test_accept_certificate_never_transferred(iot, iot_b):
    cid, _ = new_inactive(iot)
    with expect_4xx():
        iot_b.accept_certificate_transfer(certificateId=cid)
    assert describe(iot, cid)["status"] == "INACTIVE"
    assert describe(iot, cid)["ownedBy"] == ACCOUNT_A


# --- ListOutgoingCertificates paging ---------------------------------------------------------------

def test_list_outgoing_paging(server, iot):
    ids = []
    for i in range(3):
        ids.append(start_transfer(iot, f"msg {i}", target=ACCOUNT_B if i % 2 == 0 else ACCOUNT_C))
        server.advance(1)
    first = iot.list_outgoing_certificates(pageSize=2, ascendingOrder=True)
    assert len(first["outgoingCertificates"]) == 2 and first.get("nextMarker")
    second = iot.list_outgoing_certificates(pageSize=2, ascendingOrder=True, marker=first["nextMarker"])
    assert len(second["outgoingCertificates"]) == 1 and "nextMarker" not in second
    items = first["outgoingCertificates"] + second["outgoingCertificates"]
    assert [c["certificateId"] for c in items] == ids
    assert [c["transferredTo"] for c in items] == [ACCOUNT_B, ACCOUNT_C, ACCOUNT_B]
    assert sorted(outgoing_ids(iot)) == sorted(ids)


# --- Races --------------------------------------------------------------------------------------------

def test_concurrent_accept_reject_cancel_exactly_one_wins(iot, iot_b):
    threads_per_round = 32
    for round_no in range(10):
        cid = start_transfer(iot, f"race {round_no}")
        barrier = threading.Barrier(threads_per_round)
        results: list = [None] * threads_per_round

        def worker(i):
            action = "cancel" if i % 2 == 0 else ("accept" if i % 4 == 1 else "reject")
            barrier.wait()
            try:
                act(iot, iot_b, action, cid)
                results[i] = (action, "ok")
            except ClientError as e:
                results[i] = (action, error_code(e))
            except Exception as e:  # noqa: BLE001 - report transport failures as results
                results[i] = (action, repr(e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        winners = [r for r in results if r and r[1] == "ok"]
        losers = [r for r in results if r and r[1] != "ok"]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners: {results}"
        bad = [r for r in losers if r[1] != "TransferAlreadyCompletedException"]
        assert not bad, f"round {round_no}: unexpected loser outcomes {bad}"
        assert len(losers) == threads_per_round - 1

        action = winners[0][0]
        if action == "accept":
            desc = describe(iot_b, cid)
            assert desc["ownedBy"] == ACCOUNT_B and desc["status"] == "INACTIVE"
            with expect_error(iot, "ResourceNotFoundException"):
                iot.describe_certificate(certificateId=cid)
        else:
            desc = describe(iot, cid)
            assert desc["ownedBy"] == ACCOUNT_A and desc["status"] == "INACTIVE"
        assert cid not in outgoing_ids(iot)
