"""Fixtures and helpers for the certplane ApsaraMQ for MQTT (OnsMqtt 2020-04-20) SDK tests: the
official Python SDK (`alibabacloud_onsmqtt20200420`) against the real certplane binary.

Run from the repository root:

    CERTPLANE_BIN=target/release/certplane python -m pytest tests/sdk/mqtt -q -k onsmqtt

The test modules import the fixtures from here (`from onsmqtt_harness import *`); this file is
not a conftest. One `--dev` server is shared by the whole session (every module that imports
`dev_server` gets the same process); the `server` fixture resets it (`POST /moto-api/reset`)
before each test. MQTT instances survive a reset, like accounts, so they are made once per
session with `certplane admin mqtt-instance create`.

What the OnsMqtt dialect adds to the certplane contract these helpers rely on:

* `certplane admin mqtt-instance create --account UID --instance-id ID [--region R]
  [--edition platinum|professional|basic] [--json]`, `list [--json]`, `delete --instance-id ID`,
  all with `--data-dir DIR`, while the server runs.
* `--dev`: any well-formed signature passes; the Alibaba uid is the AccessKeyId when it is a
  16-digit number.
* Device certificates are registered when a device first connects through the device gateway,
  or ahead of time with `certplane admin mqtt-instance register-device --instance-id ID
  --cert FILE [--json]` when the binary has that command (`register_device` skips otherwise).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import subprocess
import urllib.parse
import uuid
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from alibabacloud_onsmqtt20200420 import models as M
from alibabacloud_onsmqtt20200420.client import Client as MqttClient
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_openapi import utils_models as openapi_util_models
from alibabacloud_tea_openapi.exceptions import (
    AlibabaCloudException,
    ClientException,
    ServerException,
)
from alibabacloud_tea_util.models import RuntimeOptions

import certplane_server
import rpc_signing
from certplane_server import bypass_proxies_for_localhost, find_key, http_request

__all__ = [
    # constants
    "VERSION", "ACCOUNT_A", "ACCOUNT_B", "INSTANCE_A", "INSTANCE_A2", "INSTANCE_B",
    "INSTANCE_PRO", "INSTANCE_BASIC", "UNKNOWN_INSTANCE", "REQUEST_ID_RE", "PARAM_MESSAGE",
    "M",
    # fixtures
    "dev_server", "server", "signing", "mqtt", "mqtt_b",
    # helpers
    "OnsMqttServer", "mqtt_client", "call_action", "expect_error", "CaughtError",
    "Ca", "make_ca", "make_cert", "verification_for", "pem_of", "sn_of", "der_sn", "ms",
    "register_code", "register_ca", "register_device", "device_registration_supported",
    "get_ca", "list_cas", "all_cas", "get_device", "list_devices", "list_devices_by_ca",
    "ACTION_CALLS", "make_session_instances", "v1_signed_params", "v1_request", "v3_signed", "v3_request",
    "assert_raw_error", "RawResponse", "check_request_id", "same_sn",
]

VERSION = "2020-04-20"
ACCOUNT_A = "1234567890123456"
ACCOUNT_B = "6543210987654321"

# The session's instances (made once: they survive /moto-api/reset).
INSTANCE_A = "post-cn-certplane-a1"       # platinum, account A
INSTANCE_A2 = "post-cn-certplane-a2"      # platinum, account A (isolation between instances)
INSTANCE_B = "post-cn-certplane-b1"       # platinum, account B
INSTANCE_PRO = "mqtt-cn-certplane-pro"    # professional, account A
INSTANCE_BASIC = "mqtt-cn-certplane-basic"  # basic, account A
UNKNOWN_INSTANCE = "post-cn-nosuchinstance"

REQUEST_ID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
PARAM_MESSAGE = "Failed to validate the parameters. The parameters may be missing or invalid."


def isolate_environment() -> None:
    """Keep the developer's Alibaba Cloud credentials, profiles and proxies out of the tests."""
    for var in list(os.environ):
        if var.startswith("ALIBABA_CLOUD_") or var.startswith("ALICLOUD_"):
            os.environ.pop(var, None)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    bypass_proxies_for_localhost()


isolate_environment()


# --------------------------------------------------------------------------------------------
# Server process


