"""Shared by every SDK suite: puts this directory (`certplane_server`, `sdk_engine`) on sys.path,
reports which storage engine the servers run on, and provides the `binary` fixture."""

import pytest

import sdk_engine
from certplane_server import certplane_binary


def pytest_report_header(config):
    return f"certplane storage engine: {sdk_engine.ENGINE}"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts extra certplane processes")


@pytest.fixture(scope="session")
def binary():
    return certplane_binary()
