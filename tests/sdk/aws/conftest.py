"""Fixtures for the AWS IoT SDK suite: boto3 and the aws CLI against the real certplane binary.

Run from the repository root:

    CERTPLANE_BIN=target/release/certplane python -m pytest tests/sdk/aws -q

One `--dev` server is shared by the whole session; every test that uses the `server` fixture
starts from an empty state (`POST /moto-api/reset`). Verified-mode (real SigV4) and persistence
tests start their own servers on their own data directories.
"""

from __future__ import annotations

import pytest

from aws_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    ACCOUNT_C,
    iot_client,
    isolate_environment,
)
from certplane_server import CertplaneServer

isolate_environment()


@pytest.fixture(scope="session")
def dev_server(binary, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("dev") / "data", dev=True).start()
    yield srv
    srv.stop()


@pytest.fixture
def server(dev_server):
    """The shared dev server, reset to an empty state."""
    dev_server.restart_if_dead()
    dev_server.reset()
    return dev_server


@pytest.fixture
def make_iot(server):
    """Factory: make_iot(access_key=..., region=..., session_token=..., validate=...)."""
    def factory(access_key: str = ACCOUNT_A, **kwargs):
        return iot_client(server.url, access_key=access_key, **kwargs)
    return factory


@pytest.fixture
def iot(make_iot):
    """boto3 IoT client for dev account A (111111111111) in us-east-1."""
    return make_iot(ACCOUNT_A)


@pytest.fixture
def iot_b(make_iot):
    """boto3 IoT client for dev account B (222222222222) in us-east-1."""
    return make_iot(ACCOUNT_B)


@pytest.fixture
def iot_c(make_iot):
    return make_iot(ACCOUNT_C)


@pytest.fixture
def iot_novalidate(make_iot):
    """Account A client with botocore's client-side parameter validation switched off."""
    return make_iot(ACCOUNT_A, validate=False)


@pytest.fixture
def ca_material(iot):
    """Register a DEFAULT-mode CA for account A (ACTIVE) and return (Issued CA, caCertificateId)."""
    from aws_x509 import make_ca, make_verification_cert

    ca = make_ca()
    code = iot.get_registration_code()["registrationCode"]
    verification = make_verification_cert(ca, code)
    resp = iot.register_ca_certificate(
        caCertificate=ca.pem, verificationCertificate=verification.pem, setAsActive=True
    )
    return ca, resp["certificateId"]