class OnsMqttServer(certplane_server.CertplaneServer):
    """The server process plus the MQTT admin commands the tests use."""

    _register_device: bool | None = None

    def create_instance(self, account: str, instance_id: str, edition: str = "platinum",
                        region: str = "cn-hangzhou") -> dict:
        return self.admin_json("mqtt-instance", "create", "--account", account,
                               "--instance-id", instance_id, "--region", region,
                               "--edition", edition, "--json")

    def instances(self) -> list:
        return self.admin_json("mqtt-instance", "list", "--json")

    def create_access_key(self, uid: str) -> tuple[str, str]:
        self.admin("account", "create", "--aliyun-uid", uid)
        doc = self.admin_json("access-key", "create", "--account", uid, "--json")
        key_id = find_key(doc, "AccessKeyId")
        secret = find_key(doc, "SecretAccessKey")
        assert key_id and secret, f"unexpected access-key create output: {doc!r}"
        return key_id, secret

    def has_register_device(self) -> bool:
        """Whether this binary has `admin mqtt-instance register-device` (asked once)."""
        if self._register_device is None:
            res = self.admin("mqtt-instance", "--help", expect_ok=False)
            self._register_device = "register-device" in (res.stdout + res.stderr)
        return self._register_device


def make_session_instances(srv: OnsMqttServer) -> None:
    srv.create_instance(ACCOUNT_A, INSTANCE_A)
    srv.create_instance(ACCOUNT_A, INSTANCE_A2)
    srv.create_instance(ACCOUNT_B, INSTANCE_B)
    srv.create_instance(ACCOUNT_A, INSTANCE_PRO, edition="professional")
    srv.create_instance(ACCOUNT_A, INSTANCE_BASIC, edition="basic")


_shared: dict = {}


@pytest.fixture(scope="session")
def dev_server(binary, tmp_path_factory, request):
    """One --dev server for the whole session (shared by every module importing this fixture),
    with the session's MQTT instances."""
    srv = _shared.get("dev")
    if srv is None:
        srv = OnsMqttServer(binary, tmp_path_factory.mktemp("onsmqtt-dev") / "data", dev=True)
        try:
            srv.start()
        except BaseException:
            # The binary may be rebuilt under us by another engineer: retry once.
            srv.start()
        make_session_instances(srv)
        _shared["dev"] = srv
        request.addfinalizer(srv.stop)
    return srv


@pytest.fixture
def server(dev_server):
    """The shared dev server, reset to an empty state (the instances stay)."""
    if not dev_server.alive():
        dev_server.restart_if_dead()
    dev_server.reset()
    return dev_server


@pytest.fixture(params=["v3", "v1"])
def signing(request):
    """Both request styles of the SDK: default ACS3-HMAC-SHA256, and v1 (signature_algorithm v2)."""
    return request.param


@pytest.fixture
def mqtt(server):
    """SDK client (v3 signing) for dev account A."""
    return mqtt_client(server, ACCOUNT_A)


@pytest.fixture
def mqtt_b(server):
    """SDK client for dev account B."""
    return mqtt_client(server, ACCOUNT_B)


# --------------------------------------------------------------------------------------------
# The official SDK


def mqtt_client(server_or_url, access_key: str = ACCOUNT_A, secret: str = "dev-secret",
                signing: str = "v3") -> MqttClient:
    """alibabacloud_onsmqtt20200420 Client pointed at certplane. signing: "v3" (the SDK default,
    ACS3-HMAC-SHA256) or "v1" (Config.signature_algorithm = "v2": HMAC-SHA1 RPC signing)."""
    url = server_or_url.url if isinstance(server_or_url, certplane_server.CertplaneServer) else server_or_url
    endpoint = urllib.parse.urlsplit(url).netloc
    cfg = openapi_models.Config(
        access_key_id=access_key, access_key_secret=secret, endpoint=endpoint,
        protocol="http", region_id="cn-hangzhou", read_timeout=30000, connect_timeout=10000,
    )
    if signing == "v1":
        cfg.signature_algorithm = "v2"
    else:
        assert signing == "v3", signing
    return MqttClient(cfg)


