"""What a test needs, as pytest markers (registered in pyproject.toml; --strict-markers).

    unit    runs in this process with the venv alone: no peers, no system tools, no root
    e2e     real peers in subprocesses: registries, S3 servers, redis, `wavectl serve`, tools
    docker  a private dockerd (always e2e too)
    fuse    real FUSE mounts through /dev/fuse (needs root)
    slow    seconds to minutes each: layer builds, 1 GiB objects, emulated architectures

A test gets e2e/docker/fuse/slow from the fixtures it uses (transitively) and from explicit
marks on itself or its module, and e2e from living under tests/e2e/; `unit` is whatever has
none of them (`make test-fast` runs `pytest -m unit`). A test marked unit that asks for a
system binary or starts a peer fails at once, naming the marker it lacks, so the fast loop
stays fast and install-free.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Session fixtures that start a peer; a test using any of them (even through another fixture)
# is end to end.
PEER_FIXTURES = frozenset(
    {
        "upstream",
        "htpasswd_upstream",
        "token_upstream",
        "proxy",
        "fusion_proxy",
        "s3rver",
        "moto_s3",
        "fake_gcs",
        "azurite",
        "redis_server",
        "fusion_build",
        "dockerd",
        "docker",
    }
)
DOCKER_FIXTURES = frozenset({"dockerd", "docker"})
FUSE_FIXTURES = frozenset({"s3rver_mount", "moto_mount", "mnt"})
SLOW_FIXTURES = frozenset({"fusion_build"})  # builds both layers when .tools has none yet
NEEDS = ("e2e", "docker", "fuse", "slow")
E2E_FOLDER = Path(__file__).resolve().parents[1] / "e2e"


def mark_by_needs(items: list[pytest.Item]) -> None:
    """Add e2e/docker/fuse/slow from fixtures, then `unit` to every test with none of them."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if E2E_FOLDER in item.path.parents and not item.get_closest_marker("e2e"):
            item.add_marker("e2e")
        for marker, fixtures in (
            ("e2e", PEER_FIXTURES),
            ("docker", DOCKER_FIXTURES),
            ("fuse", FUSE_FIXTURES),
            ("slow", SLOW_FIXTURES),
        ):
            if used & fixtures and not item.get_closest_marker(marker):
                item.add_marker(marker)
        if item.get_closest_marker("docker") and not item.get_closest_marker("e2e"):
            item.add_marker("e2e")
        if not any(item.get_closest_marker(marker) for marker in NEEDS):
            item.add_marker("unit")
