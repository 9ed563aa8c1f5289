"""The markers say what a test needs, and a `unit` test cannot quietly grow a peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import support
from tests.support import Service, need_binary
from tests.support.markers import mark_by_needs

HERE = Path(__file__).resolve()


class FakeItem:
    """Just what mark_by_needs reads and writes on a collected test."""

    def __init__(self, *fixtures: str, marks: tuple[str, ...] = (), path: Path = HERE) -> None:
        self.fixturenames = list(fixtures)
        self.path = path
        self.marks = set(marks)

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.marks else None

    def add_marker(self, name: str) -> None:
        self.marks.add(name)


@pytest.mark.parametrize(
    ("fixtures", "explicit", "marks"),
    [
        ((), (), {"unit"}),
        (("tmp_path", "monkeypatch"), (), {"unit"}),
        (("shapes", "upstream"), (), {"e2e"}),
        (("dockerd", "proxy", "upstream"), (), {"e2e", "docker"}),
        (("s3rver_mount", "s3rver"), (), {"e2e", "fuse"}),
        (("fusion_build",), (), {"e2e", "slow"}),
        (("tmp_path",), ("fuse",), {"fuse"}),
        (("tmp_path",), ("docker",), {"docker", "e2e"}),
    ],
)
def test_markers_follow_the_fixtures_a_test_uses(fixtures, explicit, marks) -> None:
    item = FakeItem(*fixtures, marks=explicit)
    mark_by_needs([item])  # type: ignore[list-item]
    assert item.marks == marks


def test_this_very_test_runs_as_a_unit_test(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit")
    assert support.unit_test == request.node.nodeid


def test_a_unit_test_asking_for_a_system_binary_fails_naming_the_marker() -> None:
    with pytest.raises(pytest.fail.Exception, match="needs the sh binary: mark it e2e"):
        need_binary("sh")


def test_a_unit_test_starting_a_peer_fails_before_it_starts(tmp_path) -> None:
    with pytest.raises(pytest.fail.Exception, match="needs the peer sleeper: mark it e2e"):
        Service("sleeper", ["sleep", "60"], tmp_path)
    assert not (tmp_path / "sleeper.log").exists()


def test_a_test_under_tests_e2e_is_end_to_end_without_fixtures_or_marks() -> None:
    item = FakeItem(path=HERE.parents[1] / "e2e" / "test_anything.py")
    mark_by_needs([item])
    assert item.marks == {"e2e"}