def call_action(client: MqttClient, action: str, query: dict | None = None,
                version: str = VERSION, method: str = "POST"):
    """An arbitrary RPC action through the SDK's generic call_api (as the generated methods do)."""
    params = openapi_util_models.Params(
        action=action, version=version, protocol="HTTPS", pathname="/", method=method,
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    req = openapi_util_models.OpenApiRequest(query={k: str(v) for k, v in (query or {}).items()})
    return client.call_api(params, req, RuntimeOptions())


def check_request_id(body) -> None:
    """`body` is an SDK response body model or a dict."""
    rid = body.get("RequestId") if isinstance(body, dict) else body.request_id
    assert isinstance(rid, str) and REQUEST_ID_RE.match(rid), f"RequestId {rid!r} is not an upper-case UUID"


def _describe_exc(e: BaseException) -> str:
    return (f"{type(e).__name__}: code={getattr(e, 'code', None)!r} "
            f"status={getattr(e, 'status_code', None)!r} data={getattr(e, 'data', None)!r}")


@dataclass
class CaughtError:
    exc: BaseException | None = None

    @property
    def code(self):
        return getattr(self.exc, "code", None)

    @property
    def status(self):
        return getattr(self.exc, "status_code", None)

    @property
    def data(self) -> dict:
        return getattr(self.exc, "data", None) or {}

    @property
    def message(self) -> str:
        return self.data.get("Message") or ""


@contextlib.contextmanager
def expect_error(code: str, status: int):
    """The SDK call inside must raise a ClientException with exactly `code` and HTTP `status`, and
    a JSON body carrying a Message and an upper-case UUID RequestId. ParameterFieldCheckFailed's
    message must start with the documented sentence."""
    caught = CaughtError()
    try:
        yield caught
    except AlibabaCloudException as e:
        caught.exc = e
    except Exception as e:  # UnretryableException (non-JSON body), connection errors, ...
        pytest.fail(f"expected {code} (HTTP {status}), got {_describe_exc(e)}", pytrace=False)
    else:
        pytest.fail(f"expected {code} (HTTP {status}), but the call succeeded", pytrace=False)
    e = caught.exc
    assert (e.code, e.status_code) == (code, status), \
        f"expected {code} (HTTP {status}), got {_describe_exc(e)}"
    assert isinstance(e, ClientException), f"4xx not raised as ClientException: {_describe_exc(e)}"
    assert not isinstance(e, ServerException), _describe_exc(e)
    data = caught.data
    assert data.get("Message"), f"{code}: error body without Message: {data!r}"
    check_request_id(data)
    if code == "ParameterFieldCheckFailed":
        assert data["Message"].startswith(PARAM_MESSAGE), f"message {data['Message']!r}"


# --------------------------------------------------------------------------------------------
# Certificates


def _name(cn: str | None, org: str | None = None) -> x509.Name:
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key(kind: str = "ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass
class Ca:
    cert: x509.Certificate
    key: object
    extra: dict = field(default_factory=dict)

    @property
    def pem(self) -> str:
        return pem_of(self.cert)

    @property
    def sn(self) -> str:
        return sn_of(self.cert)


def pem_of(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def der_sn(serial: int) -> str:
    """Lower-case hex of the DER INTEGER content octets of a positive serial (a leading 00
    byte when the high bit is set)."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big").hex()


def sn_of(cert: x509.Certificate) -> str:
    return der_sn(cert.serial_number)


def same_sn(a: str, b: str) -> bool:
    return a.lower().lstrip("0") == b.lower().lstrip("0")


def ms(t: dt.datetime) -> str:
    """Epoch milliseconds as a string (ValidBegin / ValidEnd)."""
    return str(int(t.timestamp()) * 1000)


def make_ca(cn: str = "certplane test CA", key_type: str = "ec", serial: int | None = None,
            ca: bool | None = True, days: int = 365, issuer: Ca | None = None,
            org: str | None = "certplane tests") -> Ca:
    """A CA certificate: self-signed, or signed by `issuer` (an intermediate). ca=False marks it
    basicConstraints CA:FALSE, ca=None leaves basicConstraints out."""
    key = _key(key_type)
    now = _now()
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn, org))
         .issuer_name(issuer.cert.subject if issuer else _name(cn, org))
         .public_key(key.public_key())
         .serial_number(serial if serial is not None else x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(hours=1))
         .not_valid_after(now + dt.timedelta(days=days)))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    cert = b.sign(issuer.key if issuer else key, hashes.SHA256())
    return Ca(cert, key)


def make_cert(issuer: Ca, cn: str | None, serial: int | None = None, key_type: str = "ec",
              days: int = 30, signer_key=None, not_before: dt.datetime | None = None):
    """An end-entity certificate signed by `issuer` (or by `signer_key` instead of the issuer's
    key, naming the issuer anyway). Returns (cert, key)."""
    key = _key(key_type)
    start = not_before or (_now() - dt.timedelta(minutes=5))
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial if serial is not None else x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(signer_key or issuer.key, hashes.SHA256()))
    return cert, key


def verification_for(ca: Ca, code: str | None, signer_key=None) -> str:
    """The proof-of-possession certificate: CN = the register code, signed by the CA's key."""
    cert, _ = make_cert(ca, code, signer_key=signer_key)
    return pem_of(cert)


# --------------------------------------------------------------------------------------------
# High-level OnsMqtt helpers


def register_code(client, instance: str = INSTANCE_A) -> str:
    body = client.get_register_code(M.GetRegisterCodeRequest(mqtt_instance_id=instance)).body
    check_request_id(body)
    assert isinstance(body.register_code, str) and body.register_code, body.to_map()
    return body.register_code


def register_ca(client, instance: str = INSTANCE_A, name: str = "mqtt_ca",
                ca: Ca | None = None) -> Ca:
    """GetRegisterCode, then RegisterCaCertificate with a proof for that code. Returns the CA,
    with `extra["code"]` and `extra["sn"]` (what the server answered)."""
    ca = ca or make_ca()
    code = register_code(client, instance)
    body = client.register_ca_certificate(M.RegisterCaCertificateRequest(
        mqtt_instance_id=instance, ca_name=name, ca_content=ca.pem,
        verification_content=verification_for(ca, code))).body
    check_request_id(body)
    ca.extra.update(code=code, sn=body.sn, name=name)
    return ca


def get_ca(client, sn: str, instance: str = INSTANCE_A):
    body = client.get_ca_certificate(M.GetCaCertificateRequest(mqtt_instance_id=instance, sn=sn)).body
    check_request_id(body)
    return body.data


def list_cas(client, page_no="1", page_size="100", instance: str = INSTANCE_A):
    body = client.list_ca_certificate(M.ListCaCertificateRequest(
        mqtt_instance_id=instance, page_no=page_no, page_size=page_size)).body
    check_request_id(body)
    return body.data


def all_cas(client, instance: str = INSTANCE_A) -> list:
    return list(list_cas(client, instance=instance).ca_certificate_vos or [])


def get_device(client, ca_sn: str, device_sn: str, instance: str = INSTANCE_A):
    body = client.get_device_certificate(M.GetDeviceCertificateRequest(
        mqtt_instance_id=instance, ca_sn=ca_sn, device_sn=device_sn)).body
    check_request_id(body)
    return body.data


def list_devices(client, page_no="1", page_size="100", instance: str = INSTANCE_A):
    body = client.list_device_certificate(M.ListDeviceCertificateRequest(
        mqtt_instance_id=instance, page_no=page_no, page_size=page_size)).body
    check_request_id(body)
    return body.data


def list_devices_by_ca(client, ca_sn: str, page_no="1", page_size="100",
                       instance: str = INSTANCE_A):
    body = client.list_device_certificate_by_ca_sn(M.ListDeviceCertificateByCaSnRequest(
        mqtt_instance_id=instance, ca_sn=ca_sn, page_no=page_no, page_size=page_size)).body
    check_request_id(body)
    return body.data


def device_registration_supported(server: OnsMqttServer) -> bool:
    return server.has_register_device()


def register_device(server: OnsMqttServer, instance: str, pem: str, expect_ok: bool = True):
    """Registers a device certificate as its first connection through the device gateway would.
    Uses `certplane admin mqtt-instance register-device` when the binary has it; skips the test
    otherwise ("needs the device gateway"). Returns the CompletedProcess."""
    if not server.has_register_device():
        pytest.skip("needs the device gateway (no `admin mqtt-instance register-device` in this binary)")
    path = server.data_dir.parent / f"device-{uuid.uuid4().hex[:10]}.pem"
    path.write_text(pem)
    res = server.admin("mqtt-instance", "register-device", "--instance-id", instance,
                       "--cert", str(path), "--json", expect_ok=expect_ok)
    return res


# Every action with valid-looking parameters besides the instance: for instance-level errors.
_SN = "0a1b2c3d4e5f"
ACTION_CALLS = {
    "GetRegisterCode": lambda c, i: c.get_register_code(M.GetRegisterCodeRequest(mqtt_instance_id=i)),
    "RegisterCaCertificate": lambda c, i: c.register_ca_certificate(M.RegisterCaCertificateRequest(
        mqtt_instance_id=i, ca_name="ca", ca_content=_placeholder_ca().pem,
        verification_content=verification_for(_placeholder_ca(), "not-the-code"))),
    "GetCaCertificate": lambda c, i: c.get_ca_certificate(M.GetCaCertificateRequest(mqtt_instance_id=i, sn=_SN)),
    "ListCaCertificate": lambda c, i: c.list_ca_certificate(M.ListCaCertificateRequest(
        mqtt_instance_id=i, page_no="1", page_size="10")),
    "ActiveCaCertificate": lambda c, i: c.active_ca_certificate(M.ActiveCaCertificateRequest(mqtt_instance_id=i, sn=_SN)),
    "InactivateCaCertificate": lambda c, i: c.inactivate_ca_certificate(
        M.InactivateCaCertificateRequest(mqtt_instance_id=i, sn=_SN)),
    "DeleteCaCertificate": lambda c, i: c.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=i, sn=_SN)),
    "GetDeviceCertificate": lambda c, i: c.get_device_certificate(M.GetDeviceCertificateRequest(
        mqtt_instance_id=i, ca_sn=_SN, device_sn=_SN)),
    "ListDeviceCertificate": lambda c, i: c.list_device_certificate(M.ListDeviceCertificateRequest(
        mqtt_instance_id=i, page_no="1", page_size="10")),
    "ListDeviceCertificateByCaSn": lambda c, i: c.list_device_certificate_by_ca_sn(
        M.ListDeviceCertificateByCaSnRequest(mqtt_instance_id=i, ca_sn=_SN, page_no="1", page_size="10")),
    "ActiveDeviceCertificate": lambda c, i: c.active_device_certificate(M.ActiveDeviceCertificateRequest(
        mqtt_instance_id=i, ca_sn=_SN, device_sn=_SN)),
    "InactivateDeviceCertificate": lambda c, i: c.inactivate_device_certificate(
        M.InactivateDeviceCertificateRequest(mqtt_instance_id=i, ca_sn=_SN, device_sn=_SN)),
    "DeleteDeviceCertificate": lambda c, i: c.delete_device_certificate(M.DeleteDeviceCertificateRequest(
        mqtt_instance_id=i, ca_sn=_SN, device_sn=_SN)),
}

_placeholder: list = []


def _placeholder_ca() -> Ca:
    if not _placeholder:
        _placeholder.append(make_ca("placeholder CA"))
    return _placeholder[0]


# --------------------------------------------------------------------------------------------
# Raw signed requests (independent of the SDK): replay and wire checks


_enc = rpc_signing.enc
_utc_stamp = rpc_signing.utc_stamp
RawResponse = rpc_signing.RawResponse


def v1_signed_params(action: str, params: dict, access_key: str, secret: str,
                     nonce: str | None = None, method: str = "POST") -> dict:
    return rpc_signing.v1_signed_params(VERSION, action, params, access_key, secret,
                                        nonce=nonce, method=method)


def v1_request(url: str, signed: dict) -> RawResponse:
    return rpc_signing.send_v1(url, signed)


def v3_signed(url: str, action: str, params: dict, access_key: str, secret: str,
              nonce: str | None = None) -> tuple[str, dict]:
    return rpc_signing.v3_signed(VERSION, url, action, params, access_key, secret, nonce=nonce)


def v3_request(url: str, signed: tuple[str, dict]) -> RawResponse:
    return rpc_signing.send_v3(url, signed)


def assert_raw_error(resp: RawResponse, code: str, status: int) -> dict:
    try:
        doc = resp.json()
    except ValueError:
        pytest.fail(f"error body is not JSON (HTTP {resp.status}): {resp.body[:300]!r}", pytrace=False)
    assert (doc.get("Code"), resp.status) == (code, status), \
        f"expected {code} (HTTP {status}), got HTTP {resp.status} {doc!r}"
    assert doc.get("Message"), doc
    check_request_id(doc)
    return doc
