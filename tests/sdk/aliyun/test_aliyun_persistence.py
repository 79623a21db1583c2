"""Restart persistence: orders (pending, issued, revoked), packages, issued and uploaded
certificates survive a restart on the same data directory; pending orders keep validating."""

from __future__ import annotations

import signal

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    FREE,
    CertplaneServer,
    M,
    all_order_ids,
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
from cas_x509 import make_ca, make_leaf

pytestmark = pytest.mark.slow


def test_state_survives_restart(binary, dns, web, tmp_path_factory, tmp_path):
    dns.clear()
    web.clear()
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("restart") / "data", dev=True,
                          extra_args=validation_args(dns, web)).start()
    try:
        srv.add_package(ACCOUNT_A, FREE, 5)
        client = cas_client(srv, ACCOUNT_A)
        kept_id, kept = issue(client, dns, web, unique_domain("kept"))
        revoked_id, revoked = issue(client, dns, web, unique_domain("revoked"))
        client.cancel_certificate_for_package_request(
            M.CancelCertificateForPackageRequestRequest(order_id=revoked_id))
        pending_id = create_order(client, unique_domain("pending"))
        pending = describe(client, pending_id)
        leaf = make_leaf(make_ca(), "uploaded.example.com")
        up = client.upload_user_certificate(M.UploadUserCertificateRequest(
            name="persisted", cert=leaf.pem, key=leaf.key_pem)).body
        before_packages = package_state(client)
        before_orders = all_order_ids(client)
        ca_before = srv.ca_pem_path.read_text()
        assert before_packages[:2] == (5, 2)

        code = srv.stop(signal.SIGTERM)
        assert code is not None, "certplane did not exit on SIGTERM"
        srv.start()
        client = cas_client(srv, ACCOUNT_A)

        assert package_state(client) == before_packages
        assert all_order_ids(client) == before_orders
        again = describe(client, kept_id)
        assert again.type == "certificate"
        assert again.certificate.strip() == kept.certificate.strip()
        assert srv.ca_pem_path.read_text() == ca_before, "the issuing CA must survive a restart"
        res = openssl_verify(srv.ca_pem_path, again.certificate, tmp_path, srv.clock())
        assert res.returncode == 0, res.stdout + res.stderr
        assert srv.cert_status(revoked.certificate) == "REVOKED"
        assert srv.cert_status(kept.certificate) != "REVOKED"

        p = describe(client, pending_id)
        assert p.type == "domain_verify"
        assert (p.record_domain, p.record_value) == (pending.record_domain, pending.record_value)
        dns.set_txt(p.record_domain, p.record_value)
        wait_type(client, pending_id, "certificate", timeout=20)
        assert package_state(client) == (5, 2, before_packages[2] + 1)

        d = client.get_user_certificate_detail(M.GetUserCertificateDetailRequest(cert_id=up.cert_id)).body
        assert d.name == "persisted" and "BEGIN CERTIFICATE" in d.cert

        # a unit returned before the restart stays returned; new orders still work
        create_order(client, unique_domain("after"))
        assert package_state(client)[1] == 3
    finally:
        srv.stop()
