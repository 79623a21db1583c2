"""Revocation for relying parties: the AIA/CDP URLs in certificates certplane issues, the CRL at
/crl/{caId}.crl, its delta CRL at /crl/{caId}-delta.crl and the OCSP responder at /ocsp, checked
with the real `openssl` CLI against certificates made through boto3 (CreateKeysAndCertificate)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from certplane_server import CertplaneServer, http_request, require

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str, check: bool = True, input: bytes | None = None) -> str:
    res = subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=60)
    out = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    if check and res.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} exited {res.returncode}:\n{out}")
    return out


def issue(iot, tmp: Path, name: str, active: bool = True) -> tuple[str, Path, str]:
    """A new certificate via CreateKeysAndCertificate: (certificateId, PEM path, serial hex)."""
    r = iot.create_keys_and_certificate(setAsActive=active)
    path = tmp / f"{name}.pem"
    path.write_text(r["certificatePem"])
    serial = openssl("x509", "-in", str(path), "-noout", "-serial").strip().split("=", 1)[1]
    return r["certificateId"], path, serial.upper()


def urls_of(pem: Path) -> dict:
    text = openssl("x509", "-in", str(pem), "-noout", "-ext",
                   "authorityInfoAccess,crlDistributionPoints")
    ocsp = re.search(r"OCSP - URI:(\S+)", text)
    issuers = re.search(r"CA Issuers - URI:(\S+)", text)
    crl = re.search(r"Full Name:\s*URI:(\S+)", text)
    assert ocsp and issuers and crl, text
    return {"ocsp": ocsp.group(1), "ca_issuers": issuers.group(1), "crl": crl.group(1)}


def path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


class Crl:
    def __init__(self, server, crl_path: str, tmp: Path):
        self.server, self.path, self.tmp = server, crl_path, tmp

    def fetch(self, headers: dict | None = None):
        return http_request(self.server.url, "GET", self.path, headers=headers or {})

    def text(self) -> str:
        status, _, body = self.fetch()
        assert status == 200
        return openssl("crl", "-inform", "DER", "-noout", "-text", input=body)

    def number(self, text: str | None = None) -> int:
        return crl_integer("CRL Number:", text or self.text())

    def base(self, text: str | None = None) -> int:
        """A delta CRL's BaseCRLNumber."""
        return crl_integer("Delta CRL Indicator: critical", text or self.text())

    def delta(self) -> "Crl":
        """The delta CRL beside this complete CRL."""
        assert self.path.endswith(".crl")
        return Crl(self.server, self.path[:-4] + "-delta.crl", self.tmp)

    def serials(self) -> dict:
        """serial hex -> reason text ('' for none)."""
        out, cur, reason_next = {}, None, False
        text = self.text()
        section = text.split("Revoked Certificates:", 1)[1] if "Revoked Certificates:" in text else ""
        for line in section.splitlines():
            m = re.match(r"\s*Serial Number: ([0-9A-F]+)", line)
            if m:
                cur = m.group(1)
                out[cur] = ""
            elif "CRL Reason Code" in line:
                reason_next = True
            elif reason_next and cur:
                out[cur] = line.strip()
                reason_next = False
        return out

    def pem_file(self, name: str = "crl.pem") -> Path:
        status, _, body = self.fetch()
        assert status == 200
        path = self.tmp / name
        openssl("crl", "-inform", "DER", "-out", str(path), input=body)
        return path

    def wait_for(self, predicate, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            serials = self.serials()
            if predicate(serials):
                return serials
            if time.monotonic() > deadline:
                raise AssertionError(f"the CRL never reached the expected state: {serials}")
            time.sleep(0.1)


def crl_integer(label: str, text: str) -> int:
    """The integer openssl prints under a CRL extension (decimal, or 0x-hex when large)."""
    m = re.search(r"X509v3 " + re.escape(label) + r"\s*\n\s*(0x)?([0-9A-Fa-f]+)", text)
    assert m, text
    return int(m.group(2), 16) if m.group(1) else int(m.group(2))


def verify(server, cert: Path, crl: Path) -> tuple[bool, str]:
    out = openssl("verify", "-crl_check", "-CAfile", str(server.ca_pem_path), "-CRLfile",
                  str(crl), str(cert), check=False)
    return out.strip().endswith(": OK"), out


def ocsp(server, url: str, *certs: Path, extra: tuple = ()) -> str:
    args = ["ocsp", "-issuer", str(server.ca_pem_path), "-url", url, "-resp_text",
            "-CAfile", str(server.ca_pem_path), *extra]
    for c in certs:
        args += ["-cert", str(c)]
    return openssl(*args)


def ocsp_status(text: str, cert: Path) -> str:
    m = re.search(re.escape(str(cert)) + r": (\w+)", text)
    assert m, text
    return m.group(1)


def test_issued_certificates_name_ocsp_crl_and_ca(server, iot, tmp_path):
    _, pem, _ = issue(iot, tmp_path, "a")
    urls = urls_of(pem)
    assert urls["ocsp"] == f"{server.url}/ocsp"
    ca_id = re.fullmatch(rf"{re.escape(server.url)}/ca/([0-9a-f]{{32}})\.crt", urls["ca_issuers"])
    assert ca_id, urls
    assert urls["crl"] == f"{server.url}/crl/{ca_id.group(1)}.crl"
    status, headers, der = http_request(server.url, "GET", path_of(urls["ca_issuers"]))
    assert status == 200 and headers["content-type"] == "application/pkix-cert"
    ca_der = openssl_bytes("x509", "-in", str(server.ca_pem_path), "-outform", "DER")
    assert der == ca_der
    status, _, pem_body = http_request(server.url, "GET", f"/ca/{ca_id.group(1)}.pem")
    assert status == 200 and pem_body.decode() == server.ca_pem_path.read_text()
    assert http_request(server.url, "GET", "/ca/00000000000000000000000000000000.crt")[0] == 404
    assert http_request(server.url, "GET", "/crl/nope.crl")[0] == 404
    # The chain still verifies with the new extensions.
    assert openssl("verify", "-CAfile", str(server.ca_pem_path), str(pem)).strip().endswith("OK")


def openssl_bytes(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=60).stdout


def test_crl_lists_revoked_and_held_certificates(server, iot, tmp_path):
    _, good, _ = issue(iot, tmp_path, "good")
    revoked_id, revoked, revoked_sn = issue(iot, tmp_path, "revoked")
    held_id, held, held_sn = issue(iot, tmp_path, "held")
    crl = Crl(server, path_of(urls_of(good)["crl"]), tmp_path)
    status, headers, body = crl.fetch()
    assert status == 200 and headers["content-type"] == "application/pkix-crl"
    first_number = crl.number()
    text = crl.text()
    assert "Issuer: O = certplane, CN = certplane issuing CA" in text
    assert "Next Update:" in text

    iot.update_certificate(certificateId=revoked_id, newStatus="REVOKED")
    iot.update_certificate(certificateId=held_id, newStatus="INACTIVE")
    serials = crl.wait_for(lambda s: revoked_sn in s and held_sn in s)
    assert serials[held_sn] == "Certificate Hold"
    assert serials[revoked_sn] == ""  # AWS gives no reason: the reasonCode is left out
    assert crl.number() > first_number

    pem = crl.pem_file()
    ok, out = verify(server, good, pem)
    assert ok, out
    ok, out = verify(server, revoked, pem)
    assert not ok and "certificate revoked" in out
    ok, out = verify(server, held, pem)
    assert not ok and "certificate revoked" in out

    # Reactivation takes the hold off.
    iot.update_certificate(certificateId=held_id, newStatus="ACTIVE")
    serials = crl.wait_for(lambda s: held_sn not in s)
    assert revoked_sn in serials
    ok, out = verify(server, held, crl.pem_file())
    assert ok, out
    # The PEM form is the same CRL.
    status, headers, body = http_request(server.url, "GET", crl.path[:-4] + ".pem")
    assert status == 200 and body.startswith(b"-----BEGIN X509 CRL-----")


def test_crl_cache_headers_and_growing_number(server, iot, tmp_path):
    cert_id, pem, _ = issue(iot, tmp_path, "c")
    crl = Crl(server, path_of(urls_of(pem)["crl"]), tmp_path)
    # The reset before this test reaches the CRL through the change feed (on PostgreSQL a
    # NOTIFY a few milliseconds later): start from the rebuilt, empty CRL.
    crl.wait_for(lambda s: len(s) == 0)
    status, h1, body1 = crl.fetch()
    assert status == 200
    etag = h1["etag"]
    assert etag.startswith('"') and h1["last-modified"].endswith("GMT")
    max_age = int(re.search(r"max-age=(\d+)", h1["cache-control"]).group(1))
    assert 0 < max_age <= 3600
    status, h2, body2 = crl.fetch({"If-None-Match": etag})
    assert status == 304 and body2 == b"" and h2["etag"] == etag
    status, _, _ = crl.fetch({"If-None-Match": '"something-else"'})
    assert status == 200
    number = crl.number()
    # Issuing certificates does not change the CRL (its entries are the same)...
    issue(iot, tmp_path, "d")
    time.sleep(0.6)
    assert crl.fetch()[1]["etag"] == etag
    # ...a revocation does, once, and the number grows.
    iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    crl.wait_for(lambda s: len(s) == 1)
    status, h3, _ = crl.fetch({"If-None-Match": etag})
    assert status == 200 and h3["etag"] != etag
    assert crl.number() > number


def test_crl_debounces_a_burst_of_revocations(server, iot, tmp_path):
    certs = [issue(iot, tmp_path, f"b{i}") for i in range(12)]
    crl = Crl(server, path_of(urls_of(certs[0][1])["crl"]), tmp_path)
    before = crl.number()
    for cert_id, _, _ in certs:
        iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    crl.wait_for(lambda s: len(s) == len(certs))
    time.sleep(0.5)
    # Far fewer CRLs than revocations were signed.
    assert crl.number() - before < len(certs) / 2


def test_ocsp_good_revoked_and_hold_with_nonce(server, iot, tmp_path):
    _, good, _ = issue(iot, tmp_path, "good")
    revoked_id, revoked, _ = issue(iot, tmp_path, "revoked")
    held_id, held, _ = issue(iot, tmp_path, "held")
    url = urls_of(good)["ocsp"]
    iot.update_certificate(certificateId=revoked_id, newStatus="REVOKED")
    iot.update_certificate(certificateId=held_id, newStatus="INACTIVE")
    text = ocsp(server, url, good, revoked, held)
    assert "Response verify OK" in text
    assert ocsp_status(text, good) == "good"
    assert ocsp_status(text, revoked) == "revoked"
    assert ocsp_status(text, held) == "revoked"
    assert "Reason: certificateHold" in text
    assert "OCSP Nonce" in text
    no_nonce = ocsp(server, url, good, extra=("-no_nonce",))
    assert "Response verify OK" in no_nonce and "OCSP Nonce" not in no_nonce
    assert ocsp_status(no_nonce, good) == "good"
    # Reactivation shows within a second.
    iot.update_certificate(certificateId=held_id, newStatus="ACTIVE")
    deadline = time.monotonic() + 1.0
    while ocsp_status(ocsp(server, url, held), held) != "good":
        assert time.monotonic() < deadline, "the reactivation did not show within a second"


def test_ocsp_presigned_answers_follow_changes(server, iot, tmp_path):
    """A single-certificate request without a nonce gets the pre-signed answer (the same bytes
    again); a change of the certificate replaces it within a second; a nonce or another CertID
    hash gets an answer of its own."""
    cert_id, cert, _ = issue(iot, tmp_path, "p")
    req1, req256 = tmp_path / "req1.der", tmp_path / "req256.der"
    openssl("ocsp", "-issuer", str(server.ca_pem_path), "-cert", str(cert), "-reqout", str(req1),
            "-no_nonce")
    openssl("ocsp", "-sha256", "-issuer", str(server.ca_pem_path), "-cert", str(cert),
            "-reqout", str(req256), "-no_nonce")

    def answer(req: Path) -> tuple[bytes, str]:
        status, resp = ocsp_post(server, req.read_bytes())
        assert status == 200
        path = tmp_path / "presigned.der"
        path.write_bytes(resp)
        digest = ["-sha256"] if req == req256 else []
        text = openssl("ocsp", "-respin", str(path), "-resp_text", "-CAfile",
                       str(server.ca_pem_path), "-issuer", str(server.ca_pem_path), *digest,
                       "-cert", str(cert), "-no_nonce")
        assert "Response verify OK" in text, text
        return resp, ocsp_status(text, cert)

    first, status = answer(req1)
    assert status == "good"
    again, _ = answer(req1)
    assert again == first, "a nonce-less single request was signed afresh, not pre-signed"
    other, status = answer(req256)
    assert status == "good" and other != first
    assert answer(req1)[0] == first, "the SHA-256 answer displaced the SHA-1 one wrongly"
    # With a nonce: signed for this request (the nonce echoed).
    text = ocsp(server, f"{server.url}/ocsp", cert)
    assert "OCSP Nonce" in text and ocsp_status(text, cert) == "good"
    iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
    deadline = time.monotonic() + 1.0
    while answer(req1)[1] != "revoked":
        assert time.monotonic() < deadline, "the pre-signed good answer outlived the revocation"
    assert answer(req256)[1] == "revoked"


def ocsp_post(server, body: bytes) -> tuple[int, bytes]:
    status, headers, resp = http_request(server.url, "POST", "/ocsp", body,
                                         {"Content-Type": "application/ocsp-request"})
    return status, resp


def responder_error(resp: bytes, tmp: Path) -> str:
    path = tmp / "resp.der"
    path.write_bytes(resp)
    return openssl("ocsp", "-respin", str(path), "-resp_text", "-noverify", check=False)


def test_ocsp_malformed_requests(server, iot, tmp_path):
    _, cert, _ = issue(iot, tmp_path, "a")
    req = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(server.ca_pem_path), "-cert", str(cert), "-reqout", str(req))
    whole = req.read_bytes()
    for body in [b"", b"garbage", whole[:20], whole[:-1], b"\x30\x80" * 100, whole + b"\x00"]:
        status, resp = ocsp_post(server, body)
        assert status == 200, body
        assert resp == bytes([0x30, 0x03, 0x0A, 0x01, 0x01]), (body, resp)
    assert "malformedrequest" in responder_error(ocsp_post(server, b"junk")[1], tmp_path)
    # Bad GET forms too.
    for target in ["/ocsp/%%%", "/ocsp/bm90IGFuIG9jc3AgcmVxdWVzdA==", "/ocsp/"]:
        status, _, resp = http_request(server.url, "GET", target)
        assert status == 200 and resp == bytes([0x30, 0x03, 0x0A, 0x01, 0x01]), target


