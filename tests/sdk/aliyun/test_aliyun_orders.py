"""Certificate orders through the official SDK: the three create calls, DescribeCertificateState,
ListUserCertificateOrder, RenewCertificateOrderForPackageRequest, CancelOrderRequest,
DeleteCertificateRequest, bad input and account isolation."""

from __future__ import annotations

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    FREE,
    NOT_FOUND_ORDER,
    ORDER_STATE_ERROR,
    M,
    all_order_ids,
    cas_client,
    check_order_id,
    create_order,
    describe,
    expect_documented,
    expect_error,
    invalid_codes,
    issue,
    list_orders,
    missing_codes,
    openssl_verify,
    package_state,
    pem_certs,
    publish_proof,
    unique_domain,
    wait_type,
)
from cas_x509 import GARBAGE_CSR, load_private_key, make_csr, spki, tampered_csr


def assert_cert_for(body, domain: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    assert body.certificate and "BEGIN CERTIFICATE" in body.certificate, body.certificate
    leaf = pem_certs(body.certificate)[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert domain in sans.get_values_for_type(x509.DNSName), f"{domain} not in SAN {sans}"
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn and cn[0].value == domain
    return leaf


# ------------------------------------------------------------------------------------------
# Full lifecycle in both signing styles


def test_lifecycle_every_operation(funded, dns, web, signing, tmp_path):
    client = cas_client(funded, ACCOUNT_A, signing=signing)
    domain = unique_domain()
    order_id = create_order(client, domain, "DNS")
    body = describe(client, order_id)
    assert body.type == "domain_verify"
    assert body.domain == domain
    assert body.validate_type == "DNS"
    assert body.record_type == "TXT"
    assert body.record_domain == "_dnsauth." + domain
    assert body.record_value
    assert package_state(client) == (5, 1, 0)

    publish_proof(body, dns, web)
    issued = wait_type(client, order_id, "certificate")
    leaf = assert_cert_for(issued, domain)
    assert issued.private_key, "no Csr given: PrivateKey must be returned"
    assert describe(client, order_id).private_key == issued.private_key, \
        "PrivateKey is part of every answer for the issued order"
    key = load_private_key(issued.private_key)
    assert spki(key) == spki(leaf), "PrivateKey does not match the certificate"
    res = openssl_verify(funded.ca_pem_path, issued.certificate, tmp_path, funded.clock())
    assert res.returncode == 0, res.stdout + res.stderr
    assert dns.queried(body.record_domain, "TXT"), "certplane never looked up the TXT record"
    assert package_state(client) == (5, 1, 1)

    listed = list_orders(client)
    assert listed.total_count == 1 and type(listed.total_count) is int
    item = listed.certificate_order_list[0]
    assert item.order_id == order_id and type(item.order_id) is int
    assert item.domain == domain
    assert item.product_code == FREE
    assert item.status == "ISSUED"

    # Renewal is for certificates about to expire; a fresh one is refused and nothing is taken
    # (the renewal itself: test_renew_when_expiring).
    with expect_documented(ORDER_STATE_ERROR):
        client.renew_certificate_order_for_package_request(
            M.RenewCertificateOrderForPackageRequestRequest(order_id=order_id))
    assert package_state(client) == (5, 1, 1)

    client.cancel_certificate_for_package_request(
        M.CancelCertificateForPackageRequestRequest(order_id=order_id))
    assert funded.cert_status(issued.certificate) == "REVOKED"
    assert package_state(client)[1] == 0


def test_create_certificate_request(funded, cas, dns, web):
    domain = unique_domain()
    resp = cas.create_certificate_request(M.CreateCertificateRequestRequest(
        product_code=FREE, domain=domain, validate_type="DNS", username="A", phone="1", email="a@example.com"))
    order_id = check_order_id(resp.body.order_id)
    body = describe(cas, order_id)
    publish_proof(body, dns, web)
    issued = wait_type(cas, order_id, "certificate")
    leaf = assert_cert_for(issued, domain)
    assert spki(load_private_key(issued.private_key)) == spki(leaf)
    assert package_state(cas)[1] == 1


def test_create_certificate_with_csr_request(funded, cas, dns, web):
    domain = unique_domain()
    csr, key = make_csr(domain)
    resp = cas.create_certificate_with_csr_request(M.CreateCertificateWithCsrRequestRequest(
        csr=csr, product_code=FREE, validate_type="DNS", username="A", phone="1", email="a@example.com"))
    order_id = check_order_id(resp.body.order_id)
    body = describe(cas, order_id)
    assert body.domain == domain, "the domain comes from the CSR's common name"
    publish_proof(body, dns, web)
    issued = wait_type(cas, order_id, "certificate")
    leaf = assert_cert_for(issued, domain)
    assert spki(leaf) == spki(key), "certificate must certify the CSR's key"
    assert not issued.private_key, "a Csr was given: PrivateKey must be empty"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_package_request_with_csr(funded, cas, dns, web, kind):
    from cas_x509 import new_key
    domain = unique_domain()
    csr, key = make_csr(domain, key=new_key(kind))
    order_id, issued = issue(cas, dns, web, domain, csr=csr)
    assert spki(pem_certs(issued.certificate)[0]) == spki(key)
    assert not issued.private_key


def test_sdk_documented_defaults(server, cas, dns, web):
    """ProductCode defaults to digicert-free-1-free and ValidateType to DNS for the package
    call; Domain and Csr together: the CSR's common name is the domain."""
    server.add_package(ACCOUNT_A, FREE, 3)
    domain = unique_domain()
    resp = cas.create_certificate_for_package_request(
        M.CreateCertificateForPackageRequestRequest(domain=domain))
    order_id = check_order_id(resp.body.order_id)
    body = describe(cas, order_id)
    assert body.type == "domain_verify" and body.record_type == "TXT", body.to_map()
    assert package_state(cas, None)[:2] == (3, 1), "the default plan is digicert-free-1-free"
    csr_domain = unique_domain()
    csr, key = make_csr(csr_domain)
    both = check_order_id(cas.create_certificate_for_package_request(
        M.CreateCertificateForPackageRequestRequest(domain=unique_domain(), csr=csr)).body.order_id)
    body = describe(cas, both)
    assert body.domain == csr_domain
    publish_proof(body, dns, web)
    issued = wait_type(cas, both, "certificate")
    leaf = assert_cert_for(issued, csr_domain)
    assert spki(leaf) == spki(key)
    days = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    assert 89 <= days <= 90, f"digicert-free-1-free is a three-month certificate: {days} days"


def test_symantec_free_is_valid_for_a_year(server, cas, dns, web):
    server.add_package(ACCOUNT_A, "symantec-free-1-free", 1)
    _, issued = issue(cas, dns, web, unique_domain(), product_code="symantec-free-1-free")
    leaf = pem_certs(issued.certificate)[0]
    assert 364 <= (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 365


@pytest.mark.parametrize("missing", ["username", "phone", "email", "validate_type"])
def test_create_certificate_request_requires_contact(funded, cas, missing):
    """CreateCertificateRequest and CreateCertificateWithCsrRequest require the applicant's
    Username, Phone and Email and a ValidateType (SDK models); nothing is ordered without them."""
    fields = dict(product_code=FREE, validate_type="DNS", username="A", phone="1", email="a@example.com")
    fields.pop(missing)
    before = package_state(cas)
    name = "".join(w.capitalize() for w in missing.split("_"))
    with expect_error(missing_codes(name), 400):
        cas.create_certificate_request(M.CreateCertificateRequestRequest(domain=unique_domain(), **fields))
    with expect_error(missing_codes(name), 400):
        cas.create_certificate_with_csr_request(M.CreateCertificateWithCsrRequestRequest(
            csr=make_csr(unique_domain())[0], **fields))
    assert package_state(cas) == before


def test_order_list_source_type_and_buy(funded, cas):
    order_id = create_order(cas, unique_domain())
    items = {i.order_id: i for i in list_orders(cas, order_type="CPACK").certificate_order_list or []}
    assert items[order_id].source_type == "cpack"
    item = items[order_id]
    assert (item.cert_type, item.domain_type, item.domain_count, item.wild_domain_count,
            item.root_brand, item.trustee_status) == ("FREE", "ONE", 1, 0, "DigiCert", "unTrustee"), \
        item.to_map()
    assert order_id in all_order_ids(cas, keyword=str(order_id))
    assert not (list_orders(cas, order_type="BUY").certificate_order_list or []), \
        "quota orders are not purchase orders"


def test_two_products_have_separate_quota(server, cas):
    server.add_package(ACCOUNT_A, FREE, 2)
    server.add_package(ACCOUNT_A, "symantec-free-1-free", 3)
    create_order(cas, unique_domain(), product_code="symantec-free-1-free")
    assert package_state(cas, FREE) == (2, 0, 0)
    assert package_state(cas, "symantec-free-1-free") == (3, 1, 0)


def test_package_add_accumulates(server, cas):
    server.add_package(ACCOUNT_A, FREE, 2)
    server.add_package(ACCOUNT_A, FREE, 3)
    assert package_state(cas)[0] == 5


def test_admin_package_add_unknown_product_code(server):
    out = server.admin("cas", "package", "add", "--account", ACCOUNT_A, "--product-code",
                       "no-such-plan", "--count", "1", expect_ok=False)
    assert out.returncode != 0, out.stdout


# ------------------------------------------------------------------------------------------
# DescribeCertificateState details


def test_wildcard_dns_record_domain(funded, cas):
    base = unique_domain("app")
    order_id = create_order(cas, "*." + base)
    body = describe(cas, order_id)
    assert body.type == "domain_verify"
    assert body.record_domain == "_dnsauth." + base


def test_dns_record_domain_is_full_name(funded, cas):
    domain = unique_domain()
    body = describe(cas, create_order(cas, domain))
    assert body.record_domain == "_dnsauth." + domain
    assert body.record_type == "TXT"
    assert not body.certificate and not body.private_key


def test_file_validation_fields(funded, cas):
    domain = unique_domain()
    body = describe(cas, create_order(cas, domain, "FILE"))
    assert body.type == "domain_verify"
    assert body.validate_type == "FILE"
    assert body.domain == domain
    assert body.uri and body.uri.startswith("/"), body.uri
    assert body.content


def test_certificate_stays_retrievable(funded, cas, dns, web):
    """The certificate stays retrievable after issuance."""
    domain = unique_domain()
    order_id, issued = issue(cas, dns, web, domain)
    again = describe(cas, order_id)
    assert again.type == "certificate"
    assert again.certificate.strip() == issued.certificate.strip()


# ------------------------------------------------------------------------------------------
# ListUserCertificateOrder


def test_list_orders_paging_and_filters(funded, cas, dns, web):
    d1, d2, d3 = unique_domain("alpha"), unique_domain("beta"), unique_domain("gamma")
    o1, _ = issue(cas, dns, web, d1)
    o2 = create_order(cas, d2)
    o3 = create_order(cas, d3)
    body = list_orders(cas)
    assert body.total_count == 3
    assert {i.order_id for i in body.certificate_order_list} == {o1, o2, o3}

    page1 = list_orders(cas, current_page=1, show_size=2)
    page2 = list_orders(cas, current_page=2, show_size=2)
    assert page1.total_count == 3 and page2.total_count == 3
    assert len(page1.certificate_order_list) == 2 and len(page2.certificate_order_list) == 1
    assert page1.current_page == 1 and page2.current_page == 2
    assert page1.show_size == 2
    assert {i.order_id for i in page1.certificate_order_list + page2.certificate_order_list} == {o1, o2, o3}

    issued = list_orders(cas, status="ISSUED")
    assert {i.order_id for i in issued.certificate_order_list} == {o1}
    kw = list_orders(cas, keyword=d2.split(".")[1])
    assert {i.order_id for i in kw.certificate_order_list} == {o2}


def test_list_orders_types(funded, cas, dns, web):
    order_id, issued = issue(cas, dns, web, unique_domain())
    for item in list_orders(cas).certificate_order_list:
        assert type(item.order_id) is int
        if item.certificate_id is not None:
            assert type(item.certificate_id) is int
        if item.cert_start_time is not None:
            assert type(item.cert_start_time) is int and type(item.cert_end_time) is int
        if item.expired is not None:
            assert type(item.expired) is bool


def test_list_orders_empty(server, cas):
    body = list_orders(cas)
    assert body.total_count == 0
    assert not body.certificate_order_list


# ------------------------------------------------------------------------------------------
# Cancel / delete / renew state rules


def test_cancel_order_request_returns_unit(funded, cas):
    order_id = create_order(cas, unique_domain())
    assert package_state(cas)[1] == 1
    cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
    assert package_state(cas)[1] == 0
    assert describe(cas, order_id).type == "payed"
    with expect_documented(ORDER_STATE_ERROR):
        cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
    assert package_state(cas)[1] == 0
    cas.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=order_id))
    assert package_state(cas)[1] == 0, "a cancelled order's unit must not come back twice"
    with expect_documented(NOT_FOUND_ORDER):
        describe(cas, order_id)


def test_cancelled_order_is_not_validated(funded, cas, dns, web):
    order_id = create_order(cas, unique_domain())
    body = describe(cas, order_id)
    cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
    publish_proof(body, dns, web)
    import time
    time.sleep(1.0)
    assert describe(cas, order_id).type == "payed"
    assert package_state(cas) == (5, 0, 0)


def test_cancel_order_request_on_issued_order(funded, cas, dns, web):
    order_id, _ = issue(cas, dns, web, unique_domain())
    with expect_documented(ORDER_STATE_ERROR):
        cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=order_id))
    assert package_state(cas) == (5, 1, 1)


