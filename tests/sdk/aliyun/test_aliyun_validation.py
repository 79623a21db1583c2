"""Real domain validation: certplane looks the TXT record up through `--dns-resolver` (our dnslib
server) or fetches `http://<Domain>:<validation-http-port><Uri>` (our web server), and issues only
when the proof matches. Also `--validation always-valid` and `--validation-timeout`."""

from __future__ import annotations

import time

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    FREE,
    NOT_FOUND_ORDER,
    ORDER_STATE_ERROR,
    CertplaneServer,
    M,
    cas_client,
    create_order,
    describe,
    expect_documented,
    openssl_verify,
    package_state,
    pem_certs,
    publish_proof,
    stays_type,
    unique_domain,
    validation_args,
    wait_type,
)
from cas_x509 import load_private_key, spki


def test_dns_validation_issues(funded, cas, dns, web, tmp_path):
    domain = unique_domain()
    order_id = create_order(cas, domain, "DNS")
    body = describe(cas, order_id)
    assert body.type == "domain_verify"
    stays_type(cas, order_id, "domain_verify", seconds=1.0)
    dns.set_txt(body.record_domain, body.record_value)
    issued = wait_type(cas, order_id, "certificate", timeout=15)
    assert dns.queried(body.record_domain, "TXT")
    res = openssl_verify(funded.ca_pem_path, issued.certificate, tmp_path, funded.clock())
    assert res.returncode == 0, res.stdout + res.stderr
    assert spki(load_private_key(issued.private_key)) == spki(pem_certs(issued.certificate)[0])


def test_dns_txt_among_other_records(funded, cas, dns):
    order_id = create_order(cas, unique_domain())
    body = describe(cas, order_id)
    dns.set_txt(body.record_domain, "v=spf1 -all", "unrelated", body.record_value)
    wait_type(cas, order_id, "certificate", timeout=15)


def test_wrong_txt_value_does_not_issue(funded, cas, dns):
    order_id = create_order(cas, unique_domain())
    body = describe(cas, order_id)
    dns.set_txt(body.record_domain, body.record_value + "x")
    stays_type(cas, order_id, "domain_verify", seconds=2.5)
    assert dns.queried(body.record_domain, "TXT"), "certplane never looked up the TXT record"
    dns.set_txt(body.record_domain, body.record_value)
    wait_type(cas, order_id, "certificate", timeout=15)


def test_txt_at_wrong_name_does_not_issue(funded, cas, dns):
    domain = unique_domain()
    order_id = create_order(cas, domain)
    body = describe(cas, order_id)
    dns.set_txt(domain, body.record_value)                 # the bare domain
    dns.set_txt("_acme-challenge." + domain, body.record_value)
    stays_type(cas, order_id, "domain_verify", seconds=2.5)
    assert package_state(cas) == (5, 1, 0)


def test_another_orders_token_does_not_issue(funded, cas, dns):
    domain = unique_domain()
    first = create_order(cas, domain)
    second = create_order(cas, domain)
    b1, b2 = describe(cas, first), describe(cas, second)
    assert b1.record_value != b2.record_value, "every order needs its own token"
    dns.set_txt(b1.record_domain, b1.record_value)
    wait_type(cas, first, "certificate", timeout=15)
    assert describe(cas, second).type == "domain_verify"


def test_file_validation_issues(funded, cas, dns, web):
    domain = unique_domain()
    order_id = create_order(cas, domain, "FILE")
    body = describe(cas, order_id)
    assert body.type == "domain_verify"
    stays_type(cas, order_id, "domain_verify", seconds=1.0)
    web.publish(body.domain, body.uri, body.content)
    issued = wait_type(cas, order_id, "certificate", timeout=15)
    assert web.fetched(domain, body.uri), "certplane never fetched the validation file"
    assert dns.queried(domain, "A"), "certplane must resolve the domain through --dns-resolver"
    assert issued.private_key


def test_file_with_wrong_content_does_not_issue(funded, cas, web):
    domain = unique_domain()
    order_id = create_order(cas, domain, "FILE")
    body = describe(cas, order_id)
    web.publish(domain, body.uri, body.content + "-wrong")
    stays_type(cas, order_id, "domain_verify", seconds=2.5)
    assert web.fetched(domain, body.uri)
    web.publish(domain, body.uri, body.content)
    wait_type(cas, order_id, "certificate", timeout=15)