def test_ocsp_for_a_foreign_ca_is_unauthorized(server, iot, tmp_path):
    _, ours, _ = issue(iot, tmp_path, "ours")
    key, foreign = tmp_path / "fk.pem", tmp_path / "fca.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(foreign), "-subj", "/CN=foreign CA", "-days", "2")
    req = tmp_path / "freq.der"
    openssl("ocsp", "-issuer", str(foreign), "-cert", str(ours), "-reqout", str(req))
    status, resp = ocsp_post(server, req.read_bytes())
    assert status == 200 and resp == bytes([0x30, 0x03, 0x0A, 0x01, 0x06])
    assert "unauthorized" in responder_error(resp, tmp_path)
    # Asked together with one of ours: ours is answered, the foreign one is unknown.
    out = openssl("ocsp", "-url", f"{server.url}/ocsp", "-resp_text", "-noverify",
                  "-issuer", str(server.ca_pem_path), "-cert", str(ours),
                  "-issuer", str(foreign), "-serial", "0x1234", check=False)
    assert re.search(rf"{re.escape(str(ours))}: good", out), out
    assert "0x1234: unknown" in out, out


def test_ocsp_unknown_serial_and_get_form(server, iot, tmp_path):
    _, cert, _ = issue(iot, tmp_path, "a")
    out = openssl("ocsp", "-url", f"{server.url}/ocsp", "-resp_text", "-CAfile",
                  str(server.ca_pem_path), "-issuer", str(server.ca_pem_path),
                  "-serial", "0x7777")
    assert "0x7777: unknown" in out
    req = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(server.ca_pem_path), "-cert", str(cert), "-reqout", str(req),
            "-no_nonce")
    encoded = urllib.parse.quote(base64.b64encode(req.read_bytes()).decode(), safe="")
    status, headers, resp = http_request(server.url, "GET", f"/ocsp/{encoded}")
    assert status == 200 and headers["content-type"] == "application/ocsp-response"
    path = tmp_path / "resp.der"
    path.write_bytes(resp)
    text = openssl("ocsp", "-respin", str(path), "-resp_text", "-CAfile",
                   str(server.ca_pem_path), "-issuer", str(server.ca_pem_path), "-cert", str(cert),
                   "-no_nonce")
    assert "Response verify OK" in text and f"{cert}: good" in text


