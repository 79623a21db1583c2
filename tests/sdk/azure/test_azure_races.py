"""Races between callers on one transfer: accept against cancel, concurrent identical PUTs, and
replays of the same call (same x-ms-client-request-id)."""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError
from azure.mgmt.billing.models import (
    AcceptTransferRequest, PartnerInitiateTransferRequest, ProductDetails, TransferStatus,
)

from certplane_server import race_threads
from azure_harness import (
    ALICE, BOB, CUSTOMER, MPA_ACCOUNT, MPA_PROFILE, add_products, dev_client, new_name, products,
    raw,
)

PARTNER = (MPA_ACCOUNT, MPA_PROFILE, CUSTOMER)
PATH = (f"/providers/Microsoft.Billing/billingAccounts/{MPA_ACCOUNT}"
        f"/billingProfiles/{MPA_PROFILE}/customers/{CUSTOMER}/transfers")


def test_accept_and_cancel_race_one_winner(srv):
    alice, bob = dev_client(srv, ALICE), dev_client(srv, BOB)
    for _ in range(5):
        name = new_name()
        alice.partner_transfers.initiate(*PARTNER, name,
                                         PartnerInitiateTransferRequest(recipient_email_id=BOB))
        (sub,) = add_products(srv, BOB, ("AzureSubscription",))
        body = AcceptTransferRequest(product_details=[
            ProductDetails(product_type="AzureSubscription", product_id=sub)])

        def act(i):
            if i % 2 == 0:
                return bob.recipient_transfers.accept(name, body).transfer_status
            return alice.partner_transfers.cancel(*PARTNER, name).transfer_status

        results = race_threads(4, act, HttpResponseError, lambda e: e.status_code)
        wins = [r for r in results if r[0] == "ok"]
        assert len(wins) == 1, results
        assert all(r == ("err", 409) for r in results if r[0] != "ok"), results
        final = alice.partner_transfers.get(*PARTNER, name).transfer_status
        if wins[0][1] == TransferStatus.CANCELED:
            assert final == TransferStatus.CANCELED
            assert products(srv)[sub]["inTransfer"] is None
        else:
            assert final in (TransferStatus.IN_PROGRESS, TransferStatus.COMPLETED)


def test_concurrent_identical_puts_make_one_transfer(srv):
    alice = dev_client(srv, ALICE)
    name = new_name()
    codes = []

    def put(i):
        r = alice.partner_transfers.initiate(
            *PARTNER, name, PartnerInitiateTransferRequest(recipient_email_id=BOB),
            cls=lambda resp, obj, _h: (resp.http_response.status_code, obj))
        codes.append(r[0])
        return r[1].expiration_time

    results = race_threads(6, put, HttpResponseError, lambda e: e.status_code)
    assert all(r[0] == "ok" for r in results), results
    assert sorted(codes) == [200] * 5 + [201]
    assert len({r[1] for r in results}) == 1


def test_replayed_cancel_and_accept_answer_the_same(srv):
    name = new_name()
    raw(srv, "PUT", f"{PATH}/{name}?api-version=2024-04-01",
        {"properties": {"recipientEmailId": BOB}}, email=ALICE)
    rid = {"x-ms-client-request-id": "11111111-2222-3333-4444-555555555555"}
    first = raw(srv, "POST", f"{PATH}/{name}/cancel?api-version=2024-04-01", email=ALICE, headers=rid)
    again = raw(srv, "POST", f"{PATH}/{name}/cancel?api-version=2024-04-01", email=ALICE, headers=rid)
    assert first[0] == again[0] == 200 and first[2] == again[2]
    other = raw(srv, "POST", f"{PATH}/{name}/cancel?api-version=2024-04-01", email=ALICE)
    assert other[0] == 409
    name = new_name()
    raw(srv, "PUT", f"{PATH}/{name}?api-version=2024-04-01",
        {"properties": {"recipientEmailId": BOB}}, email=ALICE)
    (sub,) = add_products(srv, BOB, ("AzureSubscription",))
    body = {"properties": {"productDetails": [{"productType": "AzureSubscription", "productId": sub}]}}
    path = f"/providers/Microsoft.Billing/transfers/{name}/accept?api-version=2024-04-01"
    first = raw(srv, "POST", path, body, email=BOB, headers=rid)
    again = raw(srv, "POST", path, body, email=BOB, headers=rid)
    assert first[0] == 200 and again[0] == 200
    assert raw(srv, "POST", path, body, email=BOB)[0] == 409
