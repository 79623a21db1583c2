"""Clients, raw signed HTTP and assertions for the certplane AWS IoT SDK tests (the server
process and the helpers both suites share are in `tests/sdk/certplane_server.py`).

What the AWS dialect adds to the certplane contract these helpers rely on:

* `--dev`: any well-formed SigV4 signature passes; the account is the access key id when it is
  exactly 12 digits, else header `x-moto-account-id`, else 123456789012.
* `certplane admin account create --aws-account-id ID`, `admin access-key create --account ID
  --json`, `admin cert list|show --json`, all with `--data-dir DIR`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import boto3
import botocore
import botocore.model
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import certplane_server
from certplane_server import bypass_proxies_for_localhost, http_request, require

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ACCOUNT_C = "333333333333"
DEFAULT_DEV_ACCOUNT = "123456789012"
REGION = "us-east-1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
MARKER_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")  # the model's Marker pattern


def isolate_environment() -> None:
    """Keep the developer's AWS config, profiles and proxies out of the tests."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IOT",
                "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_CA_BUNDLE"):
        os.environ.pop(var, None)
    os.environ["AWS_CONFIG_FILE"] = "/dev/null"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    bypass_proxies_for_localhost()


# --------------------------------------------------------------------------------------------
# HTTP


class RawResponse(certplane_server.RawResponse):
    @property
    def error_code(self) -> str | None:
        """Error code the way botocore's rest-json parser finds it (header first, then body)."""
        code = self.headers.get("x-amzn-errortype")
        if not code:
            try:
                doc = json.loads(self.body) if self.body else {}
            except ValueError:
                doc = {}
            if isinstance(doc, dict):
                code = doc.get("code") or doc.get("Code") or doc.get("__type")
        if not code:
            return None
        code = code.split(":")[0]
        return code.rsplit("#", 1)[-1]


def signed_request(base_url: str, method: str, path: str, body: bytes | str | None = None,
                   headers: dict | None = None, access_key: str = ACCOUNT_A, secret: str = "x",
                   region: str = REGION, session_token: str | None = None) -> RawResponse:
    """A request signed with botocore's SigV4 signer (an independent implementation)."""
    if isinstance(body, str):
        body = body.encode()
    req = AWSRequest(method=method, url=base_url + path, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(Credentials(access_key, secret, session_token), "iot", region).add_auth(req)
    prepared = req.prepare()
    split = urllib.parse.urlsplit(prepared.url)
    target = split.path + (f"?{split.query}" if split.query else "")
    status, hdrs, data = http_request(base_url, method, target, prepared.body or None,
                                      dict(prepared.headers.items()))
    return RawResponse(status, hdrs, data)


# --------------------------------------------------------------------------------------------
# boto3


def iot_client(url: str, access_key: str = ACCOUNT_A, secret: str = "x", region: str = REGION,
               session_token: str | None = None, validate: bool = True, extra_headers: dict | None = None):
    session = boto3.session.Session()
    client = session.client(
        "iot",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        aws_session_token=session_token,
        config=Config(
            retries={"max_attempts": 1},
            parameter_validation=validate,
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=64,
        ),
    )
    if extra_headers:
        def add_headers(request, **_):
            for k, v in extra_headers.items():
                request.headers[k] = v
        client.meta.events.register("before-sign.iot.*", add_headers)
    return client


def modeled_status(client, code: str) -> int | None:
    """The HTTP status the service model declares for error shape `code`."""
    try:
        shape = client.meta.service_model.shape_for(code)
    except botocore.model.NoShapeFoundError:
        return None
    return (shape.metadata.get("error") or {}).get("httpStatusCode")


@contextlib.contextmanager
def expect_error(client, code: str, status: int | None = None):
    """The call inside must raise the modeled exception `code` with its modeled HTTP status
    (or `status`) and a non-empty message."""
    with pytest.raises(ClientError) as ei:
        yield ei
    err = ei.value.response.get("Error", {})
    got = err.get("Code")
    http_status = ei.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert got == code, (f"expected {code}, got {got} (HTTP {http_status}): "
                         f"{err.get('Message')!r}")
    exc_cls = getattr(client.exceptions, code)
    assert isinstance(ei.value, exc_cls), f"{type(ei.value).__name__} is not {code}"
    want = status or modeled_status(client, code)
    if want is not None:
        assert http_status == want, f"{code}: expected HTTP {want}, got {http_status}"
    assert isinstance(err.get("Message"), str) and err.get("Message"), f"{code}: empty message"


@contextlib.contextmanager
def expect_4xx(codes: set[str] | tuple | None = None):
    """The call inside must fail with a client error (4xx); optionally one of `codes`."""
    with pytest.raises(ClientError) as ei:
        yield ei
    err = ei.value.response.get("Error", {})
    http_status = ei.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert http_status is not None and 400 <= http_status < 500, (
        f"expected a 4xx client error, got HTTP {http_status} {err.get('Code')}: {err.get('Message')!r}")
    if codes:
        assert err.get("Code") in codes, f"expected one of {sorted(codes)}, got {err.get('Code')}"


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code")


def cert_arn(cert_id: str, account: str = ACCOUNT_A, region: str = REGION) -> str:
    return f"arn:aws:iot:{region}:{account}:cert/{cert_id}"


def all_certificate_ids(client) -> list[str]:
    ids = []
    for page in client.get_paginator("list_certificates").paginate():
        ids.extend(c["certificateId"] for c in page.get("certificates", []))
    return ids


def status_of(client, cert_id: str) -> str:
    return client.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]


def as_utc(value: dt.datetime) -> dt.datetime:
    assert isinstance(value, dt.datetime), f"not a datetime: {value!r}"
    assert value.tzinfo is not None, f"naive datetime: {value!r}"
    return value.astimezone(dt.timezone.utc)


def close_to(a: dt.datetime, b: dt.datetime, seconds: float = 1.0) -> bool:
    return abs((as_utc(a) - as_utc(b)).total_seconds()) <= seconds


# --------------------------------------------------------------------------------------------
# openssl


def openssl_verify(ca_pem_path, cert_pem: str, tmp_path, at: dt.datetime) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    require(openssl is not None, "openssl binary not found")
    cert_file = tmp_path / "cert.pem"
    cert_file.write_text(cert_pem)
    # -attime: verify at the server's (dev) clock, which other tests may have moved forward.
    return subprocess.run(
        [openssl, "verify", "-attime", str(int(at.timestamp()) + 1), "-CAfile", str(ca_pem_path),
         str(cert_file)],
        capture_output=True, text=True, timeout=30,
    )


# --------------------------------------------------------------------------------------------
# aws CLI v1


def aws_cli_path() -> Path | None:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return candidate
    found = shutil.which("aws")
    return Path(found) if found else None


def run_aws(url: str, args: list[str], access_key: str = ACCOUNT_A, secret: str = "x",
            region: str = REGION, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = aws_cli_path()
    require(exe is not None, "aws CLI not found next to the Python interpreter")
    env = dict(os.environ)
    env.update({
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    })
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    cmd = [sys.executable, str(exe), "iot", *args, "--endpoint-url", url, "--region", region,
           "--output", "json"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