@pytest.mark.slow
def test_hold_listing_off_public_url_and_crl_number_across_restarts(binary, tmp_path):
    from aws_harness import ACCOUNT_A, iot_client

    data = tmp_path / "data"
    srv = CertplaneServer(binary, data, dev=True, extra_args=[
        "--crl-hold", "false", "--public-url", "https://pki.example.test/"]).start()
    try:
        iot = iot_client(srv.url, access_key=ACCOUNT_A)
        held_id, held, held_sn = issue(iot, tmp_path, "held")
        urls = urls_of(held)
        assert urls["ocsp"] == "https://pki.example.test/ocsp"
        assert urls["crl"].startswith("https://pki.example.test/crl/")
        crl = Crl(srv, path_of(urls["crl"]), tmp_path)
        iot.update_certificate(certificateId=held_id, newStatus="INACTIVE")
        revoked_id, _, revoked_sn = issue(iot, tmp_path, "revoked")
        iot.update_certificate(certificateId=revoked_id, newStatus="REVOKED")
        serials = crl.wait_for(lambda s: revoked_sn in s)
        assert held_sn not in serials
        text = ocsp(srv, f"{srv.url}/ocsp", held)
        assert ocsp_status(text, held) == "good"
        number = crl.number()
        # The delta is named from --public-url too; with holds off, no certificateHold in it.
        assert f"URI:https://pki.example.test{crl.path[:-4]}-delta.crl" in crl.text()
        delta = crl.delta()
        assert delta.wait_for(lambda s: revoked_sn in s) == {revoked_sn: ""}
        base = delta.base()
    finally:
        srv.stop()
    srv.start()
    try:
        assert crl.number() > number
        # The base is stored: a restart within --crl-delta-base keeps it.
        assert delta.base() == base
        assert revoked_sn in delta.serials()
    finally:
        srv.stop()


