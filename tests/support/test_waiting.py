"""The test harness itself: waiting on a peer reports a dead peer at once, with its cause."""

from __future__ import annotations

import sys

import pytest

from tests.support import PeerExited, Service, free_port, wait_until


def test_a_check_that_is_not_ready_yet_is_retried_until_it_is():
    attempts = iter([ConnectionRefusedError(), False, True])

    def check() -> bool:
        result = next(attempts)
        if isinstance(result, Exception):
            raise result
        return result

    wait_until(check, timeout=5)


@pytest.mark.e2e
def test_a_peer_that_exits_early_fails_the_wait_at_once_with_its_log(tmp_path):
    service = Service(
        "dies", [sys.executable, "-c", "print('no config'); raise SystemExit(3)"], tmp_path
    )
    try:
        with pytest.raises(PeerExited, match="no config"):
            service.wait_port(free_port(), timeout=60)
    finally:
        service.stop()
