"""SDK clients, fake DNS / web servers and assertions for the certplane Alibaba Cloud CAS
(2020-04-07) SDK tests (the server process and the helpers both suites share are in
`tests/sdk/certplane_server.py`).

What the Alibaba dialect adds to the certplane contract these helpers rely on:

* `certplane serve ... [--dns-resolver HOST:PORT] [--validation-http-port PORT]
  [--validation always-valid] [--validation-timeout SECONDS]` (the server's `extra_args`).
* `--dev`: any well-formed signature passes; the Alibaba uid is the AccessKeyId when it is a
  16-digit number, else 1000000000000000.
* `certplane admin account create --aliyun-uid UID`, `admin access-key create --account UID --json`,
  `admin cas package add --account UID --product-code CODE --count N`,
  `admin cert show <sha256-hex> --json`, all with `--data-dir DIR`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import http.server
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest

from alibabacloud_cas20200407 import models as cas_models
from alibabacloud_cas20200407.client import Client as CasClient
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
from certplane_server import bypass_proxies_for_localhost, find_key, free_port, http_request, require

VERSION = "2020-04-07"
ACCOUNT_A = "1234567890123456"
ACCOUNT_B = "6543210987654321"
DEFAULT_DEV_ACCOUNT = "1000000000000000"
FREE = "digicert-free-1-free"
SYMANTEC_FREE = "symantec-free-1-free"
DEFAULT_PRODUCT_CODE = "digicert-free-1-free"  # the SDK-documented default ProductCode
REQUEST_ID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")

# Documented codes (CAS "Error codes" tables of the order operations; HTTP status as documented).
NOT_FOUND_ORDER = ("NotFoundOrder", 404)
ORDER_STATE_ERROR = ("OrderStateError", 403)
NOT_REMAIN_COUNT = ("NotRemainCount", 404)
NOT_FOUND_PACKAGE = ("NotFoundPackage", 404)


def isolate_environment() -> None:
    """Keep the developer's Alibaba Cloud credentials, profiles and proxies out of the tests."""
    for var in list(os.environ):
        if var.startswith("ALIBABA_CLOUD_") or var.startswith("ALICLOUD_"):
            os.environ.pop(var, None)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    bypass_proxies_for_localhost()


# --------------------------------------------------------------------------------------------
# Server process


class CertplaneServer(certplane_server.CertplaneServer):
    """The shared server process plus the CAS admin commands the tests use."""

    def add_package(self, account: str = ACCOUNT_A, product_code: str = FREE, count: int = 5):
        return self.admin("cas", "package", "add", "--account", account,
                          "--product-code", product_code, "--count", str(count))

    def cert_status(self, cert_pem: str) -> str:
        cert_id = hashlib.sha256(leaf_der(cert_pem)).hexdigest()
        doc = self.admin_json("cert", "show", cert_id, "--json")
        status = find_key(doc, "status")
        assert status is not None, f"no status in `admin cert show` output: {doc!r}"
        return status

    def create_access_key(self, uid: str) -> tuple[str, str]:
        self.admin("account", "create", "--aliyun-uid", uid)
        doc = self.admin_json("access-key", "create", "--account", uid, "--json")
        key_id = find_key(doc, "AccessKeyId")
        secret = find_key(doc, "SecretAccessKey")
        assert key_id and secret, f"unexpected access-key create output: {doc!r}"
        return key_id, secret


def validation_args(dns: "FakeDns", web: "FakeWeb") -> list[str]:
    """`serve` arguments that make the server validate through the fake DNS and web servers."""
    return ["--dns-resolver", dns.address, "--validation-http-port", str(web.port)]


# --------------------------------------------------------------------------------------------
# The official SDK


def cas_client(server_or_url, access_key: str = ACCOUNT_A, secret: str = "dev-secret",
               signing: str = "v3") -> CasClient:
    """alibabacloud_cas20200407 Client pointed at certplane. signing: "v3" (the SDK's default,
    ACS3-HMAC-SHA256) or "v1" (Config.signature_algorithm = "v2": HMAC-SHA1 RPC query signing)."""
    url = server_or_url.url if isinstance(server_or_url, certplane_server.CertplaneServer) else server_or_url
    endpoint = urllib.parse.urlsplit(url).netloc
    cfg = openapi_models.Config(
        access_key_id=access_key, access_key_secret=secret, endpoint=endpoint,
        protocol="http", region_id="cn-hangzhou", read_timeout=60000, connect_timeout=10000,
    )
    if signing == "v1":
        cfg.signature_algorithm = "v2"
    else:
        assert signing == "v3", signing
    return CasClient(cfg)


