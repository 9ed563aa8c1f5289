"""The lock file: what it pins, how re-locking treats SOURCE_DATE_EPOCH, and bad lock files."""

from __future__ import annotations

import dataclasses

import pytest

from wave_proxy.layerbuild import ARCHES, LayerBuildError, LayerInputs, lockfile


@pytest.fixture(scope="module")
def committed() -> lockfile.Lock:
    return lockfile.load(LayerInputs.from_repo().lock_path)


def test_committed_lock_pins_every_runtime_package_for_both_architectures(committed):
    for arch in ARCHES.values():
        pins = committed.for_arch(arch)
        assert [p.package for p in pins] == sorted(lockfile.PACKAGES)
        for pin in pins:
            assert pin.architecture in (arch.name, "all")
            assert len(pin.sha256) == 64 and pin.size > 0
            assert pin.filename.endswith(f"_{pin.architecture}.deb")


@pytest.fixture(scope="module")
def resolved(layers) -> lockfile.Lock:
    """What apt offers now (after `layers`: the build has taught apt the foreign architecture)."""
    return lockfile.resolve(list(ARCHES.values()))


def test_relocking_without_changes_keeps_the_epoch(resolved, tmp_path):
    current = dataclasses.replace(resolved, source_date_epoch=12345)
    again = lockfile.resolve(list(ARCHES.values()), previous=current)
    assert again == current
    path = tmp_path / "lock.json"
    lockfile.dump(again, path)
    assert lockfile.load(path) == again


def test_relocking_a_changed_pin_moves_the_epoch(resolved):
    current = resolved
    amd64 = current.packages["amd64"]
    outdated = [dataclasses.replace(amd64[0], version="0.0-old"), *amd64[1:]]
    previous = dataclasses.replace(
        current, source_date_epoch=12345, packages={**current.packages, "amd64": outdated}
    )
    assert lockfile.resolve(list(ARCHES.values()), previous=previous).source_date_epoch != 12345


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "is missing"), ("{not json", "is malformed"), ('{"packages": {}}', "is malformed")],
)
def test_a_bad_lock_file_is_reported_with_the_fix(tmp_path, content, problem):
    path = tmp_path / "debian.lock.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LayerBuildError, match=f"{problem}.*wavectl layer lock"):
        lockfile.load(path)
