"""Server-time rules, with the dev clock (`POST /dev/clock`) on a server of their own: the 30-day
refund window of CancelCertificateForPackageRequest and the 72-hour validation deadline."""

from __future__ import annotations

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    FREE,
    CertplaneServer,
    M,
    cas_client,
    create_order,
    describe,
    issue,
    openssl_verify,
    package_state,
    unique_domain,
    validation_args,
    wait_type,
)

pytestmark = pytest.mark.slow
DAY = 86400


@pytest.fixture(scope="module")
def clock_server(binary, dns, web, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("clock") / "data", dev=True,
                          extra_args=validation_args(dns, web)).start()
    yield srv
    srv.stop()


@pytest.fixture
def clock(clock_server, dns, web):
    clock_server.reset()
    dns.clear()
    web.clear()
    clock_server.add_package(ACCOUNT_A, FREE, 3)
    return clock_server


def _cancel(client, order_id):
    client.cancel_certificate_for_package_request(
        M.CancelCertificateForPackageRequestRequest(order_id=order_id))


def test_clock_moves(clock):
    before = clock.clock()
    after = clock.advance(3600)
    assert 3590 <= (after - before).total_seconds() <= 3700


def test_refund_same_day(clock, dns, web):
    client = cas_client(clock, ACCOUNT_A)
    order_id, issued = issue(client, dns, web, unique_domain())
    assert package_state(client) == (3, 1, 1)
    _cancel(client, order_id)
    assert package_state(client)[1] == 0
    assert clock.cert_status(issued.certificate) == "REVOKED"


def test_refund_at_29_days(clock, dns, web):
    client = cas_client(clock, ACCOUNT_A)
    order_id, issued = issue(client, dns, web, unique_domain())
    clock.advance(29 * DAY)
    _cancel(client, order_id)
    assert package_state(client)[1] == 0, "revoked within 30 calendar days: the unit comes back"
    assert clock.cert_status(issued.certificate) == "REVOKED"


def test_no_refund_at_31_days(clock, dns, web, tmp_path):
    client = cas_client(clock, ACCOUNT_A)
    order_id, issued = issue(client, dns, web, unique_domain())
    clock.advance(31 * DAY)
    assert describe(client, order_id).type == "certificate"
    _cancel(client, order_id)
    assert package_state(client)[1] == 1, "revoked after 30 calendar days: no refund"
    assert clock.cert_status(issued.certificate) == "REVOKED"


def test_issue_after_clock_moved(clock, dns, web, tmp_path):
    """Certificates issued at a moved clock are valid from the server's now."""
    clock.advance(10 * DAY)
    client = cas_client(clock, ACCOUNT_A)
    order_id, issued = issue(client, dns, web, unique_domain())
    res = openssl_verify(clock.ca_pem_path, issued.certificate, tmp_path, clock.clock())
    assert res.returncode == 0, res.stdout + res.stderr


def test_validation_deadline_72_hours(clock, dns):
    client = cas_client(clock, ACCOUNT_A)
    order_id = create_order(client, unique_domain())
    clock.advance(71 * 3600)
    assert describe(client, order_id).type == "domain_verify"
    clock.advance(2 * 3600)
    failed = wait_type(client, order_id, "verify_fail", timeout=10)
    assert not failed.certificate
    assert package_state(client) == (3, 1, 0)
    client.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=order_id))
    assert package_state(client) == (3, 0, 0)


def test_proof_after_deadline_does_not_issue(clock, dns):
    client = cas_client(clock, ACCOUNT_A)
    order_id = create_order(client, unique_domain())
    body = describe(client, order_id)
    clock.advance(73 * 3600)
    dns.set_txt(body.record_domain, body.record_value)
    assert wait_type(client, order_id, {"verify_fail", "certificate"}, timeout=10).type == "verify_fail"