# Delta CRLs (RFC 5280 §5.2.4): signed with each complete CRL, listing the changes since the
# base (the complete CRL current when the base was taken, --crl-delta-base seconds a base).


def verify_with_delta(server, cert: Path, full: Path, delta: Path, tmp: Path,
                      extra: tuple = ()) -> tuple[bool, str]:
    """`openssl verify -crl_check -use_deltas` with a complete CRL and a delta CRL (OpenSSL 3
    needs no `-extended_crl` for deltas; `extra` adds flags)."""
    both = tmp / f"{full.stem}+{delta.stem}.pem"
    both.write_text(full.read_text() + delta.read_text())
    out = openssl("verify", "-crl_check", "-use_deltas", *extra, "-CAfile",
                  str(server.ca_pem_path), "-CRLfile", str(both), str(cert), check=False)
    return out.strip().endswith(": OK"), out


def test_complete_crl_names_its_delta_and_the_delta_its_base(server, iot, tmp_path):
    _, pem, _ = issue(iot, tmp_path, "a")
    crl = Crl(server, path_of(urls_of(pem)["crl"]), tmp_path)
    text = crl.text()
    m = re.search(r"X509v3 Freshest CRL:\s*\n\s*Full Name:\s*\n\s*URI:(\S+)", text)
    assert m, text
    assert m.group(1) == f"{server.url}{crl.path[:-4]}-delta.crl"
    assert "Delta CRL Indicator" not in text
    delta = crl.delta()
    assert delta.path == path_of(m.group(1))
    status, headers, _ = delta.fetch()
    assert status == 200 and headers["content-type"] == "application/pkix-crl"
    dtext = delta.text()
    assert "X509v3 Delta CRL Indicator: critical" in dtext
    assert "Freshest CRL" not in dtext
    assert delta.base(dtext) <= delta.number(dtext)
    assert delta.base(dtext) <= crl.number()
    # Same issuer, same key: the delta verifies against the CA.
    openssl("crl", "-inform", "DER", "-noout", "-CAfile", str(server.ca_pem_path),
            input=delta.fetch()[2])
    status, headers, body = http_request(server.url, "GET", delta.path[:-4] + ".pem")
    assert status == 200 and headers["content-type"] == "application/x-pem-file"
    assert body.startswith(b"-----BEGIN X509 CRL-----")
    assert headers["etag"] != crl.fetch()[1]["etag"]
    # An unknown CA has no delta either, in the same words as its missing CRL.
    unknown = http_request(server.url, "GET", "/crl/nope-delta.crl")
    assert unknown[0] == 404 and unknown[2] == http_request(server.url, "GET", "/crl/nope.crl")[2]