M = cas_models


def call_action(client: CasClient, action: str, query: dict | None = None, version: str = VERSION):
    """An arbitrary RPC action through the SDK's generic call_api (as the generated methods do)."""
    params = openapi_util_models.Params(
        action=action, version=version, protocol="HTTPS", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    req = openapi_util_models.OpenApiRequest(query={k: str(v) for k, v in (query or {}).items()})
    return client.call_api(params, req, RuntimeOptions())


def _describe_exc(e: BaseException) -> str:
    return (f"{type(e).__name__}: code={getattr(e, 'code', None)!r} "
            f"status={getattr(e, 'status_code', None)!r} message={getattr(e, 'message', e)!r} "
            f"data={getattr(e, 'data', None)!r}")


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
    def data(self):
        return getattr(self.exc, "data", None) or {}


@contextlib.contextmanager
def expect_error(codes, status=None):
    """The SDK call inside must raise an Alibaba error whose `e.code` is `codes` (a string, a
    collection, or None for any non-empty code) and whose HTTP status is `status` (an int, a collection, or None for any 4xx).
    The error must be a ClientException (never ServerException: the SDK reports 5xx as server
    faults) and carry a Message and a RequestId in a JSON body."""
    caught = CaughtError()
    try:
        yield caught
    except AlibabaCloudException as e:
        caught.exc = e
    except Exception as e:  # UnretryableException (non-JSON body), connection errors, ...
        pytest.fail(f"expected an Alibaba error {codes}, got {_describe_exc(e)}", pytrace=False)
    else:
        pytest.fail(f"expected an Alibaba error {codes}, but the call succeeded", pytrace=False)
    e = caught.exc
    if codes is None:  # any documented-looking code
        assert isinstance(e.code, str) and e.code and e.code != "None", \
            f"expected an error code, got {_describe_exc(e)}"
    else:
        want = {codes} if isinstance(codes, str) else set(codes)
        assert e.code in want, f"expected code in {sorted(want)}, got {_describe_exc(e)}"
    if status is None:
        assert isinstance(e.status_code, int) and 400 <= e.status_code < 500, \
            f"expected a 4xx status, got {_describe_exc(e)}"
    else:
        want_status = {status} if isinstance(status, int) else set(status)
        assert e.status_code in want_status, \
            f"{e.code}: expected HTTP {sorted(want_status)}, got {_describe_exc(e)}"
    if 400 <= (e.status_code or 0) < 500:
        assert isinstance(e, ClientException), f"4xx not raised as ClientException: {_describe_exc(e)}"
    assert not isinstance(e, ServerException), f"server fault for a client mistake: {_describe_exc(e)}"
    data = e.data or {}
    assert data.get("Message"), f"{e.code}: error body without Message: {data!r}"
    assert data.get("RequestId"), f"{e.code}: error body without RequestId: {data!r}"


def expect_documented(pair):
    code, status = pair
    return expect_error(code, status)


def invalid_codes(name: str) -> set[str]:
    """Codes the gateway documents for a malformed value of parameter `name`."""
    return {"InvalidParameter", f"Invalid{name}", f"InvalidParameter.{name}",
            f"Invalid{name}.Malformed", f"Invalid{name}.Format", f"Invalid{name}.ValueNotSupported"}


def missing_codes(name: str) -> set[str]:
    return {"MissingParameter", f"Missing{name}", f"MissingParameter.{name}"}


# --------------------------------------------------------------------------------------------
# High-level CAS helpers


def package_state(client, product_code: str | None = FREE) -> tuple[int, int, int]:
    body = client.describe_package_state(M.DescribePackageStateRequest(product_code=product_code)).body
    for name in ("total_count", "used_count", "issued_count"):
        v = getattr(body, name)
        assert isinstance(v, int) and not isinstance(v, bool), \
            f"DescribePackageState {name} must be a JSON integer, got {v!r}"
    return body.total_count, body.used_count, body.issued_count


def create_order(client, domain: str | None, validate_type: str = "DNS", csr: str | None = None,
                 product_code: str = FREE, **kw) -> int:
    resp = client.create_certificate_for_package_request(M.CreateCertificateForPackageRequestRequest(
        product_code=product_code, domain=domain, csr=csr, validate_type=validate_type,
        username=kw.pop("username", "Test User"), phone=kw.pop("phone", "13800000000"),
        email=kw.pop("email", "pki@example.com"), **kw))
    return check_order_id(resp.body.order_id)


def check_order_id(order_id) -> int:
    assert isinstance(order_id, int) and not isinstance(order_id, bool) and order_id > 0, \
        f"OrderId must be a positive JSON integer, got {order_id!r}"
    return order_id


def describe(client, order_id):
    return client.describe_certificate_state(M.DescribeCertificateStateRequest(order_id=order_id)).body


def wait_type(client, order_id, want: str | set, timeout: float = 20.0, interval: float = 0.25):
    """Poll DescribeCertificateState until Type is `want`; returns the first body showing it."""
    want_set = {want} if isinstance(want, str) else set(want)
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        body = describe(client, order_id)
        if body.type in want_set:
            return body
        if not seen or seen[-1] != body.type:
            seen.append(body.type)
        if time.monotonic() > deadline:
            pytest.fail(f"order {order_id}: Type never became {sorted(want_set)} within {timeout}s "
                        f"(saw {seen})", pytrace=False)
        time.sleep(interval)


def stays_type(client, order_id, want: str, seconds: float = 2.5, interval: float = 0.3):
    """DescribeCertificateState keeps answering Type `want` for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = describe(client, order_id)
        assert body.type == want, f"order {order_id}: expected Type to stay {want}, got {body.type}"
        time.sleep(interval)
    return body


def publish_proof(body, dns: "FakeDns", web: "FakeWeb") -> None:
    """Publish what DescribeCertificateState asks for (DNS TXT record or file)."""
    assert body.type == "domain_verify", f"not waiting for validation: {body.type}"
    if body.validate_type == "FILE" or (body.uri and body.content and not body.record_value):
        web.publish(body.domain, body.uri, body.content)
    else:
        assert body.record_type == "TXT", f"RecordType {body.record_type!r}"
        dns.set_txt(body.record_domain, body.record_value)


def issue(client, dns, web, domain: str, validate_type: str = "DNS", csr: str | None = None,
          product_code: str = FREE, timeout: float = 20.0):
    """Create an order, publish its proof, wait for `certificate`. Returns (order_id, body)."""
    order_id = create_order(client, domain, validate_type=validate_type, csr=csr,
                            product_code=product_code)
    body = wait_type(client, order_id, "domain_verify", timeout=5)
    publish_proof(body, dns, web)
    return order_id, wait_type(client, order_id, "certificate", timeout=timeout)


def list_orders(client, **kw):
    return client.list_user_certificate_order(M.ListUserCertificateOrderRequest(**kw)).body


def all_order_ids(client, **kw) -> set[int]:
    ids, page = set(), 1
    while True:
        body = list_orders(client, current_page=page, show_size=50, **kw)
        items = body.certificate_order_list or []
        ids.update(i.order_id for i in items)
        if len(items) < 50:
            return ids
        page += 1


_domain_counter = iter(range(1, 1_000_000))


def unique_domain(prefix: str = "www") -> str:
    return f"{prefix}.t{next(_domain_counter)}-{uuid.uuid4().hex[:8]}.example.com"


# --------------------------------------------------------------------------------------------
# Certificates


def pem_certs(pem: str) -> list:
    from cryptography import x509
    return x509.load_pem_x509_certificates(pem.encode())


def leaf_der(pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return pem_certs(pem)[0].public_bytes(serialization.Encoding.DER)


def openssl_verify(ca_pem_path, cert_pem: str, tmp_path, at: dt.datetime | None = None):
    openssl = shutil.which("openssl")
    require(openssl is not None, "openssl binary not found")
    from cryptography.hazmat.primitives import serialization
    certs = pem_certs(cert_pem)
    leaf = tmp_path / f"leaf-{uuid.uuid4().hex[:6]}.pem"
    leaf.write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    cmd = [openssl, "verify", "-CAfile", str(ca_pem_path)]
    if len(certs) > 1:
        chain = tmp_path / f"chain-{uuid.uuid4().hex[:6]}.pem"
        chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:]))
        cmd += ["-untrusted", str(chain)]
    if at is not None:
        cmd += ["-attime", str(int(at.timestamp()) + 1)]
    cmd.append(str(leaf))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


# --------------------------------------------------------------------------------------------
# Raw signed requests (independent of the SDK): for replay, clock skew and wire checks


_enc = rpc_signing.enc
_utc_stamp = rpc_signing.utc_stamp
RawResponse = rpc_signing.RawResponse


def v1_signed_params(action: str, params: dict, access_key: str, secret: str,
                     timestamp: str | None = None, nonce: str | None = None,
                     method: str = "POST") -> dict:
    return rpc_signing.v1_signed_params(VERSION, action, params, access_key, secret,
                                        timestamp, nonce, method)


def v1_request(url: str, action: str, params: dict | None = None, access_key: str = ACCOUNT_A,
               secret: str = "dev-secret", timestamp: str | None = None, nonce: str | None = None,
               signed: dict | None = None) -> RawResponse:
    """POST /?<v1-signed query>. `signed` re-sends an already signed parameter set (replay)."""
    p = signed or v1_signed_params(action, params or {}, access_key, secret, timestamp, nonce)
    return rpc_signing.send_v1(url, p)


def v3_signed(url: str, action: str, params: dict, access_key: str, secret: str,
              date: str | None = None, nonce: str | None = None) -> tuple[str, dict]:
    return rpc_signing.v3_signed(VERSION, url, action, params, access_key, secret, date, nonce)


def v3_request(url: str, action: str, params: dict | None = None, access_key: str = ACCOUNT_A,
               secret: str = "dev-secret", date: str | None = None, nonce: str | None = None,
               signed: tuple[str, dict] | None = None) -> RawResponse:
    return rpc_signing.send_v3(
        url, signed or v3_signed(url, action, params or {}, access_key, secret, date, nonce))


def assert_raw_error(resp: RawResponse, code, status: int | None = None):
    try:
        doc = resp.json()
    except ValueError:
        pytest.fail(f"error body is not JSON (HTTP {resp.status}): {resp.body[:300]!r}", pytrace=False)
    want = {code} if isinstance(code, str) else set(code)
    assert doc.get("Code") in want, f"expected Code in {sorted(want)}, got HTTP {resp.status} {doc!r}"
    if status is not None:
        assert resp.status == status, f"{doc.get('Code')}: expected HTTP {status}, got {resp.status}"
    else:
        assert 400 <= resp.status < 500, f"expected 4xx, got {resp.status} {doc!r}"
    assert doc.get("Message") and doc.get("RequestId"), f"incomplete error body: {doc!r}"
    return doc


# --------------------------------------------------------------------------------------------
# Fake DNS server (dnslib): TXT records we publish, A -> 127.0.0.1 for every name


class FakeDns:
    def __init__(self):
        from dnslib.server import BaseResolver, DNSLogger, DNSServer

        self.txt: dict[str, list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Resolver(BaseResolver):
            def resolve(self, request, handler):
                return outer._resolve(request)

        def quiet():
            return DNSLogger(logf=lambda *_: None)

        for _ in range(50):
            port = free_port()
            try:
                self.udp = DNSServer(Resolver(), port=port, address="127.0.0.1", logger=quiet())
                self.tcp = DNSServer(Resolver(), port=port, address="127.0.0.1", tcp=True,
                                     logger=quiet())
                break
            except OSError:
                continue
        else:  # pragma: no cover
            raise RuntimeError("no free port for the fake DNS server")
        self.port = port
        self.udp.start_thread()
        self.tcp.start_thread()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _resolve(self, request):
        from dnslib import QTYPE, RR, TXT, A
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        with self.lock:
            self.queries.append((qname, qtype))
            values = list(self.txt.get(qname, []))
        if qtype in ("TXT", "ANY"):
            for v in values:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, ttl=1, rdata=TXT(v)))
        if qtype in ("A", "ANY"):
            reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=1, rdata=A("127.0.0.1")))
        return reply

    def set_txt(self, name: str, *values: str) -> None:
        with self.lock:
            self.txt[name.rstrip(".").lower()] = list(values)

    def clear(self) -> None:
        with self.lock:
            self.txt.clear()
            self.queries.clear()

    def queried(self, name: str, qtype: str = "TXT") -> bool:
        with self.lock:
            return (name.rstrip(".").lower(), qtype) in self.queries

    def stop(self) -> None:
        self.udp.stop()
        self.tcp.stop()


# --------------------------------------------------------------------------------------------
# Fake web server for FILE validation: (host, path) -> content


class FakeWeb:
    def __init__(self):
        self.files: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
                path = self.path.split("?", 1)[0]
                with outer.lock:
                    outer.requests.append((host, path))
                    content = outer.files.get((host, path))
                body = (content if content is not None else "not found").encode()
                self.send_response(200 if content is not None else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, host: str, path: str, content: str) -> None:
        with self.lock:
            self.files[(host.lower(), path)] = content

    def clear(self) -> None:
        with self.lock:
            self.files.clear()
            self.requests.clear()

    def fetched(self, host: str, path: str) -> bool:
        with self.lock:
            return (host.lower(), path) in self.requests

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
