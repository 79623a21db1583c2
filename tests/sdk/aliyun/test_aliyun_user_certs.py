"""User certificates: UploadUserCertificate, GetUserCertificateDetail, DeleteUserCertificate, and
the certificate of an issued order seen through GetUserCertificateDetail."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from aliyun_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    M,
    cas_client,
    expect_error,
    issue,
    list_orders,
    missing_codes,
    pem_certs,
    unique_domain,
)
from cas_x509 import load_private_key, make_ca, make_leaf, spki


@pytest.fixture(scope="module")
def upload_ca():
    return make_ca()


def _norm(pem: str) -> str:
    return "\n".join(line.strip() for line in (pem or "").strip().splitlines() if line.strip())


def upload(client, name, leaf, **kw):
    resp = client.upload_user_certificate(M.UploadUserCertificateRequest(
        name=name, cert=leaf.pem, key=leaf.key_pem, **kw)).body
    assert type(resp.cert_id) is int and resp.cert_id > 0, f"CertId must be a JSON integer: {resp.cert_id!r}"
    return resp


def detail(client, cert_id, cert_filter=None):
    return client.get_user_certificate_detail(
        M.GetUserCertificateDetailRequest(cert_id=cert_id, cert_filter=cert_filter)).body


def _ms(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.timezone.utc).timestamp() * 1000) if t.tzinfo is None else int(t.timestamp() * 1000)


def test_upload_and_detail(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "shop.example.com", sans=["shop.example.com", "www.shop.example.com"])
    up = upload(cas, "shop_cert_1", leaf)
    d = detail(cas, up.cert_id)
    assert d.id == up.cert_id and type(d.id) is int
    assert d.name == "shop_cert_1"
    assert _norm(d.cert).startswith(_norm(leaf.pem)), "Cert must be the uploaded certificate"
    assert spki(load_private_key(d.key)) == spki(leaf.key), "Key must be the uploaded key"
    assert d.common == "shop.example.com"
    sans = {s.strip() for s in (d.sans or "").split(",")}
    assert {"shop.example.com", "www.shop.example.com"} <= sans, d.sans
    assert d.issuer and ("certplane upload test CA" in d.issuer or "Upload Test Org" in d.issuer), d.issuer
    serial = leaf.cert.serial_number
    assert d.serial_no and d.serial_no.lower().lstrip("0") in {format(serial, "x"), str(serial)}, d.serial_no
    fp = (d.fingerprint or "").replace(":", "").lower()
    assert fp in {leaf.sha1, leaf.sha256}, d.fingerprint
    if d.sha_2:
        assert d.sha_2.replace(":", "").lower() == leaf.sha256
    assert d.expired is False
    assert type(d.not_before) is int and type(d.not_after) is int
    assert abs(d.not_before - _ms(leaf.cert.not_valid_before_utc)) <= 1000
    assert abs(d.not_after - _ms(leaf.cert.not_valid_after_utc)) <= 1000
    assert d.start_date == leaf.cert.not_valid_before_utc.strftime("%Y-%m-%d")
    assert d.end_date == leaf.cert.not_valid_after_utc.strftime("%Y-%m-%d")


def test_detail_cert_filter(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "filter.example.com")
    up = upload(cas, "filter_cert", leaf)
    full = detail(cas, up.cert_id, cert_filter=False)
    assert full.cert and full.key
    filtered = detail(cas, up.cert_id, cert_filter=True)
    assert not filtered.cert and not filtered.key
    assert filtered.common == "filter.example.com"
    default = detail(cas, up.cert_id)
    assert default.cert and default.key


def test_upload_ec_certificate(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "ec.example.com", key_kind="ec")
    up = upload(cas, "ec_cert", leaf)
    assert spki(load_private_key(detail(cas, up.cert_id).key)) == spki(leaf.key)


def test_upload_expired_certificate(server, cas, upload_ca):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    leaf = make_leaf(upload_ca, "old.example.com", not_before=past, days=30)
    up = upload(cas, "old_cert", leaf)
    assert detail(cas, up.cert_id).expired is True


def test_cert_list_defaults_to_valid_certificates(server, cas, upload_ca):
    """OrderType CERT/UPLOAD without Status lists issued and about-to-expire certificates only;
    Status=EXPIRED finds the expired one; an unknown Status is refused."""
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    old = upload(cas, "expired_for_list", make_leaf(upload_ca, "gone-by.example.com", not_before=past, days=30))
    valid = upload(cas, "valid_for_list", make_leaf(upload_ca, "current.example.com"))
    for order_type in ("UPLOAD", "CERT"):
        ids = {i.certificate_id for i in list_orders(cas, order_type=order_type).certificate_order_list or []}
        assert valid.cert_id in ids and old.cert_id not in ids, (order_type, ids)
        expired = list_orders(cas, order_type=order_type, status="EXPIRED").certificate_order_list or []
        assert old.cert_id in {i.certificate_id for i in expired}
        assert {i.status for i in expired} == {"EXPIRED"}
    # Keyword also matches the resource id.
    by_id = list_orders(cas, order_type="UPLOAD", keyword=str(valid.cert_id)).certificate_order_list or []
    assert [i.certificate_id for i in by_id] == [valid.cert_id]
    with expect_error("InvalidStatus", 400):
        list_orders(cas, order_type="CERT", status="issued")


def test_upload_listed(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "listed.example.com")
    up = upload(cas, "listed_cert", leaf)
    body = list_orders(cas, order_type="UPLOAD")
    ids = {i.certificate_id for i in body.certificate_order_list or []}
    assert up.cert_id in ids, body.to_map()
    assert body.total_count >= 1


def test_delete_user_certificate(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "gone.example.com")
    up = upload(cas, "gone_cert", leaf)
    cas.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=up.cert_id))
    with expect_error(_not_found_codes()) as err:
        detail(cas, up.cert_id)
    with expect_error(err.code, err.status):
        cas.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=up.cert_id))
    # the name is free again
    upload(cas, "gone_cert", leaf)


def _not_found_codes():
    """No code is documented for an unknown CertId: any 4xx with a code (asserted consistent)."""
    return None


def test_unknown_cert_id(server, cas):
    with expect_error(_not_found_codes()):
        detail(cas, 987654321)
    with expect_error(_not_found_codes()):
        cas.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=987654321))


def test_other_accounts_certificate_is_missing(server, upload_ca):
    a, b = cas_client(server, ACCOUNT_A), cas_client(server, ACCOUNT_B)
    leaf = make_leaf(upload_ca, "mine.example.com")
    up = upload(a, "mine_cert", leaf)
    with expect_error(_not_found_codes()) as missing:
        detail(b, 987654321)
    with expect_error(missing.code, missing.status):
        detail(b, up.cert_id)
    with expect_error(missing.code, missing.status):
        b.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=up.cert_id))
    assert detail(a, up.cert_id).name == "mine_cert"
    # the same name in another account is fine
    upload(b, "mine_cert", make_leaf(upload_ca, "theirs.example.com"))


def test_upload_key_mismatch(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "mismatch.example.com")
    other = make_leaf(upload_ca, "other.example.com")
    with expect_error(None):  # no code documented for a key that does not match
        cas.upload_user_certificate(M.UploadUserCertificateRequest(
            name="mismatch", cert=leaf.pem, key=other.key_pem))
    assert not (list_orders(cas, order_type="UPLOAD").certificate_order_list or [])


def test_upload_garbage_cert(server, cas, upload_ca):
    """UploadUserCertificate documents only common errors: any 400 with a code, nothing stored."""
    leaf = make_leaf(upload_ca, "g.example.com")
    with expect_error(None, 400):
        cas.upload_user_certificate(M.UploadUserCertificateRequest(
            name="garbage", cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", key=leaf.key_pem))
    with expect_error(None, 400):
        cas.upload_user_certificate(M.UploadUserCertificateRequest(
            name="garbage2", cert=leaf.pem, key="not a key"))
    assert not (list_orders(cas, order_type="UPLOAD").certificate_order_list or [])


def test_upload_missing_name(server, cas, upload_ca):
    leaf = make_leaf(upload_ca, "noname.example.com")
    with expect_error(missing_codes("Name"), 400):
        cas.upload_user_certificate(M.UploadUserCertificateRequest(cert=leaf.pem, key=leaf.key_pem))


def test_upload_duplicate_name(server, cas, upload_ca):
    upload(cas, "dup_name", make_leaf(upload_ca, "d1.example.com"))
    with expect_error(None):  # names are unique per user (documented); no code is documented
        upload(cas, "dup_name", make_leaf(upload_ca, "d2.example.com"))


def test_issued_order_certificate_detail(funded, cas, dns, web):
    domain = unique_domain()
    order_id, issued = issue(cas, dns, web, domain)
    assert issued.cert_id and str(issued.cert_id).isdigit(), \
        f"DescribeCertificateState CertId must be the numeric certificate id as a string: {issued.cert_id!r}"
    d = detail(cas, int(issued.cert_id))
    assert d.order_id == order_id
    leaf_pem = pem_certs(issued.certificate)[0].public_bytes(serialization.Encoding.PEM).decode()
    assert _norm(d.cert).startswith(_norm(leaf_pem))
    assert d.common == domain
    assert domain in (d.sans or "")
    assert d.expired is False
    certs = list_orders(cas, order_type="CERT")
    assert int(issued.cert_id) in {i.certificate_id for i in certs.certificate_order_list or []}


def test_uploaded_chain_is_listed_in_cert_chain(server, cas, upload_ca):
    """An upload of leaf + issuer PEM: CertChain names both, leaf first."""
    leaf = make_leaf(upload_ca, "chained.example.com")
    resp = cas.upload_user_certificate(M.UploadUserCertificateRequest(
        name="chained_cert", cert=leaf.pem + upload_ca.pem, key=leaf.key_pem)).body
    chain = detail(cas, resp.cert_id).cert_chain
    assert [c.common_name for c in chain] == ["chained.example.com", "certplane upload test CA"], \
        [c.to_map() for c in chain]
    assert chain[0].issuer_common_name == "certplane upload test CA"


def test_concurrent_uploads_with_one_name_have_one_winner(server, upload_ca):
    """Names are unique per account even under concurrent uploads (and on several nodes: the
    name is claimed by a unique key in the same transaction as the certificate)."""
    from aliyun_harness import ACCOUNT_A, AlibabaCloudException, cas_client
    from certplane_server import race_threads
    n = 8
    leaves = [make_leaf(upload_ca, f"race{i}.example.com") for i in range(n)]
    clients = [cas_client(server, ACCOUNT_A) for _ in range(n)]
    results = race_threads(n, lambda i: clients[i].upload_user_certificate(M.UploadUserCertificateRequest(
        name="raced_name", cert=leaves[i].pem, key=leaves[i].key_pem)).body.cert_id,
        AlibabaCloudException, lambda e: (e.code, e.status_code))
    ok = [r for r in results if r[0] == "ok"]
    assert len(ok) == 1, results
    assert all(r == ("err", ("NameRepeat", 400)) for r in results if r[0] != "ok"), results
    listed = [i for i in list_orders(clients[0], order_type="UPLOAD").certificate_order_list or []
              if i.name == "raced_name"]
    assert [i.certificate_id for i in listed] == [ok[0][1]]
    # Deleting it frees the name.
    clients[0].delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=ok[0][1]))
    upload(clients[0], "raced_name", leaves[0])


def test_client_token_makes_upload_and_delete_idempotent(server, cas, upload_ca):
    """ClientToken "ensures the idempotence of the request" (SDK): a retried upload answers the
    first CertId instead of NameRepeat; a retried delete succeeds instead of answering 404."""
    import uuid
    leaf = make_leaf(upload_ca, "idem.example.com")
    token = uuid.uuid4().hex
    first = upload(cas, "idem_cert", leaf, client_token=token)
    again = upload(cas, "idem_cert", leaf, client_token=token)
    assert again.cert_id == first.cert_id
    names = [i.name for i in list_orders(cas, order_type="UPLOAD").certificate_order_list or []]
    assert names.count("idem_cert") == 1
    with expect_error("NameRepeat", 400):
        upload(cas, "idem_cert", leaf, client_token=uuid.uuid4().hex)

    delete_token = uuid.uuid4().hex
    for _ in range(2):
        cas.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=first.cert_id,
                                                                   client_token=delete_token))
    with expect_error(None):
        cas.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=first.cert_id))
    # The token answered for that certificate; used for another one it is refused.
    other = upload(cas, "idem_second", make_leaf(upload_ca, "idem2.example.com"))
    with expect_error("InvalidParameter", 400):
        cas.delete_user_certificate(M.DeleteUserCertificateRequest(cert_id=other.cert_id,
                                                                   client_token=delete_token))
    assert detail(cas, other.cert_id).id == other.cert_id
    with expect_error("InvalidClientToken", 400):
        upload(cas, "idem_other", leaf, client_token="x" * 65)
