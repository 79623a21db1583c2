"""Shared by every SDK suite: reports which storage engine the servers run on."""

import sdk_engine


def pytest_report_header(config):
    return f"certplane storage engine: {sdk_engine.ENGINE}"
