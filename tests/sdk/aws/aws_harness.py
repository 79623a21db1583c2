"""Process control, clients and assertions for the certplane AWS IoT SDK tests.

The certplane command-line contract these helpers rely on:

* `certplane serve --listen 127.0.0.1:PORT --data-dir DIR [--dev]` prints
  `certplane listening on http://ADDR` on stdout when ready; `GET /healthz` answers 200.
* `--dev`: any well-formed SigV4 signature passes; the account is the access key id when it is
  exactly 12 digits, else header `x-moto-account-id`, else 123456789012. `POST /moto-api/reset`
  clears all state; `GET|POST /dev/clock` reads / advances server time.
* `certplane admin ... --data-dir DIR` manages accounts, access keys and inspects certificates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
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

import sdk_engine

REPO = Path(__file__).resolve().parents[3]
ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ACCOUNT_C = "333333333333"
DEFAULT_DEV_ACCOUNT = "123456789012"
REGION = "us-east-1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
MARKER_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")  # the model's Marker pattern
IN_CI = os.environ.get("CI", "").lower() == "true"
READY_RE = re.compile(r"certplane listening on (http://\S+)")


def isolate_environment() -> None:
    """Keep the developer's AWS config, profiles and proxies out of the tests."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IOT",
                "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_CA_BUNDLE"):
        os.environ.pop(var, None)
    os.environ["AWS_CONFIG_FILE"] = "/dev/null"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    no_proxy = "127.0.0.1,localhost"
    for var in ("NO_PROXY", "no_proxy"):
        existing = os.environ.get(var)
        os.environ[var] = f"{existing},{no_proxy}" if existing else no_proxy


def require(condition: bool, message: str) -> None:
    """Missing optional tooling: skip locally, fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(message + " (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(message)


def certplane_binary() -> Path:
    path = Path(os.environ.get("CERTPLANE_BIN") or REPO / "target" / "release" / "certplane")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"certplane binary not found or not executable at {path}. Build it with "
            "`cargo build --release` or point CERTPLANE_BIN at it.",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Server process


@dataclass
class CertplaneServer:
    binary: Path
    data_dir: Path
    dev: bool = True
    log_path: Path | None = None
    url: str | None = None
    proc: subprocess.Popen | None = None
    _lines: list = field(default_factory=list)
    starts: int = 0

    def start(self, timeout: float = 60.0) -> "CertplaneServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [str(self.binary), "serve", "--listen", f"127.0.0.1:{port}",
               "--data-dir", str(self.data_dir)]
        if self.dev:
            cmd.append("--dev")
        self.starts += 1
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.starts}.log"
        log = open(self.log_path, "w", buffering=1)
        log.write("$ " + " ".join(cmd) + "\n")
        env = sdk_engine.server_env(self.data_dir)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     text=True, env=env)
        ready = threading.Event()
        found: list[str] = []
        proc = self.proc

        def pump():
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                self._lines.append(line)
                m = READY_RE.search(line)
                if m and not found:
                    found.append(m.group(1).rstrip("/"))
                    ready.set()
            ready.set()
            log.close()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or not found:
            self.kill()
            pytest.fail(
                f"certplane did not print 'certplane listening on http://ADDR' within {timeout}s "
                f"(exit code {self.proc.poll()}).\n{self.log_tail()}",
                pytrace=False,
            )
        self.url = found[0]
        deadline = time.monotonic() + 15
        last = None
        while time.monotonic() < deadline:
            try:
                status, _, _ = http_request(self.url, "GET", "/healthz")
                if status == 200:
                    return self
                last = f"HTTP {status}"
            except OSError as e:  # not accepting yet
                last = repr(e)
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"GET /healthz never answered 200 ({last}).\n{self.log_tail()}", pytrace=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send `sig` and wait for exit; returns the exit code (None if it had to be killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except (OSError, TypeError):
            return "(no server log)"
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(lines[-n:])

    @property
    def ca_pem_path(self) -> Path:
        return self.data_dir / "ca.pem"

    # dev-mode endpoints
    def reset(self) -> None:
        status, _, body = http_request(self.url, "POST", "/moto-api/reset")
        assert status == 200, f"POST /moto-api/reset -> {status} {body[:200]!r}"

    def clock(self) -> dt.datetime:
        status, _, body = http_request(self.url, "GET", "/dev/clock")
        assert status == 200, f"GET /dev/clock -> {status} {body[:200]!r}"
        return parse_rfc3339(json.loads(body)["now"])

    def advance(self, seconds: int) -> dt.datetime:
        status, _, body = http_request(
            self.url, "POST", "/dev/clock", json.dumps({"advanceSeconds": seconds}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200, f"POST /dev/clock -> {status} {body[:200]!r}"
        return parse_rfc3339(json.loads(body)["now"])

    # admin CLI
    def admin(self, *args: str, expect_ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), "admin", *args, "--data-dir", str(self.data_dir)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, env=sdk_engine.server_env(self.data_dir))
        if expect_ok and res.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {res.returncode}\nstdout: {res.stdout}\n"
                        f"stderr: {res.stderr}", pytrace=False)
        return res

    def admin_json(self, *args: str):
        res = self.admin(*args)
        return parse_json_output(res.stdout)


def parse_json_output(text: str):
    """JSON printed by an admin command (tolerates log lines before the document)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    for i in sorted(starts):
        try:
            return json.JSONDecoder().raw_decode(text[i:])[0]
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON document in command output: {text!r}")


def parse_rfc3339(value: str) -> dt.datetime:
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    # Python < 3.11 can't parse more than 6 fractional digits; trim nanoseconds.
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", v)
    if m and m.group(2) and len(m.group(2)) > 7:
        v = m.group(1) + m.group(2)[:7] + m.group(3)
    parsed = dt.datetime.fromisoformat(v)
    assert parsed.tzinfo is not None, f"RFC 3339 time without offset: {value!r}"
    return parsed


# --------------------------------------------------------------------------------------------
# HTTP


def http_request(base_url: str, method: str, path: str, body: bytes | None = None,
                 headers: dict | None = None, timeout: float = 30):
    """Plain (unsigned) HTTP; returns (status, headers-dict-lowercase, body bytes)."""
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


@dataclass
class RawResponse:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

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
