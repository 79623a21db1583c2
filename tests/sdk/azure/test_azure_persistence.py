"""Restarts: a Pending transfer survives with the same status and expiry; an accepted transfer
interrupted by a restart is processed to the end by the next process; the TTL is configurable."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.billing.models import (
    AcceptTransferRequest, PartnerInitiateTransferRequest, ProductDetails, TransferStatus,
)

from azure_harness import (
    ALICE, BOB, CUSTOMER, MPA_ACCOUNT, MPA_PROFILE, add_products, dev_client, import_seed,
    new_name, products, start_server, wait_status,
)

PARTNER = (MPA_ACCOUNT, MPA_PROFILE, CUSTOMER)

pytestmark = pytest.mark.slow


@pytest.fixture
def own(binary, tmp_path):
    srv = start_server(binary, tmp_path / "data", ["--billing-transfer-ttl", "600"])
    import_seed(srv)
    yield srv
    srv.stop()


def test_restart_loses_nothing(own):
    alice = dev_client(own, ALICE)
    name, second = new_name(), new_name()
    before = alice.partner_transfers.initiate(
        *PARTNER, name, PartnerInitiateTransferRequest(recipient_email_id=BOB, reseller_id="42"))
    alice.partner_transfers.initiate(*PARTNER, second,
                                     PartnerInitiateTransferRequest(recipient_email_id=BOB))
    sub, ri = add_products(own, BOB, ("AzureSubscription",), ("AzureReservation",))
    bob = dev_client(own, BOB)
    bob.recipient_transfers.accept(second, AcceptTransferRequest(product_details=[
        ProductDetails(product_type="AzureSubscription", product_id=sub),
        ProductDetails(product_type="AzureReservation", product_id=ri)]))
    # Stop at once: the accepted transfer is mid-way (NotStarted/InProgress products).
    assert own.stop() == 0
    own.start()
    alice, bob = dev_client(own, ALICE), dev_client(own, BOB)
    after = alice.partner_transfers.get(*PARTNER, name)
    assert after.transfer_status == TransferStatus.PENDING
    assert after.expiration_time == before.expiration_time
    assert after.reseller_id == "42"
    done = wait_status(lambda: bob.recipient_transfers.get(second), {TransferStatus.COMPLETED})
    assert all(d.transfer_status == "Completed" for d in done.detailed_transfer_status)
    assert products(own)[sub]["scope"].endswith(f"/customers/{CUSTOMER}")


def test_configured_ttl(own):
    alice = dev_client(own, ALICE)
    name = new_name()
    r = alice.partner_transfers.initiate(*PARTNER, name,
                                         PartnerInitiateTransferRequest(recipient_email_id=BOB))
    now = own.clock()
    assert 590 <= (r.expiration_time - now).total_seconds() <= 610
    own.advance(601)
    with pytest.raises(HttpResponseError) as e:
        alice.partner_transfers.cancel(*PARTNER, name)
    assert e.value.status_code == 409
    assert alice.partner_transfers.get(*PARTNER, name).transfer_status == TransferStatus.EXPIRED
