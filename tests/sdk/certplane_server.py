"""The certplane server process and the small helpers every SDK suite (tests/sdk/*) shares.

The certplane command-line contract these helpers rely on:

* `certplane serve --listen 127.0.0.1:PORT --data-dir DIR [--dev] [EXTRA ARGS]` prints
  `certplane listening on http://ADDR` (`https://ADDR` with `--tls`, whose certificate chains
  to `DIR/ca.pem`) on stdout when ready; `GET /healthz` answers 200.
* `--dev`: `POST /moto-api/reset` clears all state; `GET /dev/clock` reads server time and
  `POST /dev/clock {"advanceSeconds": N}` moves it (both answer `{"now": RFC 3339}`).
* `certplane admin ... --data-dir DIR` manages accounts, access keys, packages and certificates.

Both `serve` and `admin` get `sdk_engine.server_env(data_dir)`, so they use the same storage
engine (and, on PostgreSQL, the same database) for a given data dir.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sdk_engine

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
READY_RE = re.compile(r"certplane listening on (https?://\S+)")


def bypass_proxies_for_localhost() -> None:
    """Add 127.0.0.1 and localhost to NO_PROXY / no_proxy (the server is always local)."""
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


def http_request(base_url: str, method: str, target: str, body: bytes | None = None,
                 headers: dict | None = None, timeout: float = 30, ca_file=None):
    """Plain (unsigned) HTTP, or HTTPS trusting `ca_file` for an https base URL; returns
    (status, headers-dict-lowercase, body bytes)."""
    u = urllib.parse.urlsplit(base_url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


@dataclass
class RawResponse:
    """An HTTP response taken apart: what `http_request` returns, as an object."""
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def parse_json_output(text: str):
    """JSON printed by an admin command (tolerates log lines before the document)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for i in sorted(i for i in (text.find("{"), text.find("[")) if i >= 0):
        try:
            return json.JSONDecoder().raw_decode(text[i:])[0]
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON document in command output: {text!r}")


def find_key(doc, name: str):
    """First scalar value under key `name` (case-insensitive) anywhere in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k.lower() == name.lower() and not isinstance(v, (dict, list)):
                return v
        for v in doc.values():
            found = find_key(v, name)
            if found is not None:
                return found
    elif isinstance(doc, list):
        for v in doc:
            found = find_key(v, name)
            if found is not None:
                return found
    return None


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


def race_threads(n: int, fn, error_type: type[BaseException], error_of, join_timeout: float = 120):
    """Run fn(i) in n threads released together. Per thread: ('ok', value), ('err', error_of(e))
    for an `error_type` exception, or ('exc', repr(e)) for anything else."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = ("ok", fn(i))
        except error_type as e:
            results[i] = ("err", error_of(e))
        except Exception as e:  # noqa: BLE001
            results[i] = ("exc", repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_timeout)
    return results


# --------------------------------------------------------------------------------------------
# Server process


@dataclass
class CertplaneServer:
    binary: Path
    data_dir: Path
    dev: bool = True
    extra_args: list = field(default_factory=list)
    log_path: Path | None = None
    url: str | None = None
    proc: subprocess.Popen | None = None
    starts: int = 0

    def env(self) -> dict:
        """The environment of `serve` and `admin` on this data dir (storage engine included)."""
        return sdk_engine.server_env(self.data_dir)

    def start(self, timeout: float = 60.0) -> "CertplaneServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [str(self.binary), "serve", "--listen", f"127.0.0.1:{port}",
               "--data-dir", str(self.data_dir), *map(str, self.extra_args)]
        if self.dev:
            cmd.append("--dev")
        self.starts += 1
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.starts}.log"
        log = open(self.log_path, "w", buffering=1)
        log.write("$ " + " ".join(cmd) + "\n")
        env = self.env()
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                     stdin=subprocess.DEVNULL, text=True, env=env)
        ready = threading.Event()
        found: list[str] = []
        proc = self.proc

        def pump():
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
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
                status, _, _ = http_request(self.url, "GET", "/healthz", timeout=5,
                                            ca_file=self.ca_pem_path)
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

    def restart_if_dead(self) -> None:
        """For a server shared across tests: if an earlier test killed it, warn and start it again."""
        if self.alive():
            return
        code = self.proc.returncode if self.proc else None
        warnings.warn(f"server exited (code {code}; negative = killed by that signal) during an "
                      f"earlier test; restarting it.\n{self.log_tail()}")
        self.start()

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
        status, _, body = http_request(self.url, "POST", "/moto-api/reset",
                                       ca_file=self.ca_pem_path)
        assert status == 200, f"POST /moto-api/reset -> {status} {body[:200]!r}"

    def clock(self) -> dt.datetime:
        status, _, body = http_request(self.url, "GET", "/dev/clock", ca_file=self.ca_pem_path)
        assert status == 200, f"GET /dev/clock -> {status} {body[:200]!r}"
        return parse_rfc3339(json.loads(body)["now"])

    def advance(self, seconds: int) -> dt.datetime:
        status, _, body = http_request(
            self.url, "POST", "/dev/clock", json.dumps({"advanceSeconds": seconds}).encode(),
            {"Content-Type": "application/json"}, ca_file=self.ca_pem_path,
        )
        assert status == 200, f"POST /dev/clock -> {status} {body[:200]!r}"
        return parse_rfc3339(json.loads(body)["now"])

    # admin CLI
    def admin(self, *args: str, expect_ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), "admin", *args, "--data-dir", str(self.data_dir)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, env=self.env())
        if expect_ok and res.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {res.returncode}\nstdout: {res.stdout}\n"
                        f"stderr: {res.stderr}", pytrace=False)
        return res

    def admin_json(self, *args: str):
        return parse_json_output(self.admin(*args).stdout)


def burst(fn, n: int, errors: type | tuple) -> list:
    """n back-to-back calls of `fn`: ('ok', result) or ('err', the exception), for exceptions
    of the `errors` type(s) (anything else propagates)."""
    out = []
    for _ in range(n):
        try:
            out.append(("ok", fn()))
        except errors as e:  # noqa: PERF203 - each call is its own outcome
            out.append(("err", e))
    return out
