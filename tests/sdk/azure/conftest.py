"""Fixtures for the Azure Billing transfers suite: azure-mgmt-billing and azure-identity against
the real certplane binary over TLS.

Run from the repository root:

    CERTPLANE_BIN=target/release/certplane python -m pytest tests/sdk/azure -q

One `--dev --tls` server (seeded once with `certplane admin billing import`) is shared by the
session; tests use fresh transfer names and fresh products, so they need no reset. Restart and
TTL tests start their own servers.
"""

from __future__ import annotations

import pytest

from azure_harness import import_seed, start_server


@pytest.fixture(scope="session")
def server(binary, tmp_path_factory):
    srv = start_server(binary, tmp_path_factory.mktemp("azure") / "data")
    import_seed(srv)
    yield srv
    srv.stop()


@pytest.fixture
def srv(server):
    server.restart_if_dead()
    return server
