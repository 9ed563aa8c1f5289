"""The fio suite (bench/fio.py) at a minimal size, so its job files and mounts cannot rot."""

from __future__ import annotations

from bench import fio
from bench.mounts import PEERS

SIZE_MIB = 4


def test_the_fio_suite_runs_every_job_file_through_every_mount_and_compares_rates() -> None:
    comparisons = fio.run(repeat=1, size_mib=SIZE_MIB)

    titles = [w.title for w in fio.workloads(SIZE_MIB * fio.MiB)]
    assert [(c.name, c.peer) for c in comparisons] == [(t, p) for t in titles for p in PEERS]
    assert all(c.ours > 0 and c.theirs > 0 for c in comparisons)