def test_delta_lists_changes_since_the_base_and_completes_an_old_crl(server, iot, tmp_path):
    _, good, _ = issue(iot, tmp_path, "good")
    revoked_id, revoked, revoked_sn = issue(iot, tmp_path, "revoked")
    held_id, held, held_sn = issue(iot, tmp_path, "held")
    crl = Crl(server, path_of(urls_of(good)["crl"]), tmp_path)
    delta = crl.delta()
    crl.wait_for(lambda s: len(s) == 0)
    old = crl.pem_file("old.pem")
    old_number = crl.number()

    iot.update_certificate(certificateId=revoked_id, newStatus="REVOKED")
    iot.update_certificate(certificateId=held_id, newStatus="INACTIVE")
    serials = delta.wait_for(lambda s: revoked_sn in s and held_sn in s)
    assert serials[revoked_sn] == "" and serials[held_sn] == "Certificate Hold"
    full = crl.wait_for(lambda s: revoked_sn in s and held_sn in s)
    assert full[revoked_sn] == serials[revoked_sn] and full[held_sn] == serials[held_sn]
    dtext = delta.text()
    assert delta.base(dtext) <= old_number < delta.number(dtext)
    new_delta = delta.pem_file("delta.pem")

    # The old complete CRL alone knows nothing of the changes; with the delta, both show.
    ok, out = verify(server, revoked, old)
    assert ok, out
    ok, out = verify_with_delta(server, revoked, old, new_delta, tmp_path)
    assert not ok and "certificate revoked" in out, out
    ok, out = verify_with_delta(server, held, old, new_delta, tmp_path)
    assert not ok and "certificate revoked" in out, out
    ok, out = verify_with_delta(server, good, old, new_delta, tmp_path)
    assert ok, out
    # The same with -extended_crl (indirect CRLs, reason partitions: none here).
    ok, out = verify_with_delta(server, revoked, old, new_delta, tmp_path, ("-extended_crl",))
    assert not ok and "certificate revoked" in out, out


