"""Fault injection: the database goes away under a running server. certplane answers the
dialect's unavailable error (AWS 503 ServiceUnavailableException) while it is gone, never a
hang or a crash, serves again by itself within 5 s of it coming back, and has lost nothing it
acknowledged.

PostgreSQL: a private cluster (initdb on a free port, as the `postgres` user) that the test
stops with `pg_ctl stop -m immediate` (a crash of the database) and starts again.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
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
        back = time.time()
        while True:
            try:
                client.describe_certificate(certificateId=acknowledged[0])
                break
            except botocore.exceptions.ClientError as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
                assert time.time() - back < 5, "not serving 5 s after the database came back"
                time.sleep(0.1)
        acknowledged.append(client.create_keys_and_certificate(setAsActive=True)["certificateId"])
        listed = {c["certificateId"] for c in client.list_certificates(pageSize=250)["certificates"]}
        assert set(acknowledged) <= listed
    finally:
        srv.stop()
