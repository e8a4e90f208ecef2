"""Fixtures for the black-box tests: a squalld per test on a free loopback port.

Run as `SQUALLD=target/release/squalld .venv/bin/python -m pytest -q ci/python` (ci/test does).
"""

import logging

import pytest

from harness import start_daemon

# pynsq logs every connection event at INFO; keep failures readable.
logging.getLogger("nsq").setLevel(logging.WARNING)


@pytest.fixture
def squalld(tmp_path):
    """A running `$SQUALLD --tcp-address=127.0.0.1:<free port> --http-address= --shards=2
    --data-path=<tmp>`; at teardown it must exit 0 within 10 s of SIGTERM."""
    daemon = start_daemon(tmp_path)
    yield daemon
    daemon.stop_and_check()