def test_delta_takes_a_hold_off_with_remove_from_crl(server, iot, tmp_path):
    held_id, held, held_sn = issue(iot, tmp_path, "held")
    crl = Crl(server, path_of(urls_of(held)["crl"]), tmp_path)
    delta = crl.delta()
    iot.update_certificate(certificateId=held_id, newStatus="INACTIVE")
    crl.wait_for(lambda s: s.get(held_sn) == "Certificate Hold")
    old = crl.pem_file("old.pem")
    ok, out = verify(server, held, old)
    assert not ok and "certificate revoked" in out

    iot.update_certificate(certificateId=held_id, newStatus="ACTIVE")
    serials = delta.wait_for(lambda s: s.get(held_sn) == "Remove From CRL")
    assert held_sn not in crl.wait_for(lambda s: held_sn not in s)
    # The old complete CRL with the hold, plus the delta: good again.
    ok, out = verify_with_delta(server, held, old, delta.pem_file("delta.pem"), tmp_path)
    assert ok, (out, serials)


def test_complete_and_delta_crls_share_one_number_sequence(server, iot, tmp_path):
    _, pem, _ = issue(iot, tmp_path, "first")
    crl = Crl(server, path_of(urls_of(pem)["crl"]), tmp_path)
    delta = crl.delta()
    seen = []
    for i in range(3):
        cert_id, _, sn = issue(iot, tmp_path, f"r{i}")
        iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
        delta.wait_for(lambda s, sn=sn: sn in s)
        crl.wait_for(lambda s, sn=sn: sn in s)
        dtext = delta.text()
        seen.append((crl.number(), delta.number(dtext), delta.base(dtext)))
    numbers = [n for full, d, _ in seen for n in (full, d)]
    # Signed together, a complete CRL and its delta take one number (RFC 5280 §5.2.3); each
    # change takes the next one for both.
    assert numbers == sorted(numbers), seen
    assert seen[0][1] < seen[1][1] < seen[2][1], seen
    assert all(base <= min(numbers) for _, _, base in seen), seen
    # Settled: the delta served beside a complete CRL has its number.
    time.sleep(0.5)
    assert crl.number() == delta.number()


