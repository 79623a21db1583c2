"""Wire details outside the SDK's happy path: the seed's 2019-10-01-preview routes and shapes
over raw HTTPS, api-version rules, request/correlation ids, no Retry-After on client errors
(the SDK makes exactly one attempt), and paging past 40 transfers through nextLink."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.billing.models import PartnerInitiateTransferRequest

from azure_harness import (
    ALICE, BOB, CUSTOMER, EVE, MPA_ACCOUNT, MPA_PROFILE, add_products, dev_client, new_name, raw,
    wait_status,
)

PARTNER_PATH = (f"/providers/Microsoft.Billing/billingAccounts/{MPA_ACCOUNT}"
                f"/billingProfiles/{MPA_PROFILE}/customers/{CUSTOMER}")
V2019 = "api-version=2019-10-01-preview"
V2024 = "api-version=2024-04-01"


def initiate(srv, name):
    status, _, body = raw(srv, "PUT", f"{PARTNER_PATH}/transfers/{name}?{V2024}",
                          {"properties": {"recipientEmailId": BOB}}, email=ALICE)
    assert status == 201, body
    return body


def test_seed_delete_cancel_answers_transfer_details(srv):
    name = new_name()
    initiate(srv, name)
    status, headers, body = raw(srv, "DELETE", f"{PARTNER_PATH}/transfers/{name}?{V2019}",
                                email=ALICE)
    assert status == 200, body
    p = body["properties"]
    assert p["transferStatus"] == "Canceled" and p["canceledBy"] == ALICE
    for key in ("creationTime", "expirationTime", "lastModifiedTime", "recipientEmailId",
                "initiatorEmailId"):
        assert p[key], key
    assert p["billingAccountId"] == f"/providers/Microsoft.Billing/billingAccounts/{MPA_ACCOUNT}"
    assert p["billingProfileId"].endswith(f"/billingProfiles/{MPA_PROFILE}")
    assert p["invoiceSectionId"] == PARTNER_PATH
    assert headers["x-ms-request-id"] and headers["x-ms-correlation-request-id"]
    assert headers["content-type"].startswith("application/json")
    # DELETE is not a 2024-04-01 operation (there cancel is POST .../cancel).
    status, _, body = raw(srv, "DELETE", f"{PARTNER_PATH}/transfers/{name}?{V2024}", email=ALICE)
    assert status == 405 and body["error"]["code"]


def test_legacy_initiate_accept_and_error_details(srv):
    sub, ri = add_products(srv, BOB, ("AzureSubscription",),
                           ("AzureReservation", "Active", "ReservationNotMovable"))
    status, _, body = raw(srv, "POST", f"{PARTNER_PATH}/initiateTransfer?{V2019}",
                          {"properties": {"recipientEmailId": BOB}}, email=ALICE)
    assert status == 200, body
    name = body["name"]
    assert body["properties"]["transferStatus"] == "Pending"
    products = {"properties": {"productDetails": [
        {"productType": "AzureSubscription", "productId": sub},
        {"productType": "AzureReservation", "productId": ri}]}}
    status, _, v = raw(srv, "POST", f"/providers/Microsoft.Billing/transfers/{name}/validateTransfer?{V2019}",
                       products, email=BOB)
    assert status == 200 and [x["properties"]["status"] for x in v["value"]] == ["Passed", "Passed"]
    # The 2019 accept example puts the products under properties.value.
    legacy = {"properties": {"value": products["properties"]["productDetails"]}}
    status, _, body = raw(srv, "POST", f"/providers/Microsoft.Billing/transfers/{name}/acceptTransfer?{V2019}",
                          legacy, email=BOB)
    assert status == 200, body
    assert body["properties"]["transferStatus"] == "InProgress"
    client = dev_client(srv, BOB)
    wait_status(lambda: client.recipient_transfers.get(name), {"CompletedWithErrors"})
    status, _, body = raw(srv, "GET", f"/providers/Microsoft.Billing/transfers/{name}?{V2019}",
                          email=BOB)
    failed = [d for d in body["properties"]["detailedTransferStatus"] if d["productId"] == ri][0]
    assert failed["errorDetails"] == {"errorCode": "ReservationNotMovable",
                                      "errorMessage": failed["errorDetails"]["errorMessage"]}
    # ... and the 2024-04-01 view of the same transfer uses {code, message}.
    status, _, body = raw(srv, "GET", f"/providers/Microsoft.Billing/transfers/{name}?{V2024}",
                          email=BOB)
    failed = [d for d in body["properties"]["detailedTransferStatus"] if d["productId"] == ri][0]
    assert failed["errorDetails"]["code"] == "ReservationNotMovable"
    # Legacy decline on a finished transfer conflicts.
    status, _, body = raw(srv, "POST", f"/providers/Microsoft.Billing/transfers/{name}/declineTransfer?{V2019}",
                          email=BOB)
    assert status == 409


def test_api_version_rules(srv):
    status, _, body = raw(srv, "GET", "/providers/Microsoft.Billing/transfers", email=BOB)
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    status, _, body = raw(srv, "GET", "/providers/Microsoft.Billing/transfers?api-version=2021-01-01",
                          email=BOB)
    assert status == 400 and body["error"]["code"] == "NoRegisteredProviderFound"
    status, _, body = raw(srv, "GET", "/providers/Microsoft.Billing/transfers?api-version=nope",
                          email=BOB)
    assert status == 400 and body["error"]["code"] == "InvalidApiVersionParameter"


def test_correlation_id_is_echoed(srv):
    status, headers, _ = raw(srv, "GET", f"/providers/Microsoft.Billing/transfers?{V2024}",
                             email=BOB, headers={"x-ms-correlation-request-id": "abc-123"})
    assert status == 200 and headers["x-ms-correlation-request-id"] == "abc-123"
    assert headers["x-ms-request-id"] != "abc-123"


def test_client_errors_are_tried_once_without_retry_after(srv):
    client = dev_client(srv, ALICE)
    seen = []

    def hook(response):
        seen.append((response.http_response.status_code,
                     response.http_response.headers.get("Retry-After")))

    for call in (
        lambda: client.partner_transfers.get(MPA_ACCOUNT, MPA_PROFILE, CUSTOMER, new_name(),
                                             raw_response_hook=hook),
        lambda: client.partner_transfers.initiate(MPA_ACCOUNT, MPA_PROFILE, CUSTOMER, "Bad-Name",
                                                  {"properties": {"recipientEmailId": BOB}},
                                                  raw_response_hook=hook),
        lambda: dev_client(srv, EVE).partner_transfers.initiate(
            MPA_ACCOUNT, MPA_PROFILE, CUSTOMER, new_name(),
            PartnerInitiateTransferRequest(recipient_email_id=BOB), raw_response_hook=hook),
    ):
        before = len(seen)
        with pytest.raises(HttpResponseError) as e:
            call()
        assert len(seen) == before + 1, seen
        assert e.value.error.code != "MissingSubscriptionRegistration"
    assert [s for s, _ in seen] == [404, 400, 403]
    assert all(ra is None for _, ra in seen)


def test_paging_past_40(srv, binary, tmp_path):
    # A scope of its own, so the count is exact.
    from azure_harness import import_seed
    account = "PCN.paging" + new_name()[:8]
    import_seed(srv, {"billingAccounts": [{
        "name": account, "agreementType": "MicrosoftPartnerAgreement", "owners": [ALICE],
        "billingProfiles": [{"name": "p", "customers": [{"name": "c"}]}]}]})
    client = dev_client(srv, ALICE)
    names = {new_name() for _ in range(45)}
    for n in names:
        client.partner_transfers.initiate(account, "p", "c", n,
                                          PartnerInitiateTransferRequest(recipient_email_id=EVE))
    pages = list(client.partner_transfers.list(account, "p", "c").by_page())
    listed = [t.name for page in pages for t in page]
    assert len(listed) == 45 and set(listed) == names
    assert [len(list(p)) for p in list(client.partner_transfers.list(account, "p", "c").by_page())] == [20, 20, 5]
    # The recipient's list pages the same way and holds no one else's transfers.
    mine = [t.name for t in dev_client(srv, EVE).recipient_transfers.list()]
    assert names <= set(mine) and len(mine) == len(set(mine))
    status, _, body = raw(srv, "GET", f"/providers/Microsoft.Billing/billingAccounts/{account}"
                          f"/billingProfiles/p/customers/c/transfers?{V2024}", email=ALICE)
    assert len(body["value"]) == 20
    assert body["nextLink"].startswith(f"/providers/Microsoft.Billing/billingAccounts/{account}")
    status, _, body = raw(srv, "GET", f"/providers/Microsoft.Billing/billingAccounts/{account}"
                          f"/billingProfiles/p/customers/c/transfers?{V2024}&$skiptoken=garbage",
                          email=ALICE)
    assert status == 400


def test_unknown_transfer_via_recipient_route(srv):
    with pytest.raises(ResourceNotFoundError) as e:
        dev_client(srv, BOB).recipient_transfers.get(new_name())
    assert e.value.error.code == "TransferNotFound"
