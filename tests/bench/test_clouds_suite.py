"""The clouds suite (bench/clouds.py) at a minimal size, so its stores and SDK jobs cannot rot."""

from __future__ import annotations

import pytest

from bench import clouds
from bench.sdk import NAMES

# s3rver, fake-gcs-server, Azurite and fusion mounts through /dev/fuse, each SDK in a process.
pytestmark = [pytest.mark.e2e, pytest.mark.fuse, pytest.mark.slow]

SIZE_MIB = 4


def test_the_clouds_suite_compares_fusion_with_each_clouds_sdk_on_every_store() -> None:
    comparisons = clouds.run(repeat=1, size_mib=SIZE_MIB)

    assert [c.peer for c in comparisons] == [NAMES[s] for s in clouds.STORES for _ in range(3)]
    assert all(c.ours > 0 and c.theirs > 0 for c in comparisons)
