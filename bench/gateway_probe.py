"""The Python half of bench/gateway.sh: registers the bench device through the AWS dialect
(boto3), measures inactivate-to-disconnect latency, and the memory of idle device sessions.

    gateway_probe.py setup   --api URL --work DIR
    gateway_probe.py latency --api URL --work DIR --gateway PORT --samples N
    gateway_probe.py idle    --api URL --work DIR --gateway PORT --count N --pid PID
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import socket
import ssl
import statistics
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACCOUNT = "111111111111"
REGION = "us-east-1"


def iot(api: str):
    return boto3.client("iot", endpoint_url=api, region_name=REGION, aws_access_key_id=ACCOUNT,
                        aws_secret_access_key="bench", config=Config(retries={"max_attempts": 1}))


def device_id(work: Path) -> str:
    der = x509.load_pem_x509_certificate((work / "device.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def setup(args) -> None:
    work = Path(args.work)
    client = iot(args.api)
    ca_cert = x509.load_pem_x509_certificate((work / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((work / "ca.key").read_bytes(), None)
    code = client.get_registration_code()["registrationCode"]
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    verification = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, code)]))
                    .issuer_name(ca_cert.subject).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(minutes=5))
                    .not_valid_after(now + dt.timedelta(days=1))
                    .sign(ca_key, hashes.SHA256()))
    client.register_ca_certificate(
        caCertificate=(work / "ca.pem").read_text(),
        verificationCertificate=verification.public_bytes(serialization.Encoding.PEM).decode(),
        setAsActive=True)
    got = client.register_certificate(certificatePem=(work / "device.pem").read_text(),
                                      caCertificatePem=(work / "ca.pem").read_text(),
                                      status="ACTIVE")["certificateId"]
    assert got == device_id(work), (got, device_id(work))


def tls_context(work: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the bench measures the gateway, not the client's checks
    ctx.load_cert_chain(str(work / "device.pem"), str(work / "device.key"))
    return ctx


def session(ctx: ssl.SSLContext, port: int, client_id: str, keepalive: int = 60):
    """A TLS connection with an MQTT 3.1.1 session behind it (CONNECT answered by CONNACK 0),
    or None if the gateway refused the device."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        cid = client_id.encode()
        body = (b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big")
                + len(cid).to_bytes(2, "big") + cid)
        s.sendall(bytes([0x10, len(body)]) + body)
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                break
            ack += chunk
    except (ssl.SSLError, OSError):
        raw.close()
        return None
    if ack != b"\x20\x02\x00\x00":
        s.close()
        return None
    return s


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latency(args) -> None:
    work = Path(args.work)
    client = iot(args.api)
    cert_id = device_id(work)
    ctx = tls_context(work)
    to_close, api_call = [], []
    for i in range(args.samples):
        s = session(ctx, args.gateway, f"lat-{i}")
        deadline = time.monotonic() + 5
        while s is None:  # the reactivation of the previous round may not be indexed yet
            assert time.monotonic() < deadline, "the device never got a session"
            time.sleep(0.005)
            s = session(ctx, args.gateway, f"lat-{i}")
        closed = threading.Event()
        at = [0.0]

        def watch(sock=s):
            sock.settimeout(10)
            try:
                while sock.recv(64):
                    pass
            except (ssl.SSLError, OSError):
                pass
            at[0] = time.monotonic()
            closed.set()

        t = threading.Thread(target=watch)
        t.start()
        t0 = time.monotonic()
        client.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
        api_call.append(time.monotonic() - t0)
        assert closed.wait(10), "the gateway kept an inactive device's session"
        t.join()
        to_close.append(at[0] - t0)
        s.close()
        client.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    print(f"inactivate-to-disconnect ({args.samples} samples; from sending UpdateCertificate "
          f"INACTIVE to the session's close): p50 {ms(statistics.median(to_close))}, "
          f"p99 {ms(pct(to_close, 99))}, max {ms(max(to_close))}; "
          f"the API call alone: p50 {ms(statistics.median(api_call))}, "
          f"p99 {ms(pct(api_call, 99))}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle(args) -> None:
    work = Path(args.work)
    ctx = tls_context(work)
    warm = [session(ctx, args.gateway, f"warm-{i}", keepalive=0) for i in range(20)]
    assert all(warm), "the device was refused"
    time.sleep(1)
    before = rss_kib(args.pid)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        held = list(pool.map(lambda i: session(ctx, args.gateway, f"idle-{i}", keepalive=0),
                             range(args.count)))
    opened = time.monotonic() - t0
    refused = sum(1 for s in held if s is None)
    time.sleep(2)
    after = rss_kib(args.pid)
    n = args.count - refused
    print(f"idle sessions: {n} held ({refused} refused), opened in {opened:.1f} s; gateway RSS "
          f"{before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: "
          f"{(after - before) / max(n, 1):.1f} KiB per idle device connection")
    for s in held + warm:
        if s is not None:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["setup", "latency", "idle"])
    ap.add_argument("--api", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--gateway", type=int)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--pid", type=int)
    args = ap.parse_args()
    {"setup": setup, "latency": latency, "idle": idle}[args.what](args)


if __name__ == "__main__":
    main()