def test_delete_pending_or_issued_order_refused(funded, cas, dns, web):
    pending = create_order(cas, unique_domain())
    with expect_documented(ORDER_STATE_ERROR):
        cas.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=pending))
    issued, _ = issue(cas, dns, web, unique_domain())
    with expect_documented(ORDER_STATE_ERROR):
        cas.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=issued))
    assert describe(cas, pending).type == "domain_verify"
    assert describe(cas, issued).type == "certificate"
    assert package_state(cas) == (5, 2, 1)


def test_cancel_certificate_for_package_only_on_issued(funded, cas):
    pending = create_order(cas, unique_domain())
    with expect_documented(ORDER_STATE_ERROR):
        cas.cancel_certificate_for_package_request(
            M.CancelCertificateForPackageRequestRequest(order_id=pending))
    assert describe(cas, pending).type == "domain_verify"
    assert package_state(cas)[1] == 1


def test_cancel_certificate_twice(funded, cas, dns, web):
    order_id, issued = issue(cas, dns, web, unique_domain())
    cas.cancel_certificate_for_package_request(M.CancelCertificateForPackageRequestRequest(order_id=order_id))
    assert package_state(cas)[1] == 0
    assert funded.cert_status(issued.certificate) == "REVOKED"
    with expect_documented(ORDER_STATE_ERROR):
        cas.cancel_certificate_for_package_request(
            M.CancelCertificateForPackageRequestRequest(order_id=order_id))
    assert package_state(cas)[1] == 0


