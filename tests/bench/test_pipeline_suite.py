"""A small run of the calibration bench suite (bench/pipeline.py): the pipeline's tasks as
containers in a real dockerd pulling through the proxy, with S3 staging and through /fusion
against s3rver, then `wavectl calibrate compare` on the traces it wrote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.pipeline import Scale, calibrate
from tests.support.fusion_layers import FusionBuild
from wave_proxy.calibrate.trace import Run, parse_trace

# bench/pipeline.py starts its own dockerd, proxy and s3rver.
pytestmark = [pytest.mark.timeout(900), pytest.mark.e2e, pytest.mark.docker]
# A 4 MiB input: big enough that a task's regions (512 KiB) and its Python's own reads stay
# well below it.
SMALL = Scale(regions=16, region_kib=256, chunks=3, regions_per_chunk=2, parallel=2)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory, fusion_build: FusionBuild):
    workdir = tmp_path_factory.mktemp("calibration")
    return calibrate(workdir / "run", fusion_build, SMALL, workdir / "out")


def read(path: Path) -> Run:
    return parse_trace(path.read_text(), path.name)


def test_both_runs_complete_every_task_of_the_pipeline(calibration):
    for path in (calibration.s3_trace, calibration.fusion_trace):
        run = read(path)
        assert [task.status for task in run.tasks] == ["COMPLETED"] * (SMALL.chunks + 2)
        assert run.processes == ["MAKE_INPUT", "REGION_STATS", "MERGE"]


def test_both_runs_compute_the_same_result(calibration):
    s3, fusion = calibration.results["s3"], calibration.results["fusion"]
    assert s3 == fusion
    assert s3.count(b"\n") == SMALL.chunks * SMALL.regions_per_chunk + 2  # header and total


def test_a_region_task_reads_its_regions_not_the_whole_input(calibration):
    region = next(t for t in read(calibration.fusion_trace).tasks if t.process == "REGION_STATS")
    genome = SMALL.regions * SMALL.region_kib * 1024
    assert region.rchar is not None
    assert SMALL.regions_per_chunk * SMALL.region_kib * 1024 <= region.rchar < genome


def test_the_compare_command_reports_on_both_traces(calibration):
    compared = calibration.compared
    assert compared.returncode == 0, compared.stderr
    assert "| REGION_STATS | 3 | 3 |" in compared.stdout
    assert "estimated cost" in compared.stdout
    assert "<svg" in calibration.report.read_text()


def test_the_fusion_logs_account_for_the_bytes_fetched(calibration):
    fetched = re.search(r"Fusion tasks fetched ([\d.]+) MiB", calibration.bytes_moved)
    assert fetched and float(fetched[1]) > 0
