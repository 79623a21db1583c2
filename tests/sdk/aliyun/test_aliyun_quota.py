"""Quota packages: DescribePackageState numbers, exhaustion, units given back by CancelOrderRequest
and DeleteCertificateRequest, and races (concurrent creates at the limit, concurrent cancels)."""

from __future__ import annotations

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    FREE,
    NOT_REMAIN_COUNT,
    ORDER_STATE_ERROR,
    M,
    all_order_ids,
    cas_client,
    create_order,
    describe,
    expect_documented,
    expect_error,
    issue,
    package_state,
    unique_domain,
)
from aliyun_harness import AlibabaCloudException
from certplane_server import race_threads


def test_fresh_package(server, cas):
    server.add_package(ACCOUNT_A, FREE, 3)
    assert package_state(cas) == (3, 0, 0)


def test_package_counts_through_issuance(server, cas, dns, web):
    server.add_package(ACCOUNT_A, FREE, 3)
    o1 = create_order(cas, unique_domain())
    assert package_state(cas) == (3, 1, 0)
    o2, _ = issue(cas, dns, web, unique_domain())
    assert package_state(cas) == (3, 2, 1)
    assert describe(cas, o1).type == "domain_verify"


def test_quota_exhausted(server, cas):
    server.add_package(ACCOUNT_A, FREE, 2)
    a = create_order(cas, unique_domain())
    b = create_order(cas, unique_domain(), validate_type="FILE")
    with expect_documented(NOT_REMAIN_COUNT):
        create_order(cas, unique_domain())
    with expect_documented(NOT_REMAIN_COUNT):
        cas.create_certificate_request(M.CreateCertificateRequestRequest(
            product_code=FREE, domain=unique_domain(), validate_type="DNS",
            username="a", phone="1", email="a@example.com"))
    assert package_state(cas) == (2, 2, 0)
    assert all_order_ids(cas) == {a, b}, "a refused application must not leave an order behind"


def test_quota_exhausted_then_topped_up(server, cas):
    server.add_package(ACCOUNT_A, FREE, 1)
    create_order(cas, unique_domain())
    with expect_documented(NOT_REMAIN_COUNT):
        create_order(cas, unique_domain())
    server.add_package(ACCOUNT_A, FREE, 1)  # while the server runs
    create_order(cas, unique_domain())
    assert package_state(cas) == (2, 2, 0)


def test_no_package_at_all(server, cas):
    with expect_error({"NotFoundPackage", "NotRemainCount"}, 404):
        create_order(cas, unique_domain())
    assert not all_order_ids(cas)


def test_cancel_gives_unit_back_and_allows_new_order(server, cas):
    server.add_package(ACCOUNT_A, FREE, 1)
    order_id = create_order(cas, unique_domain())
    with expect_documented(NOT_REMAIN_COUNT):
        create_order(cas, unique_domain())
    cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
    assert package_state(cas) == (1, 0, 0)
    create_order(cas, unique_domain())
    assert package_state(cas) == (1, 1, 0)


def test_renew_takes_a_unit(server, cas, dns, web):
    server.add_package(ACCOUNT_A, FREE, 1)
    order_id, _ = issue(cas, dns, web, unique_domain())
    server.advance(61 * 86400)  # renewal is for certificates about to expire
    with expect_documented(NOT_REMAIN_COUNT):
        cas.renew_certificate_order_for_package_request(
            M.RenewCertificateOrderForPackageRequestRequest(order_id=order_id))
    assert all_order_ids(cas) == {order_id}
    server.add_package(ACCOUNT_A, FREE, 1)
    cas.renew_certificate_order_for_package_request(
        M.RenewCertificateOrderForPackageRequestRequest(order_id=order_id))
    assert package_state(cas) == (2, 2, 1)


def _race(n, fn):
    """Run fn(i) in n threads released together; per thread ('ok', value) or ('err', (code, status))."""
    return race_threads(n, fn, AlibabaCloudException, lambda e: (e.code, e.status_code))


def test_concurrent_creates_at_the_limit(server):
    server.add_package(ACCOUNT_A, FREE, 3)
    clients = [cas_client(server, ACCOUNT_A) for _ in range(10)]
    results = _race(10, lambda i: create_order(clients[i], unique_domain()))
    ok = [r for r in results if r[0] == "ok"]
    errs = [r for r in results if r[0] != "ok"]
    assert len(ok) == 3, results
    assert all(r == ("err", NOT_REMAIN_COUNT) for r in errs), results
    client = clients[0]
    assert package_state(client) == (3, 3, 0)
    assert all_order_ids(client) == {r[1] for r in ok}


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_cancel_certificate(server, dns, web, round_):
    server.add_package(ACCOUNT_A, FREE, 2)
    client = cas_client(server, ACCOUNT_A)
    order_id, issued = issue(client, dns, web, unique_domain())
    clients = [cas_client(server, ACCOUNT_A) for _ in range(2)]
    results = _race(2, lambda i: clients[i].cancel_certificate_for_package_request(
        M.CancelCertificateForPackageRequestRequest(order_id=order_id)))
    oks = [r for r in results if r[0] == "ok"]
    assert len(oks) == 1, f"exactly one cancel must win: {results}"
    loser = [r for r in results if r[0] != "ok"][0]
    assert loser == ("err", ORDER_STATE_ERROR), results
    assert package_state(client)[:2] == (2, 0), "the unit must come back exactly once"
    assert server.cert_status(issued.certificate) == "REVOKED"


def test_concurrent_cancel_order(server):
    server.add_package(ACCOUNT_A, FREE, 2)
    client = cas_client(server, ACCOUNT_A)
    keep = create_order(client, unique_domain())
    order_id = create_order(client, unique_domain())
    clients = [cas_client(server, ACCOUNT_A) for _ in range(4)]
    results = _race(4, lambda i: clients[i].cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id)))
    assert sum(1 for r in results if r[0] == "ok") == 1, results
    assert all(r == ("err", ORDER_STATE_ERROR) for r in results if r[0] != "ok"), results
    assert package_state(client) == (2, 1, 0)
    assert describe(client, keep).type == "domain_verify"


def test_concurrent_cancel_and_delete(server):
    """CancelOrderRequest racing DeleteCertificateRequest after it: the unit comes back once."""
    server.add_package(ACCOUNT_A, FREE, 1)
    client = cas_client(server, ACCOUNT_A)
    order_id = create_order(client, unique_domain())
    clients = [cas_client(server, ACCOUNT_A) for _ in range(2)]

    def op(i):
        if i == 0:
            return clients[0].cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
        return clients[1].delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=order_id))

    _race(2, op)
    assert package_state(client) == (1, 0, 0)