def test_renew_pending_order_refused(funded, cas):
    pending = create_order(cas, unique_domain())
    with expect_error(ORDER_STATE_ERROR[0]):
        cas.renew_certificate_order_for_package_request(
            M.RenewCertificateOrderForPackageRequestRequest(order_id=pending))
    assert package_state(cas)[1] == 1


def test_renew_when_expiring(funded, cas, dns, web):
    """Documented: renewal only when the certificate is about to expire; without a Csr the
    service makes a new key (a new CSR), so the renewed certificate certifies a new key."""
    domain = unique_domain()
    order_id, issued = issue(cas, dns, web, domain)
    funded.advance(61 * 86400)  # digicert-free-1-free: 90 days, so 29 days left
    listed = {i.order_id: i for i in list_orders(cas).certificate_order_list}
    assert listed[order_id].status == "WILLEXPIRED"
    renewed = cas.renew_certificate_order_for_package_request(
        M.RenewCertificateOrderForPackageRequestRequest(order_id=order_id)).body.order_id
    check_order_id(renewed)
    assert renewed != order_id
    body = describe(cas, renewed)
    assert body.type == "domain_verify" and body.domain == domain
    assert package_state(cas) == (5, 2, 1)
    publish_proof(body, dns, web)
    done = wait_type(cas, renewed, "certificate")
    assert done.private_key and done.private_key != issued.private_key
    assert spki(load_private_key(done.private_key)) == spki(pem_certs(done.certificate)[0])
    assert spki(pem_certs(done.certificate)[0]) != spki(pem_certs(issued.certificate)[0])
    # Past expiry it is too late to renew.
    funded.advance(30 * 86400)
    with expect_documented(ORDER_STATE_ERROR):
        cas.renew_certificate_order_for_package_request(
            M.RenewCertificateOrderForPackageRequestRequest(order_id=order_id))


