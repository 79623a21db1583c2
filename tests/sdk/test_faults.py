"""Fault injection: the database goes away under a running server. certplane answers the
dialect's unavailable error (AWS 503 ServiceUnavailableException) while it is gone, never a
hang or a crash, serves again by itself within 5 s of it coming back, and has lost nothing it
acknowledged.

PostgreSQL: a private cluster (initdb on a free port, as the `postgres` user) that the test
stops with `pg_ctl stop -m immediate` (a crash of the database) and starts again; and a slow
database: the server reaches the cluster through a TCP relay that adds latency to every packet,
or holds every byte (a database that stopped answering without closing its connections).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

import certplane_server
from certplane_server import CertplaneServer

ACCOUNT = "111111111111"


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


class PrivateCluster:
    def __init__(self):
        # Outside pytest's tmp dirs: those are private to root, and the cluster runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="certplane-faults-pg-"))
        self.dir = self.root / "pgdata"
        self.port = certplane_server.free_port()

    def init(self) -> None:
        self.dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.dir, "postgres", "postgres")
        r = as_postgres(pg_bin("initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres")
        assert r.returncode == 0, r.stderr
        self.start()

    def start(self) -> None:
        r = as_postgres(pg_bin("pg_ctl"), "-D", str(self.dir), "-w", "-l",
                        str(self.dir / "log"), "-o",
                        f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")
        assert r.returncode == 0, r.stdout + r.stderr

    def crash(self) -> None:
        r = as_postgres(pg_bin("pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop")
        assert r.returncode == 0, r.stdout + r.stderr

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


class _OnCluster(CertplaneServer):
    database_url = None

    def env(self) -> dict:
        env = dict(os.environ)
        env["CERTPLANE_DATABASE_URL"] = self.database_url
        return env


def iot(srv):
    return boto3.client("iot", endpoint_url=srv.url, region_name="us-east-1",
                        aws_access_key_id=ACCOUNT, aws_secret_access_key="faults",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5,
                                      read_timeout=20))


def serving_again_within_5s(client, cert_id: str) -> None:
    """Once the fault has ended: 503s at most, until the certificate is described again within
    5 s."""
    back = time.time()
    while True:
        try:
            client.describe_certificate(certificateId=cert_id)
            return
        except botocore.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
            assert time.time() - back < 5, "not serving 5 s after the fault ended"
            time.sleep(0.1)


@pytest.fixture
def cluster():
    certplane_server.require(pg_bin("initdb") is not None and pg_bin("pg_ctl") is not None,
                             "PostgreSQL's initdb and pg_ctl are needed for the fault tests")
    c = PrivateCluster()
    try:
        c.init()
        yield c
    finally:
        as_postgres(pg_bin("pg_ctl"), "-D", str(c.dir), "-m", "immediate", "stop")
        shutil.rmtree(c.root, ignore_errors=True)


def test_postgresql_crash_answers_503_and_recovers_within_5s(binary, tmp_path, cluster):
    srv = _OnCluster(binary, tmp_path / "data", dev=True)
    srv.database_url = cluster.url
    srv.start()
    try:
        client = iot(srv)
        acknowledged = [client.create_keys_and_certificate(setAsActive=True)["certificateId"]
                        for _ in range(5)]
        cluster.crash()
        t0 = time.time()
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.create_keys_and_certificate(setAsActive=True)
        err = info.value.response
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
        assert err["Error"]["Code"] == "ServiceUnavailableException", err
        assert time.time() - t0 < 20, "the refusal took longer than a client's read timeout"
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.describe_certificate(certificateId=acknowledged[0])
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert srv.alive(), "the server died with its database"

        cluster.start()
        serving_again_within_5s(client, acknowledged[0])
        acknowledged.append(client.create_keys_and_certificate(setAsActive=True)["certificateId"])
        listed = {c["certificateId"] for c in client.list_certificates(pageSize=250)["certificates"]}
        assert set(acknowledged) <= listed
    finally:
        srv.stop()


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs (the test grows it again with a remount); skipped where mounting is not
    permitted (it needs root), loudly."""
    point = Path(tempfile.mkdtemp(prefix="certplane-faults-disk-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        point.rmdir()
        pytest.skip(f"SKIPPED: cannot mount a small tmpfs here ({r.stderr.strip()}); the full-disk "
                    "test needs root")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
        shutil.rmtree(point, ignore_errors=True)


def test_sqlite_on_a_full_disk_answers_503_and_recovers(binary, small_disk):
    srv = CertplaneServer(binary, small_disk / "data", dev=True)
    srv.env = lambda: {k: v for k, v in os.environ.items() if k != "CERTPLANE_DATABASE_URL"}
    srv.start()
    try:
        client = iot(srv)
        acknowledged, refusal = [], None
        for _ in range(2000):
            try:
                acknowledged.append(
                    client.register_certificate_without_ca(certificatePem=_filler_pem(),
                                                           status="ACTIVE")["certificateId"])
            except botocore.exceptions.ClientError as e:
                refusal = e.response
                break
        assert refusal is not None, "4 MiB never filled up"
        assert refusal["ResponseMetadata"]["HTTPStatusCode"] == 503, refusal
        assert refusal["Error"]["Code"] == "ServiceUnavailableException", refusal
        assert srv.alive(), "the server died on a full disk"
        # Reads still work on a full disk.
        client.describe_certificate(certificateId=acknowledged[0])

        r = subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        back = time.time()
        while True:
            try:
                acknowledged.append(
                    client.register_certificate_without_ca(certificatePem=_filler_pem(),
                                                           status="ACTIVE")["certificateId"])
                break
            except botocore.exceptions.ClientError as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
                assert time.time() - back < 5, "not writing 5 s after space came back"
                time.sleep(0.1)
        listed = set()
        marker = None
        while True:
            page = client.list_certificates(pageSize=250, **({"marker": marker} if marker else {}))
            listed |= {c["certificateId"] for c in page["certificates"]}
            marker = page.get("nextMarker")
            if not marker:
                break
        assert set(acknowledged) <= listed, "acknowledged certificates were lost"
    finally:
        srv.stop()


def _filler_pem() -> str:
    """A fresh self-signed certificate with a bulky subject, so the disk fills quickly."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "filler"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x" * 60)])
    now = dt.datetime.now(dt.timezone.utc)
    sans = [x509.DNSName(f"filler-{i}-{os.urandom(8).hex()}.example") for i in range(60)]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class SlowRelay:
    """A TCP relay to the database that delays every chunk by `delay` seconds, in order, and
    while `held` forwards nothing at all (connections stay open, bytes wait)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.delay = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                if self.delay:
                    time.sleep(self.delay)
                self.gate.wait()
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.release()
        self.listener.close()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


def test_a_slow_database_slows_answers_but_fails_none(binary, tmp_path, cluster):
    relay = SlowRelay(cluster.port)
    srv = _OnCluster(binary, tmp_path / "data", dev=True)
    srv.database_url = relay.url
    srv.start()
    try:
        client = iot(srv)
        made = [client.create_keys_and_certificate(setAsActive=True)["certificateId"]
                for _ in range(3)]
        # 50 ms each way on every packet: a database across a slow WAN link.
        relay.delay = 0.05
        t0 = time.time()
        for cid in made:
            client.update_certificate(certificateId=cid, newStatus="INACTIVE")
            assert client.describe_certificate(certificateId=cid)[
                "certificateDescription"]["status"] == "INACTIVE"
        made.append(client.create_keys_and_certificate(setAsActive=True)["certificateId"])
        assert time.time() - t0 > 0.3, "the relay added no latency: the test proves nothing"
        relay.delay = 0.0
        listed = {c["certificateId"]: c["status"]
                  for c in client.list_certificates(pageSize=250)["certificates"]}
        assert set(made) <= set(listed)
        assert [listed[c] for c in made[:3]] == ["INACTIVE"] * 3
    finally:
        srv.stop()
        relay.close()


def test_a_database_that_stops_answering_gets_503_and_recovery_within_5s(
        binary, tmp_path, cluster):
    relay = SlowRelay(cluster.port)
    srv = _OnCluster(binary, tmp_path / "data", dev=True)
    srv.database_url = relay.url
    srv.start()
    try:
        client = iot(srv)
        acknowledged = [client.create_keys_and_certificate(setAsActive=True)["certificateId"]
                        for _ in range(3)]
        relay.hold()
        for call in (lambda: client.create_keys_and_certificate(setAsActive=True),
                     lambda: client.update_certificate(certificateId=acknowledged[0],
                                                       newStatus="INACTIVE")):
            # Within the client's 20 s read timeout (a timeout would raise, not answer 503).
            with pytest.raises(botocore.exceptions.ClientError) as info:
                call()
            err = info.value.response
            assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
            assert err["Error"]["Code"] == "ServiceUnavailableException", err
        assert srv.alive(), "the server died with its database"

        relay.release()
        serving_again_within_5s(client, acknowledged[0])
        acknowledged.append(client.create_keys_and_certificate(setAsActive=True)["certificateId"])
        listed = {c["certificateId"]: c["status"]
                  for c in client.list_certificates(pageSize=250)["certificates"]}
        assert set(acknowledged) <= set(listed)
        # The update refused with 503 changed nothing, or (cut off after its COMMIT reached
        # the database) it is whole: ACTIVE or INACTIVE, never anything else.
        assert listed[acknowledged[0]] in ("ACTIVE", "INACTIVE")
        assert all(listed[c] == "ACTIVE" for c in acknowledged[1:])
    finally:
        srv.stop()
        relay.close()