def test_file_on_other_host_does_not_issue(funded, cas, web):
    domain = unique_domain()
    order_id = create_order(cas, domain, "FILE")
    body = describe(cas, order_id)
    web.publish("other." + domain, body.uri, body.content)
    web.publish(domain, body.uri + ".bak", body.content)
    stays_type(cas, order_id, "domain_verify", seconds=2.5)


def test_file_order_ignores_dns_proof(funded, cas, dns):
    """A FILE order is not satisfied by a TXT record."""
    domain = unique_domain()
    order_id = create_order(cas, domain, "FILE")
    body = describe(cas, order_id)
    dns.set_txt("_dnsauth." + domain, body.content)
    stays_type(cas, order_id, "domain_verify", seconds=2.0)


def test_background_validation_without_describe(funded, cas, dns):
    """Validation also runs in the background: the order issues without being described."""
    order_id = create_order(cas, unique_domain())
    body = describe(cas, order_id)
    dns.set_txt(body.record_domain, body.record_value)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if package_state(cas)[2] == 1:
            break
        time.sleep(0.5)
    assert package_state(cas)[2] == 1, "background validation did not issue within 20s"
    assert describe(cas, order_id).type == "certificate"


# ------------------------------------------------------------------------------------------
# --validation always-valid


@pytest.fixture(scope="module")
def always_valid(binary, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("always") / "data", dev=True,
                          extra_args=["--validation", "always-valid"]).start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_always_valid_issues_without_proof(always_valid, tmp_path):
    always_valid.reset()
    always_valid.add_package(ACCOUNT_A, FREE, 2)
    client = cas_client(always_valid, ACCOUNT_A)
    order_id = create_order(client, unique_domain())
    issued = wait_type(client, order_id, "certificate", timeout=15)
    res = openssl_verify(always_valid.ca_pem_path, issued.certificate, tmp_path, always_valid.clock())
    assert res.returncode == 0, res.stdout + res.stderr
    file_order = create_order(client, unique_domain(), "FILE")
    wait_type(client, file_order, "certificate", timeout=15)
    assert package_state(client) == (2, 2, 2)


# ------------------------------------------------------------------------------------------
# --validation-timeout


@pytest.fixture(scope="module")
def short_timeout(binary, dns, web, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("timeout") / "data", dev=True,
                          extra_args=[*validation_args(dns, web), "--validation-timeout", "3"]).start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_validation_timeout_fails_and_delete_returns_unit(short_timeout, dns):
    short_timeout.reset()
    short_timeout.add_package(ACCOUNT_A, FREE, 1)
    client = cas_client(short_timeout, ACCOUNT_A)
    order_id = create_order(client, unique_domain())
    body = describe(client, order_id)
    assert body.type == "domain_verify"
    failed = wait_type(client, order_id, "verify_fail", timeout=20, interval=0.5)
    assert not failed.certificate
    assert package_state(client) == (1, 1, 0), "a failed order holds its unit until deleted"
    # proof published after the deadline changes nothing
    dns.set_txt(body.record_domain, body.record_value)
    stays_type(client, order_id, "verify_fail", seconds=1.5)
    with expect_documented(ORDER_STATE_ERROR):
        client.cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
    with expect_documented(ORDER_STATE_ERROR):
        client.cancel_certificate_for_package_request(
            M.CancelCertificateForPackageRequestRequest(order_id=order_id))
    client.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=order_id))
    assert package_state(client) == (1, 0, 0)
    with expect_documented(NOT_FOUND_ORDER):
        describe(client, order_id)
    with expect_documented(NOT_FOUND_ORDER):
        client.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=order_id))
    assert package_state(client) == (1, 0, 0)


@pytest.mark.slow
def test_validation_timeout_listed_as_failed(short_timeout):
    short_timeout.reset()
    short_timeout.add_package(ACCOUNT_A, FREE, 1)
    client = cas_client(short_timeout, ACCOUNT_A)
    order_id = create_order(client, unique_domain())
    wait_type(client, order_id, "verify_fail", timeout=20, interval=0.5)
    items = client.list_user_certificate_order(M.ListUserCertificateOrderRequest(status="CHECKED_FAIL")).body
    assert [i.order_id for i in items.certificate_order_list or []] == [order_id]