def test_renew_with_new_csr(funded, cas, dns, web):
    domain = unique_domain()
    order_id, _ = issue(cas, dns, web, domain)
    funded.advance(61 * 86400)
    csr, key = make_csr(domain)
    renewed = cas.renew_certificate_order_for_package_request(
        M.RenewCertificateOrderForPackageRequestRequest(order_id=order_id, csr=csr)).body.order_id
    check_order_id(renewed)
    body = describe(cas, renewed)
    publish_proof(body, dns, web)
    done = wait_type(cas, renewed, "certificate")
    assert spki(pem_certs(done.certificate)[0]) == spki(key)
    assert not done.private_key
    assert describe(cas, order_id).type == "certificate", "renewal leaves the old order issued"


# ------------------------------------------------------------------------------------------
# Bad input: documented 4xx, nothing changes


def _state(cas):
    return package_state(cas), all_order_ids(cas)


def test_missing_order_id(funded, cas):
    before = _state(cas)
    for call in (
        lambda: cas.describe_certificate_state(M.DescribeCertificateStateRequest()),
        lambda: cas.cancel_order_request(M.CancelOrderRequestRequest()),
        lambda: cas.cancel_certificate_for_package_request(M.CancelCertificateForPackageRequestRequest()),
        lambda: cas.delete_certificate_request(M.DeleteCertificateRequestRequest()),
        lambda: cas.renew_certificate_order_for_package_request(M.RenewCertificateOrderForPackageRequestRequest()),
    ):
        with expect_error(missing_codes("OrderId"), 400):
            call()
    assert _state(cas) == before


