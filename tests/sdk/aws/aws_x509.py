"""X.509 material for the AWS IoT SDK tests, built independently of certplane with `cryptography`.

CA certificates, device certificates, registration-code verification certificates and CSRs
(good ones, weak ones and ones with a broken signature).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_serial = itertools.count(1)


def new_key(kind: str = "ec", bits: int = 2048):
    """A fresh private key: kind "ec" (P-256) or "rsa" (with `bits`)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    raise ValueError(kind)


def _name(cn: str, org: str = "certplane-tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class Issued:
    cert: x509.Certificate
    key: object  # private key

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_id(self) -> str:
        """AWS certificate id: hex SHA-256 of the DER encoding."""
        return hashlib.sha256(self.der).hexdigest()


def _sign_hash(key):
    return hashes.SHA256()


def make_ca(
    cn: str | None = None,
    key=None,
    issuer: Issued | None = None,
    days_valid: int = 365,
    serial: int | None = None,
) -> Issued:
    """A CA certificate (basicConstraints CA:TRUE, keyCertSign). Self-signed unless `issuer`."""
    key = key or new_key("ec")
    cn = cn or f"certplane test CA {next(_serial)}"
    now = _now()
    subject = _name(cn)
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days_valid))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    cert = builder.sign(signing_key, _sign_hash(signing_key))
    return Issued(cert, key)


def make_leaf(
    issuer: Issued,
    cn: str | None = None,
    key=None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    signing_key=None,
) -> Issued:
    """An end-entity (device) certificate signed by `issuer` (or by `signing_key` if given,
    keeping `issuer`'s subject as issuer name — used to forge a bad signature)."""
    key = key or new_key("ec")
    cn = cn or f"device-{next(_serial)}"
    now = _now()
    signer = signing_key or issuer.key
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or (now - dt.timedelta(hours=1)))
        .not_valid_after(not_after or (now + dt.timedelta(days=90)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(signer, _sign_hash(signer))
    )
    return Issued(cert, key)


def make_verification_cert(ca: Issued, registration_code: str, signing_key=None) -> Issued:
    """The proof-of-possession certificate for RegisterCACertificate (DEFAULT mode):
    subject CN = registration code, signed by the CA's private key."""
    return make_leaf(ca, cn=registration_code, signing_key=signing_key)


def make_self_signed(cn: str | None = None, key=None) -> Issued:
    key = key or new_key("ec")
    cn = cn or f"self-signed-{next(_serial)}"
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_csr(key=None, cn: str = "certplane-test-device") -> tuple[str, object]:
    """A PEM CSR and its private key."""
    key = key or new_key("rsa", 2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(cn))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def make_csr_with_broken_signature() -> str:
    """A syntactically valid RSA-2048 CSR whose signature does not verify."""
    key = new_key("rsa", 2048)
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name("broken")).sign(
        key, hashes.SHA256()
    )
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    # The DER ends with the signature BIT STRING; flip bits in its last byte.
    der[-1] ^= 0xFF
    der[-2] ^= 0x5A
    bad = x509.load_der_x509_csr(bytes(der))
    assert not bad.is_signature_valid, "test bug: signature still valid"
    return bad.public_bytes(serialization.Encoding.PEM).decode()


def load_pem(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def cert_id_of(pem: str) -> str:
    der = load_pem(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def public_der(key_or_cert) -> bytes:
    pub = key_or_cert.public_key() if hasattr(key_or_cert, "public_key") else key_or_cert
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