class _EnvServer(CertplaneServer):
    extra_env: dict = {}

    def env(self) -> dict:
        return {**super().env(), **self.extra_env}


@pytest.mark.slow
def test_delta_crls_off(binary, tmp_path):
    from aws_harness import ACCOUNT_A, iot_client

    # Through the environment, as every flag can be given.
    srv = _EnvServer(binary, tmp_path / "data", dev=True)
    srv.extra_env = {"CERTPLANE_CRL_DELTA_BASE": "0"}
    srv.start()
    try:
        iot = iot_client(srv.url, access_key=ACCOUNT_A)
        _, pem, _ = issue(iot, tmp_path, "a")
        crl = Crl(srv, path_of(urls_of(pem)["crl"]), tmp_path)
        assert "Freshest CRL" not in crl.text()
        unknown = http_request(srv.url, "GET", "/crl/nope.crl")
        for suffix in (".crl", ".pem"):
            status, headers, body = http_request(srv.url, "GET", crl.path[:-4] + "-delta" + suffix)
            assert (status, body) == (404, unknown[2])
            assert headers["content-type"] == unknown[1]["content-type"]
    finally:
        srv.stop()


class _SharedNode(CertplaneServer):
    """A node on the database of another node's data dir (PostgreSQL)."""
    shares_with = None

    def env(self) -> dict:
        import sdk_engine
        return sdk_engine.server_env(self.shares_with or self.data_dir)


@pytest.mark.slow
def test_nodes_on_one_database_serve_deltas_on_one_base(binary, tmp_path):
    import sdk_engine
    from aws_harness import ACCOUNT_A, iot_client

    if sdk_engine.ENGINE != "postgres":
        pytest.skip("several nodes share a database on PostgreSQL only")
    nodes = []
    try:
        for i in range(2):
            node = _SharedNode(binary, tmp_path / f"node{i}", dev=True)
            node.shares_with = tmp_path / "node0"
            nodes.append(node.start())
        iot = iot_client(nodes[0].url, access_key=ACCOUNT_A)
        cert_id, pem, sn = issue(iot, tmp_path, "a")
        path = path_of(urls_of(pem)["crl"])
        iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")
        deltas = [Crl(n, path, tmp_path).delta() for n in nodes]
        for d in deltas:
            d.wait_for(lambda s: sn in s)
        texts = [d.text() for d in deltas]
        # One stored base for both; each node's numbers come from the one shared counter.
        assert deltas[0].base(texts[0]) == deltas[1].base(texts[1]), texts
        assert deltas[0].number(texts[0]) != deltas[1].number(texts[1]), texts
    finally:
        for n in nodes:
            n.stop()


@pytest.mark.slow
def test_delta_base_rolls_after_its_period(binary, tmp_path):
    from aws_harness import ACCOUNT_A, iot_client

    srv = CertplaneServer(binary, tmp_path / "data", dev=True,
                          extra_args=["--crl-delta-base", "60"]).start()
    try:
        iot = iot_client(srv.url, access_key=ACCOUNT_A)
        a_id, pem, a_sn = issue(iot, tmp_path, "a")
        crl = Crl(srv, path_of(urls_of(pem)["crl"]), tmp_path)
        delta = crl.delta()
        iot.update_certificate(certificateId=a_id, newStatus="REVOKED")
        delta.wait_for(lambda s: a_sn in s)
        first_base = delta.base()
        # Past the period, and past the 300 s margin a delta lists before its base.
        srv.advance(400)
        b_id, _, b_sn = issue(iot, tmp_path, "b")
        iot.update_certificate(certificateId=b_id, newStatus="REVOKED")
        serials = delta.wait_for(lambda s: b_sn in s)
        text = delta.text()
        new_base = delta.base(text)
        assert new_base > first_base, text
        # `a` was revoked before the new base: on the complete CRL, no longer in the delta.
        assert a_sn not in serials
        assert a_sn in crl.serials()
        assert first_base < new_base <= delta.number(text)
    finally:
        srv.stop()