@pytest.mark.parametrize("bad", ["abc", "12x", "-5", "1.5", "99999999999999999999999"])
def test_non_numeric_order_id(funded, cas, bad):
    with expect_error(invalid_codes("OrderId") | {NOT_FOUND_ORDER[0]}):
        cas.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=bad))
    with expect_error(invalid_codes("OrderId") | {NOT_FOUND_ORDER[0]}):
        cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=bad))


def test_non_numeric_order_id_is_invalid_parameter(funded, cas):
    with expect_error(invalid_codes("OrderId"), 400):
        cas.describe_certificate_state(M.DescribeCertificateStateRequest(order_id="abc"))


def test_unknown_order(funded, cas):
    for call in (
        lambda: cas.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=123451222)),
        lambda: cas.cancel_order_request(M.CancelOrderRequestRequest(order_id=123451222)),
        lambda: cas.cancel_certificate_for_package_request(M.CancelCertificateForPackageRequestRequest(order_id=123451222)),
        lambda: cas.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=123451222)),
        lambda: cas.renew_certificate_order_for_package_request(M.RenewCertificateOrderForPackageRequestRequest(order_id=123451222)),
    ):
        with expect_documented(NOT_FOUND_ORDER):
            call()


UNKNOWN_PRODUCT = invalid_codes("ProductCode") | {"NotFoundPackage"}


def test_unknown_product_code(funded, cas):
    before = _state(cas)
    with expect_error(UNKNOWN_PRODUCT):
        create_order(cas, unique_domain(), product_code="no-such-plan-1-free")
    with expect_error(UNKNOWN_PRODUCT):
        cas.describe_package_state(M.DescribePackageStateRequest(product_code="no-such-plan-1-free"))
    assert _state(cas) == before


