"""Suite-wide rules. In CI a skipped test counts as a failure: nothing may pass by not running."""

from __future__ import annotations

import pytest

from tests.support import IN_CI
from tests.support.fusion_layers import fusion_build

__all__ = ["fusion_build"]  # the Fusion layers, built once per session for every suite


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"
