"""Fixtures for the Alibaba Cloud CAS 2020-04-07 SDK suite: the official Python SDK
(`alibabacloud_cas20200407`) against the real certplane binary.

Run from the repository root:

    CERTPLANE_BIN=target/release/certplane python -m pytest tests/sdk/aliyun -q

A fake DNS server (dnslib, 127.0.0.1) answers the TXT records the tests publish and A records
127.0.0.1 for every name; a fake web server on 127.0.0.1 serves the FILE validation files. One
`--dev` server wired to both (`--dns-resolver`, `--validation-http-port`) is shared by the whole
session; every test that uses the `server` fixture starts from an empty state
(`POST /moto-api/reset`) and empty DNS / web content. Verified-mode, restart, clock and
validation-timeout tests start their own servers.
"""

from __future__ import annotations

import pytest

from aliyun_harness import (
    ACCOUNT_A,
    ACCOUNT_B,
    CertplaneServer,
    FakeDns,
    FakeWeb,
    cas_client,
    isolate_environment,
    validation_args,
)

isolate_environment()


@pytest.fixture(scope="session")
def dns():
    d = FakeDns()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def web():
    w = FakeWeb()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def dev_server(binary, dns, web, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("dev") / "data", dev=True,
                          extra_args=validation_args(dns, web)).start()
    yield srv
    srv.stop()


@pytest.fixture
def server(dev_server, dns, web):
    """The shared dev server, reset to an empty state, with no DNS records or files published."""
    dev_server.restart_if_dead()
    dev_server.reset()
    dns.clear()
    web.clear()
    return dev_server


@pytest.fixture(params=["v3", "v1"])
def signing(request):
    """Both request styles of the SDK: default ACS3-HMAC-SHA256, and v1 (signature_algorithm v2)."""
    return request.param


@pytest.fixture
def cas(server):
    """SDK client (default v3 signing) for dev account A (uid 1234567890123456)."""
    return cas_client(server, ACCOUNT_A)


@pytest.fixture
def cas_v1(server):
    return cas_client(server, ACCOUNT_A, signing="v1")


@pytest.fixture
def cas_b(server):
    """SDK client for dev account B (uid 6543210987654321)."""
    return cas_client(server, ACCOUNT_B)


@pytest.fixture
def funded(server):
    """Account A holds 5 units of digicert-free-1-free."""
    server.add_package(ACCOUNT_A, "digicert-free-1-free", 5)
    return server