@pytest.mark.parametrize("csr", [GARBAGE_CSR, "not a pem at all", "TAMPERED"])
def test_bad_csr(funded, cas, csr):
    if csr == "TAMPERED":
        csr = tampered_csr("www.tampered.com")
    before = _state(cas)
    with expect_error(invalid_codes("Csr"), 400):
        create_order(cas, unique_domain(), csr=csr)
    with expect_error(invalid_codes("Csr"), 400):
        cas.create_certificate_with_csr_request(M.CreateCertificateWithCsrRequestRequest(
            csr=csr, product_code=FREE, validate_type="DNS", username="a", phone="1", email="a@example.com"))
    assert _state(cas) == before


def test_csr_with_weak_key_refused(funded, cas):
    from cryptography.hazmat.primitives.asymmetric import rsa
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr, _ = make_csr("www.weak-key.com", key=weak)
    before = _state(cas)
    with expect_error(invalid_codes("Csr"), 400):
        create_order(cas, None, csr=csr)
    assert _state(cas) == before


@pytest.mark.parametrize("domain", ["not a domain", "localhost", "-bad-.example.com", "exa_mple.com",
                                    "a..example.com", "1.2.3.4", "x" * 64 + ".example.com",
                                    "*.*.example.com", "http://www.example.com/"])
def test_bad_domain(funded, cas, domain):
    before = _state(cas)
    with expect_error(invalid_codes("Domain"), 400):
        create_order(cas, domain)
    assert _state(cas) == before


def test_missing_domain_without_csr(funded, cas):
    before = _state(cas)
    with expect_error(missing_codes("Domain") | invalid_codes("Domain"), 400):
        create_order(cas, None)
    assert _state(cas) == before


def test_create_with_csr_missing_csr(funded, cas):
    before = _state(cas)
    with expect_error(missing_codes("Csr"), 400):
        cas.create_certificate_with_csr_request(M.CreateCertificateWithCsrRequestRequest(
            product_code=FREE, validate_type="DNS", username="a", phone="1", email="a@example.com"))
    assert _state(cas) == before


@pytest.mark.parametrize("vt", ["EMAIL", "dnsx", "HTTP", "FILE2"])
def test_bad_validate_type(funded, cas, vt):
    before = _state(cas)
    with expect_error(invalid_codes("ValidateType"), 400):
        create_order(cas, unique_domain(), validate_type=vt)
    assert _state(cas) == before


# ------------------------------------------------------------------------------------------
# Account isolation: another account's order reads exactly like a missing one


def test_other_accounts_order_is_missing(server, dns, web):
    a = cas_client(server, ACCOUNT_A)
    b = cas_client(server, ACCOUNT_B)
    server.add_package(ACCOUNT_A, FREE, 5)
    server.add_package(ACCOUNT_B, FREE, 5)
    issued_a, issued_body = issue(a, dns, web, unique_domain())
    pending_a = create_order(a, unique_domain())
    missing = 123451222

    def outcome(call):
        with expect_error({NOT_FOUND_ORDER[0], "NotFoundOrder"}) as err:
            call()
        return err.code, err.status

    for oid in (issued_a, pending_a):
        calls = [
            lambda o: b.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=o)),
            lambda o: b.cancel_order_request(M.CancelOrderRequestRequest(order_id=o)),
            lambda o: b.cancel_certificate_for_package_request(M.CancelCertificateForPackageRequestRequest(order_id=o)),
            lambda o: b.delete_certificate_request(M.DeleteCertificateRequestRequest(order_id=o)),
            lambda o: b.renew_certificate_order_for_package_request(M.RenewCertificateOrderForPackageRequestRequest(order_id=o)),
        ]
        for call in calls:
            assert outcome(lambda: call(oid)) == outcome(lambda: call(missing))

    assert not all_order_ids(b)
    assert all_order_ids(a) == {issued_a, pending_a}
    assert package_state(a) == (5, 2, 1)
    assert package_state(b) == (5, 0, 0)
    assert server.cert_status(issued_body.certificate) != "REVOKED"
    assert describe(a, pending_a).type == "domain_verify"
