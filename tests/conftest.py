"""Suite-wide rules. In CI a skipped test counts as a failure: nothing may pass by not running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import support
from tests.support import IN_CI
from tests.support.images import Shapes, seed_shapes
from tests.support.markers import mark_by_needs
from tests.support.registry import Registry, registry_running

# Session fixtures defined once for every folder (imported into several conftests, each import
# would start its own copy of the peer).
pytest_plugins = [
    "tests.support.cloudservers",
    "tests.support.fusion_layers",
    "tests.support.layers",
    "tests.support.redis",
    "tests.support.s3servers",
    "tests.support.upstreams",
]


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open docker-registry on loopback, one for every suite."""
    with registry_running(tmp_path_factory.mktemp("upstream-open"), "open") as registry:
        yield registry


@pytest.fixture(scope="session")
def shapes(upstream: Registry) -> Shapes:
    """Every image shape, pushed to the open `upstream` (busybox as library/busybox:1)."""
    return seed_shapes(upstream)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks by what each test needs (tests/support/markers.py). CI runs them all: `-m` there
    would leave tests out without a skip to count, so it is refused."""
    mark_by_needs(items)
    if IN_CI and config.option.markexpr:
        raise pytest.UsageError(f"CI=true runs every test; drop -m {config.option.markexpr!r}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A unit test's set-up and body may not reach for peers (its teardown may stop some)."""
    support.unit_test = item.nodeid if item.get_closest_marker("unit") else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    support.unit_test = None
