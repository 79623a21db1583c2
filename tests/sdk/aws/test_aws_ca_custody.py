"""The CAs certplane holds: keys sealed at rest under the master key, a wrong or missing master
key refusing the start, `admin ca create|import|list|show|rotate` while the server runs, old CAs
answering CRL and OCSP after a rotation, master-key rotation and migration of the older layout
(a plain CA key in the store). Certificates come from boto3's CreateKeysAndCertificate and are
checked with the real `openssl` CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import sdk_engine
from aws_harness import ACCOUNT_A, iot_client
from certplane_server import CertplaneServer, http_request

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str, check: bool = True, input: bytes | None = None) -> str:
    res = subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=60)
    out = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    if check and res.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} exited {res.returncode}:\n{out}")
    return out


def make_ca_files(tmp: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    """A CA made outside certplane (its SKI is OpenSSL-style SHA-1, unlike certplane's own)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert


def issue(server: CertplaneServer, tmp: Path, name: str) -> tuple[str, Path, x509.Certificate]:
    iot = iot_client(server.url, access_key=ACCOUNT_A)
    r = iot.create_keys_and_certificate(setAsActive=True)
    path = tmp / f"{name}.pem"
    path.write_text(r["certificatePem"])
    return r["certificateId"], path, x509.load_pem_x509_certificate(r["certificatePem"].encode())


def aki(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


def ca_url_id(cert: x509.Certificate) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    url = next(d.access_location.value for d in aia
               if d.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS)
    m = re.search(r"/ca/([0-9a-f]{32})\.crt$", url)
    assert m, url
    return m.group(1)


def ca_list(server: CertplaneServer) -> list[dict]:
    return server.admin_json("ca", "list", "--json")


def issue_from(server: CertplaneServer, tmp: Path, name: str, ca_id: str, timeout: float = 8.0):
    """Issues until the running server signs with `ca_id` (it follows admin changes within
    seconds); returns the first certificate that CA signed."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        cert_id, path, cert = issue(server, tmp, f"{name}-{n}")
        if ca_url_id(cert) == ca_id:
            return cert_id, path, cert
        n += 1
        assert time.monotonic() < deadline, f"the server still signs with {ca_url_id(cert)}"
        time.sleep(0.2)


def ocsp(server: CertplaneServer, issuer: Path, cert: Path) -> str:
    return openssl("ocsp", "-issuer", str(issuer), "-cert", str(cert), "-url", f"{server.url}/ocsp",
                   "-CAfile", str(issuer), "-resp_text")


def fetch_ca(server: CertplaneServer, ca_id: str, tmp: Path) -> Path:
    status, _, body = http_request(server.url, "GET", f"/ca/{ca_id}.pem")
    assert status == 200, status
    path = tmp / f"ca-{ca_id}.pem"
    path.write_bytes(body)
    return path


def export_issuer_lines(server: CertplaneServer) -> list[dict]:
    out = server.admin("export").stdout
    return [json.loads(l) for l in out.splitlines()[1:] if json.loads(l)["kind"] == "issuer"]


@pytest.fixture
def fresh(binary, tmp_path):
    servers = []

    def make(name: str = "data", **kw) -> CertplaneServer:
        srv = CertplaneServer(binary, tmp_path / name, dev=True, **kw)
        servers.append(srv)
        return srv
    yield make
    for s in servers:
        s.stop()


def test_ca_keys_are_sealed_and_a_wrong_master_key_stops_the_start(fresh, tmp_path):
    srv = fresh().start()
    before = ca_list(srv)
    assert [c["status"] for c in before] == ["ACTIVE"]
    assert before[0]["custody"] == "software" and before[0]["origin"] == "first-start"
    srv.stop()
    lines = export_issuer_lines(srv)
    text = json.dumps(lines)
    assert "PRIVATE KEY" not in text
    records = [l["body"] for l in lines if l["key"].startswith("ca:")]
    assert records and records[0]["key"]["type"] == "sealed"
    assert records[0]["key"]["algorithm"] == "AES-256-GCM"
    if sdk_engine.ENGINE == "sqlite":
        key_file = srv.data_dir / "master.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        # Without its master key the deployment does not start, and makes no new CA.
        key_file.rename(tmp_path / "kept.key")
        res = subprocess.run([str(srv.binary), "serve", "--dev", "--listen", "127.0.0.1:0",
                              "--data-dir", str(srv.data_dir)], capture_output=True, text=True,
                             timeout=60, env=srv.env())
        assert res.returncode != 0
        assert "sealed under master key" in res.stderr and "--master-key-file" in res.stderr
        assert not key_file.exists()
        (tmp_path / "kept.key").rename(key_file)
    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    res = subprocess.run([str(srv.binary), "serve", "--dev", "--listen", "127.0.0.1:0",
                          "--data-dir", str(srv.data_dir), "--master-key-file", str(wrong)],
                         capture_output=True, text=True, timeout=60, env=srv.env())
    assert res.returncode != 0
    assert "does not open" in res.stderr or "sealed under" in res.stderr, res.stderr
    assert ca_list(srv) == before


def test_rotation_keeps_old_certificates_verifiable_with_crl_and_ocsp(fresh, tmp_path):
    srv = fresh().start()
    old_id = ca_list(srv)[0]["caId"]
    old_cert_id, old_pem, old_cert = issue(srv, tmp_path, "before")
    assert ca_url_id(old_cert) == old_id

    rotated = srv.admin_json("ca", "rotate", "--json")
    new_id = rotated["caId"]
    assert new_id != old_id and rotated["status"] == "ACTIVE"
    assert rotated["commonName"].startswith("certplane issuing CA 20")
    listed = {c["caId"]: c["status"] for c in ca_list(srv)}
    assert listed == {new_id: "ACTIVE", old_id: "RETIRED"}

    new_cert_id, new_pem, new_cert = issue_from(srv, tmp_path, "after", new_id)
    assert aki(new_cert) != aki(old_cert)
    # ca.pem holds every held CA: both certificates verify against it.
    bundle = srv.ca_pem_path.read_text()
    assert bundle.count("BEGIN CERTIFICATE") == 2
    for pem in (old_pem, new_pem):
        assert openssl("verify", "-CAfile", str(srv.ca_pem_path), str(pem)).strip().endswith("OK")
    old_ca, new_ca = fetch_ca(srv, old_id, tmp_path), fetch_ca(srv, new_id, tmp_path)
    assert openssl("verify", "-CAfile", str(old_ca), str(new_pem), check=False).find(": OK") < 0

    # Each CA answers OCSP for what it signed.
    text = ocsp(srv, old_ca, old_pem)
    assert "Response verify OK" in text and f"{old_pem}: good" in text
    text = ocsp(srv, new_ca, new_pem)
    assert "Response verify OK" in text and f"{new_pem}: good" in text

    # Revoking the old certificate shows on the old CA's CRL, not on the new one's.
    iot = iot_client(srv.url, access_key=ACCOUNT_A)
    iot.update_certificate(certificateId=old_cert_id, newStatus="REVOKED")
    serial = format(old_cert.serial_number, "X")
    deadline = time.monotonic() + 5
    while True:
        status, _, der = http_request(srv.url, "GET", f"/crl/{old_id}.crl")
        assert status == 200
        crl_text = openssl("crl", "-inform", "DER", "-noout", "-text", input=der)
        if serial in crl_text:
            break
        assert time.monotonic() < deadline, crl_text
        time.sleep(0.1)
    status, _, new_crl = http_request(srv.url, "GET", f"/crl/{new_id}.crl")
    assert status == 200
    assert serial not in openssl("crl", "-inform", "DER", "-noout", "-text", input=new_crl)
    crl_pem = tmp_path / "old.crl.pem"
    openssl("crl", "-inform", "DER", "-out", str(crl_pem), input=der)
    out = openssl("verify", "-crl_check", "-CAfile", str(old_ca), "-CRLfile", str(crl_pem),
                  str(old_pem), check=False)
    assert "certificate revoked" in out
    assert f"{old_pem}: revoked" in ocsp(srv, old_ca, old_pem)

    # The rotation survives a restart, and `--to` goes back to a held CA.
    srv.stop()
    srv.start()
    assert issue(srv, tmp_path, "restarted")[2].issuer == new_cert.issuer
    back = srv.admin_json("ca", "rotate", "--to", old_id, "--json")
    assert back["caId"] == old_id and back["status"] == "ACTIVE"
    issue_from(srv, tmp_path, "back", old_id)
    res = srv.admin("ca", "rotate", "--to", "0" * 32, expect_ok=False)
    assert res.returncode != 0 and "no held CA" in res.stderr


def test_imported_ca_signs_with_its_own_key_identifier(fresh, tmp_path):
    srv = fresh().start()
    cert_path, key_path, ca_cert = make_ca_files(tmp_path, "Imported Root")
    other_cert, other_key, _ = make_ca_files(tmp_path, "Other")
    # A key that is not the certificate's is refused, and nothing is held.
    res = srv.admin("ca", "import", "--cert", str(cert_path), "--key", str(other_key),
                    expect_ok=False)
    assert res.returncode != 0 and "does not belong" in res.stderr
    assert len(ca_list(srv)) == 1
    imported = srv.admin_json("ca", "import", "--cert", str(cert_path), "--key", str(key_path),
                              "--activate", "--json")
    assert imported["commonName"] == "Imported Root" and imported["origin"] == "imported"
    _, pem, cert = issue_from(srv, tmp_path, "imp", imported["caId"])
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki(cert) == ski
    assert openssl("verify", "-CAfile", str(cert_path), str(pem)).strip().endswith("OK")
    text = ocsp(srv, cert_path, pem)
    assert "Response verify OK" in text and f"{pem}: good" in text
    shown = srv.admin("ca", "show", imported["caId"]).stdout
    assert "BEGIN CERTIFICATE" in shown
    # Importing the same CA twice is refused.
    res = srv.admin("ca", "import", "--cert", str(cert_path), "--key", str(key_path),
                    expect_ok=False)
    assert res.returncode != 0 and "already held" in res.stderr
    # The imported key is sealed like the others.
    srv.stop()
    assert "PRIVATE KEY" not in json.dumps(export_issuer_lines(srv))


def test_master_key_rotation_reseals_every_key(fresh, tmp_path):
    srv = fresh().start()
    srv.admin("ca", "create", "--common-name", "standby CA")
    before = ca_list(srv)
    new_key = tmp_path / "new.key"
    new_key.write_text(os.urandom(32).hex() + "\n")
    out = srv.admin("ca", "rotate-master-key", "--new-master-key-file", str(new_key)).stdout
    assert "re-sealed" in out
    srv.stop()
    ids = {l["body"]["key"]["masterKeyId"] for l in export_issuer_lines(srv)
           if l["key"].startswith("ca:")}
    assert len(ids) == 1
    if sdk_engine.ENGINE == "sqlite":
        assert (srv.data_dir / "master.key").read_text() == new_key.read_text()
    srv.start()
    assert ca_list(srv) == before
    issue(srv, tmp_path, "after-rotation")


def test_master_key_file_is_used_and_required(fresh, tmp_path):
    key = tmp_path / "mk"
    key.write_text(os.urandom(32).hex())
    srv = fresh(extra_args=["--master-key-file", str(key)]).start()
    assert not (srv.data_dir / "master.key").exists()
    env = dict(srv.env(), CERTPLANE_MASTER_KEY_FILE=str(key))
    listed = subprocess.run([str(srv.binary), "admin", "ca", "list", "--json", "--data-dir",
                             str(srv.data_dir)], capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    # The server warns only when the key lies beside the data.
    assert "lies beside the data" not in srv.log_path.read_text()
    srv.stop()
    if sdk_engine.ENGINE == "sqlite":
        res = subprocess.run([str(srv.binary), "admin", "ca", "list", "--data-dir",
                              str(srv.data_dir)], capture_output=True, text=True,
                             env=srv.env(), timeout=60)
        assert res.returncode != 0 and "sealed under master key" in res.stderr
        assert not (srv.data_dir / "master.key").exists()


def test_generated_key_beside_the_data_is_warned_about(fresh):
    srv = fresh().start()
    log = srv.log_path.read_text()
    assert "master key" in log and ("lies beside the data" in log or "beside the data" in log)


def test_older_layout_is_migrated_on_first_start(fresh, tmp_path):
    """A store written by an older release holds one CA with its key in plain text (record
    `issuer/default`); the first start seals it and keeps signing with the same CA."""
    src = fresh("src").start()
    src.stop()
    export = src.admin("export").stdout.splitlines()
    header, docs = json.loads(export[0]), [json.loads(l) for l in export[1:]]
    cert_path, key_path, ca_cert = make_ca_files(tmp_path, "certplane issuing CA")
    docs = [d for d in docs if d["kind"] != "issuer"]
    docs.insert(0, {"kind": "issuer", "key": "default", "account": "", "region": "",
                    "body": {"cert_pem": cert_path.read_text(), "key_pem": key_path.read_text()}})
    header["documents"] = len(docs)
    dump = tmp_path / "old.jsonl"
    dump.write_text("\n".join(json.dumps(x) for x in [header, *docs]) + "\n")
    dst = fresh("dst")
    dst.data_dir.mkdir(parents=True)
    dst.admin("import", str(dump))
    dst.start()
    cas = ca_list(dst)
    assert len(cas) == 1 and cas[0]["origin"] == "migrated" and cas[0]["status"] == "ACTIVE"
    _, pem, cert = issue(dst, tmp_path, "migrated")
    assert openssl("verify", "-CAfile", str(cert_path), str(pem)).strip().endswith("OK")
    dst.stop()
    lines = export_issuer_lines(dst)
    assert all(l["key"] != "default" for l in lines)
    assert "PRIVATE KEY" not in json.dumps(lines)
    dst.start()
    assert ca_list(dst)[0]["caId"] == cas[0]["caId"]


SOFTHSM_MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]


@pytest.fixture
def softhsm(tmp_path, monkeypatch):
    """A fresh SoftHSM2 token (Debian `softhsm2`, installed by scripts/test), and the
    CERTPLANE_PKCS11_* environment that points serve and admin at it."""
    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("SoftHSM2 is not installed and CI=true")
        pytest.skip("SKIPPED: SoftHSM2 (Debian softhsm2) is not installed")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "certplane-ca",
                    "--so-pin", "12345678", "--pin", "87654321"], check=True,
                   capture_output=True, timeout=60)
    monkeypatch.setenv("CERTPLANE_PKCS11_MODULE", module)
    monkeypatch.setenv("CERTPLANE_PKCS11_TOKEN_LABEL", "certplane-ca")
    monkeypatch.setenv("CERTPLANE_PKCS11_PIN", "87654321")
    return module


def test_ca_key_in_a_pkcs11_token_signs_certificates_crls_and_ocsp(softhsm, fresh, tmp_path,
                                                                   monkeypatch):
    srv = fresh().start()
    made = srv.admin_json("ca", "create", "--pkcs11", "--activate", "--common-name",
                          "certplane HSM CA", "--json")
    assert made["custody"] == "pkcs11" and made["status"] == "ACTIVE"
    ca_id = made["caId"]
    cert_id, pem, _ = issue_from(srv, tmp_path, "hsm", ca_id)
    ca = fetch_ca(srv, ca_id, tmp_path)
    assert openssl("verify", "-CAfile", str(ca), str(pem)).strip().endswith("OK")
    text = ocsp(srv, ca, pem)
    assert "Response verify OK" in text and f"{pem}: good" in text
    iot_client(srv.url, access_key=ACCOUNT_A).update_certificate(certificateId=cert_id,
                                                                  newStatus="REVOKED")
    deadline = time.monotonic() + 5
    while f"{pem}: revoked" not in ocsp(srv, ca, pem):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status, _, der = http_request(srv.url, "GET", f"/crl/{ca_id}.crl")
    assert status == 200
    out = openssl("crl", "-inform", "DER", "-CAfile", str(ca), "-noout", input=der)
    assert "verify OK" in out
    # The record names the token key; no key material is stored.
    srv.stop()
    rec = next(l["body"] for l in export_issuer_lines(srv) if l["key"] == f"ca:{ca_id}")
    assert rec["key"]["type"] == "pkcs11" and rec["key"]["tokenLabel"] == "certplane-ca"
    # Without the PIN the start stops with a clear message.
    monkeypatch.delenv("CERTPLANE_PKCS11_PIN")
    res = subprocess.run([str(srv.binary), "serve", "--dev", "--listen", "127.0.0.1:0",
                          "--data-dir", str(srv.data_dir)], capture_output=True, text=True,
                         timeout=60, env=srv.env())
    assert res.returncode != 0 and "PIN" in res.stderr
    pin_file = tmp_path / "pin"
    pin_file.write_text("87654321\n")
    srv.extra_args = ["--pkcs11-pin-file", str(pin_file)]
    srv.start()
    _, pem2, _ = issue(srv, tmp_path, "hsm-again")
    assert openssl("verify", "-CAfile", str(ca), str(pem2)).strip().endswith("OK")
