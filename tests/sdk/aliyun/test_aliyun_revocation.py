"""A CAS certificate cancelled with CancelCertificateForPackageRequest is revoked for relying
parties: on the CRL with reason cessationOfOperation, and revoked over OCSP (real `openssl`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

from aliyun_harness import M, issue, unique_domain
from certplane_server import http_request

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str, input: bytes | None = None) -> str:
    res = subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=60)
    out = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    assert res.returncode == 0, f"openssl {' '.join(args)}:\n{out}"
    return out


def test_cancelled_cas_certificate_is_revoked_with_cessation_of_operation(funded, cas, dns, web,
                                                                            tmp_path):
    order_id, issued = issue(cas, dns, web, unique_domain())
    leaf = tmp_path / "leaf.pem"
    # The first certificate of the chain is the leaf.
    leaf.write_text(issued.certificate.split("-----END CERTIFICATE-----")[0]
                    + "-----END CERTIFICATE-----\n")
    ext = openssl("x509", "-in", str(leaf), "-noout", "-ext",
                  "authorityInfoAccess,crlDistributionPoints")
    crl_url = re.search(r"Full Name:\s*URI:(\S+)", ext).group(1)
    ocsp_url = re.search(r"OCSP - URI:(\S+)", ext).group(1)
    assert ocsp_url == f"{funded.url}/ocsp"
    serial = openssl("x509", "-in", str(leaf), "-noout", "-serial").strip().split("=", 1)[1]
    ca = str(funded.ca_pem_path)
    out = openssl("ocsp", "-issuer", ca, "-cert", str(leaf), "-url", ocsp_url, "-CAfile", ca)
    assert f"{leaf}: good" in out

    cas.cancel_certificate_for_package_request(
        M.CancelCertificateForPackageRequestRequest(order_id=order_id))
    out = openssl("ocsp", "-issuer", ca, "-cert", str(leaf), "-url", ocsp_url, "-CAfile", ca)
    assert f"{leaf}: revoked" in out and "Reason: cessationOfOperation" in out, out
    path = urllib.parse.urlsplit(crl_url).path
    deadline = time.monotonic() + 5
    while True:
        status, _, body = http_request(funded.url, "GET", path)
        assert status == 200
        text = openssl("crl", "-inform", "DER", "-noout", "-text", input=body)
        if serial.upper() in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    entry = text.split(serial.upper(), 1)[1]
    assert "Cessation Of Operation" in entry.split("Serial Number", 1)[0], text


def _blocks(pem: str) -> list[str]:
    return [b + "-----END CERTIFICATE-----\n" for b in pem.split("-----END CERTIFICATE-----")
            if "-----BEGIN CERTIFICATE-----" in b]


@pytest.mark.slow
def test_chain_names_the_ca_that_signed_after_a_rotation(binary, dns, web, tmp_path):
    """After `admin ca rotate`, a certificate the retired CA signed is still answered with the
    retired CA in its chain (Cert of GetUserCertificateDetail), and one issued afterwards with the
    new CA; each chain verifies against its own CA alone."""
    from aliyun_harness import (ACCOUNT_A, FREE, CertplaneServer, cas_client, validation_args)

    srv = CertplaneServer(binary, tmp_path / "data", dev=True,
                          extra_args=validation_args(dns, web)).start()
    try:
        srv.add_package(ACCOUNT_A, FREE, 20)
        client = cas_client(srv, ACCOUNT_A)

        def chain_of(issued) -> list[str]:
            d = client.get_user_certificate_detail(
                M.GetUserCertificateDetailRequest(cert_id=int(issued.cert_id))).body
            assert len(d.cert_chain) == 2
            return [b.strip() + "\n" for b in _blocks(d.cert)]

        _, before = issue(client, dns, web, unique_domain())
        old_ca = chain_of(before)[-1]
        srv.admin("ca", "rotate")
        deadline = time.monotonic() + 8
        while True:  # running servers pick the new active CA up within about 2 s
            _, after = issue(client, dns, web, unique_domain())
            new_ca = chain_of(after)[-1]
            if new_ca != old_ca:
                break
            assert time.monotonic() < deadline, "the rotation never reached the server"
            time.sleep(0.5)
        for issued, ca in ((before, old_ca), (after, new_ca)):
            chain = chain_of(issued)
            assert chain[-1] == ca, "the chain does not end with the CA that signed the leaf"
            ca_file, leaf_file = tmp_path / "ca.pem", tmp_path / "leaf.pem"
            ca_file.write_text(ca)
            leaf_file.write_text(chain[0])
            assert openssl("verify", "-CAfile", str(ca_file), str(leaf_file)).strip().endswith(": OK")
    finally:
        srv.stop()
