"""Spec §12 scenarios through azure-mgmt-billing over TLS: partner and invoice-section
transfers, the recipient's validate / accept / decline, processing to Completed or
CompletedWithErrors, expiry on the dev clock, and bad input refused with nothing stored."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.mgmt.billing.models import (
    AcceptTransferRequest,
    InitiateTransferRequest,
    PartnerInitiateTransferRequest,
    ProductDetails,
    TransferStatus,
)

from azure_harness import (
    ALICE, ALICE_CLIENT, BOB, BOB_CLIENT, CAROL, CAROL_CLIENT, CUSTOMER, EVE, MCA_ACCOUNT,
    MCA_PROFILE, MPA_ACCOUNT, MPA_PROFILE, SECTION, add_products, billing, dev_client, new_name,
    products, raw, secret_credential, wait_status,
)

PARTNER = (MPA_ACCOUNT, MPA_PROFILE, CUSTOMER)
MCA = (MCA_ACCOUNT, MCA_PROFILE, SECTION)


@pytest.fixture
def alice(srv):
    return billing(srv, secret_credential(srv, ALICE_CLIENT))


@pytest.fixture
def bob(srv):
    return billing(srv, secret_credential(srv, BOB_CLIENT))


@pytest.fixture
def carol(srv):
    return billing(srv, secret_credential(srv, CAROL_CLIENT))


def partner_initiate(client, name, recipient=BOB, reseller="5678", **kw):
    return client.partner_transfers.initiate(
        *PARTNER, name,
        PartnerInitiateTransferRequest(recipient_email_id=recipient, reseller_id=reseller), **kw)


def accept(client, name, *items):
    return client.recipient_transfers.accept(name, AcceptTransferRequest(product_details=[
        ProductDetails(product_type=t, product_id=i) for t, i in items]))


def test_partner_initiate_get_repeat_and_conflict(alice):
    name = new_name()
    created = []
    r = partner_initiate(alice, name, cls=lambda resp, obj, _h: created.append(
        resp.http_response.status_code) or obj)
    assert created == [201]
    assert r.transfer_status == TransferStatus.PENDING
    assert r.initiator_customer_type == "Partner"
    assert r.reseller_id == "5678"
    assert r.recipient_email_id == BOB and r.initiator_email_id == ALICE
    assert isinstance(r.expiration_time, dt.datetime)
    assert r.expiration_time > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=14)
    again = []
    r2 = partner_initiate(alice, name, cls=lambda resp, obj, _h: again.append(
        resp.http_response.status_code) or obj)
    assert again == [200] and r2.as_dict() == r.as_dict()
    with pytest.raises(ResourceExistsError) as e:
        partner_initiate(alice, name, recipient=EVE)
    assert e.value.error.code
    got = alice.partner_transfers.get(*PARTNER, name)
    assert got.name == name and got.recipient_email_id == BOB
    with pytest.raises(ResourceNotFoundError) as e:
        alice.partner_transfers.get(*PARTNER, new_name())
    assert e.value.error.code == "TransferNotFound"


def test_cancel_then_every_action_conflicts(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    r = alice.partner_transfers.cancel(*PARTNER, name)
    assert r.transfer_status == TransferStatus.CANCELED and r.canceled_by == ALICE
    assert alice.partner_transfers.get(*PARTNER, name).transfer_status == TransferStatus.CANCELED
    (sub,) = add_products(srv, BOB, ("AzureSubscription",))
    with pytest.raises(ResourceExistsError):
        alice.partner_transfers.cancel(*PARTNER, name)
    with pytest.raises(ResourceExistsError):
        accept(bob, name, ("AzureSubscription", sub))
    with pytest.raises(ResourceExistsError):
        bob.recipient_transfers.decline(name)
    after = alice.partner_transfers.get(*PARTNER, name)
    assert after.transfer_status == TransferStatus.CANCELED and after.canceled_by == ALICE
    assert products(srv)[sub]["inTransfer"] is None


def test_invoice_section_transfers(carol, bob):
    name = new_name()
    r = carol.transfers.initiate(*MCA, name, InitiateTransferRequest(recipient_email_id=BOB))
    assert r.transfer_status == TransferStatus.PENDING
    assert "initiatorCustomerType" not in r["properties"]
    # The ':' of the MCA account name travels percent-encoded and comes back decoded in the id.
    assert r.id == (f"/providers/Microsoft.Billing/billingAccounts/{MCA_ACCOUNT}"
                    f"/billingProfiles/{MCA_PROFILE}/invoiceSections/{SECTION}/transfers/{name}")
    assert carol.transfers.get(*MCA, name).name == name
    assert name in [t.name for t in carol.transfers.list(*MCA)]
    c = carol.transfers.cancel(*MCA, name)
    assert c.transfer_status == TransferStatus.CANCELED and c.canceled_by == CAROL
    # Partner routes do not apply to a customer agreement, nor MCA routes to a partner one.
    with pytest.raises(HttpResponseError) as e:
        carol.partner_transfers.initiate(MCA_ACCOUNT, MCA_PROFILE, SECTION, new_name(),
                                         PartnerInitiateTransferRequest(recipient_email_id=BOB))
    assert e.value.status_code in (400, 404)


def test_initiator_must_own_the_scope(srv, carol):
    eve = dev_client(srv, EVE)
    name = new_name()
    with pytest.raises(HttpResponseError) as e:
        partner_initiate(eve, name)
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    # Carol owns the MCA profile, not the partner account.
    with pytest.raises(HttpResponseError) as e:
        partner_initiate(carol, name)
    assert e.value.status_code == 403
    alice = dev_client(srv, ALICE)
    with pytest.raises(ResourceNotFoundError):
        alice.partner_transfers.get(*PARTNER, name)


def test_recipient_views_only_their_own(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    mine = [t.name for t in bob.recipient_transfers.list()]
    assert name in mine
    eve = dev_client(srv, EVE)
    assert name not in [t.name for t in eve.recipient_transfers.list()]
    r = bob.recipient_transfers.get(name)
    assert r.id == f"/providers/Microsoft.Billing/transfers/{name}"
    assert r.transfer_status == TransferStatus.PENDING
    with pytest.raises(HttpResponseError) as e:
        eve.recipient_transfers.get(name)
    assert e.value.status_code in (403, 404)
    assert "recipientEmailId" not in (e.value.response.text() or "")


def test_validate_right_and_wrong_recipient(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    sub, disabled = add_products(srv, BOB, ("AzureSubscription",), ("AzureSubscription", "Disabled"))
    body = AcceptTransferRequest(product_details=[
        ProductDetails(product_type="AzureSubscription", product_id=sub),
        ProductDetails(product_type="AzureSubscription", product_id=disabled)])
    v = bob.recipient_transfers.validate(name, body)
    assert v.value[0].properties.status != "Failed"
    assert v.value[0].properties.product_id == sub
    assert v.value[1].properties.status == "Failed"
    assert v.value[1].properties.results[0].level == "Error"
    eve = dev_client(srv, EVE)
    w = eve.recipient_transfers.validate(name, body)
    assert w.value[0].properties.results[0].code == "NotIntendedRecipient"
    assert w.value[0].properties.results[0].level == "Error"
    # Validation changes nothing.
    assert bob.recipient_transfers.get(name).transfer_status == TransferStatus.PENDING
    assert products(srv)[sub]["inTransfer"] is None


def test_accept_processes_to_completed(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    sub, ri = add_products(srv, BOB, ("AzureSubscription",), ("AzureReservation",))
    r = accept(bob, name, ("AzureSubscription", sub), ("AzureReservation", ri))
    assert r.transfer_status == TransferStatus.IN_PROGRESS
    assert [d.product_type for d in r.detailed_transfer_status] == [
        "AzureSubscription", "AzureReservation"]
    done = wait_status(lambda: alice.partner_transfers.get(*PARTNER, name),
                       {TransferStatus.COMPLETED, TransferStatus.COMPLETED_WITH_ERRORS,
                        TransferStatus.FAILED})
    assert done.transfer_status == TransferStatus.COMPLETED
    assert all(d.transfer_status == "Completed" for d in done.detailed_transfer_status)
    scope = (f"/providers/Microsoft.Billing/billingAccounts/{MPA_ACCOUNT}/billingProfiles/"
             f"{MPA_PROFILE}/customers/{CUSTOMER}")
    p = products(srv)
    assert p[sub]["scope"] == scope and p[ri]["scope"] == scope
    assert p[sub]["inTransfer"] is None
    # Cancel after approval is refused.
    with pytest.raises(ResourceExistsError):
        alice.partner_transfers.cancel(*PARTNER, name)


def test_one_failing_product_completes_with_errors(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    sub, ri = add_products(srv, BOB, ("AzureSubscription",),
                           ("AzureReservation", "Active", "ReservationNotMovable"))
    accept(bob, name, ("AzureSubscription", sub), ("AzureReservation", ri))
    done = wait_status(lambda: bob.recipient_transfers.get(name),
                       {TransferStatus.COMPLETED, TransferStatus.COMPLETED_WITH_ERRORS,
                        TransferStatus.FAILED})
    assert done.transfer_status == TransferStatus.COMPLETED_WITH_ERRORS
    by_id = {d.product_id: d for d in done.detailed_transfer_status}
    assert by_id[sub].transfer_status == "Completed"
    assert by_id[ri].transfer_status == "Failed"
    assert by_id[ri].error_details.code == "ReservationNotMovable"
    assert products(srv)[ri]["scope"] is None


def test_decline_then_accept_conflicts(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    r = bob.recipient_transfers.decline(name)
    assert r.transfer_status == TransferStatus.DECLINED
    (sub,) = add_products(srv, BOB, ("AzureSubscription",))
    with pytest.raises(ResourceExistsError):
        accept(bob, name, ("AzureSubscription", sub))
    assert bob.recipient_transfers.get(name).transfer_status == TransferStatus.DECLINED


def test_refused_accepts_leave_the_transfer_pending(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    disabled, = add_products(srv, BOB, ("AzureSubscription", "Disabled"))
    eves, = add_products(srv, EVE, ("AzureSubscription",))
    for items in ([("AzureSubscription", disabled)], [("AzureSubscription", eves)]):
        with pytest.raises(HttpResponseError) as e:
            accept(bob, name, *items)
        assert 400 <= e.value.status_code < 500 and e.value.error.code
    eve = dev_client(srv, EVE)
    with pytest.raises(HttpResponseError) as e:
        accept(eve, name, ("AzureSubscription", eves))
    assert e.value.status_code == 403 and e.value.error.code == "NotIntendedRecipient"
    with pytest.raises(HttpResponseError) as e:
        eve.recipient_transfers.decline(name)
    assert e.value.status_code == 403
    assert bob.recipient_transfers.get(name).transfer_status == TransferStatus.PENDING


@pytest.mark.parametrize("body", [
    {"properties": {"productDetails": []}},
    {"properties": {}},
    {},
    {"properties": {"productDetails": [{"productType": "Bogus", "productId": "x"}]}},
])
def test_accept_bad_product_details_is_400(alice, bob, body):
    name = new_name()
    partner_initiate(alice, name)
    with pytest.raises(HttpResponseError) as e:
        bob.recipient_transfers.accept(name, body)
    assert e.value.status_code == 400
    assert e.value.model.error.code
    assert bob.recipient_transfers.get(name).transfer_status == TransferStatus.PENDING


@pytest.mark.parametrize("name,body", [
    ("okname", {}),
    ("okname", {"properties": {"recipientEmailId": "not-an-email"}}),
    ("okname", {"properties": {}}),
    ("UpperCase", {"properties": {"recipientEmailId": BOB}}),
    ("with-dash", {"properties": {"recipientEmailId": BOB}}),
])
def test_initiate_bad_input_is_400_and_stores_nothing(alice, name, body):
    name = name + new_name() if name == "okname" else name
    with pytest.raises(HttpResponseError) as e:
        alice.partner_transfers.initiate(*PARTNER, name, body)
    assert e.value.status_code == 400 and e.value.model.error.code
    with pytest.raises(HttpResponseError) as e:
        alice.partner_transfers.get(*PARTNER, name)
    assert e.value.status_code in (400, 404)


def test_expiry_on_the_dev_clock(alice, bob, srv):
    name = new_name()
    partner_initiate(alice, name)
    (sub,) = add_products(srv, BOB, ("AzureSubscription",))
    srv.advance(16 * 86400)
    # Tokens are checked on the server clock too: fresh credentials after moving it.
    alice2 = billing(srv, secret_credential(srv, ALICE_CLIENT))
    bob2 = billing(srv, secret_credential(srv, BOB_CLIENT))
    with pytest.raises(HttpResponseError) as e:
        accept(bob2, name, ("AzureSubscription", sub))
    assert e.value.status_code == 409 and e.value.error.code == "TransferExpired"
    assert bob2.recipient_transfers.get(name).transfer_status == TransferStatus.EXPIRED
    listed = {t.name: t for t in alice2.partner_transfers.list(*PARTNER)}
    assert listed[name].transfer_status == TransferStatus.EXPIRED
    assert products(srv)[sub]["inTransfer"] is None


def test_no_token_is_401_with_challenge(srv):
    status, headers, body = raw(srv, "GET", f"/providers/Microsoft.Billing/transfers?api-version=2024-04-01")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "AuthenticationFailed"
    assert "retry-after" not in headers


def test_bad_token_is_client_authentication_error(srv):
    from azure.core.credentials import AccessToken

    class Garbage:
        def get_token(self, *scopes, **kw):
            return AccessToken("not.a.jwt", 2**31)

    client = billing(srv, Garbage())
    name = new_name()
    with pytest.raises(ClientAuthenticationError) as e:
        partner_initiate(client, name)
    assert e.value.error.code == "InvalidAuthenticationToken"
    with pytest.raises(ResourceNotFoundError):
        dev_client(srv, ALICE).partner_transfers.get(*PARTNER, name)
