"""`wavectl calibrate compare`: the tables, tasks counted apart, and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.wave_proxy.calibrate.traces import FUSION_RUN, S3_RUN, Row, trace
from wave_proxy.cli import main


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def compare(tmp_path: Path, s3: str, fusion: str, *options: str) -> int:
    return main(
        [
            "calibrate",
            "compare",
            write(tmp_path, "s3.txt", s3),
            write(tmp_path, "fusion.txt", fusion),
            *options,
        ]
    )


def table_row(output: str, first_cell: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith(f"| {first_cell} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_process_gets_medians_totals_and_changes(tmp_path, capsys):
    assert compare(tmp_path, trace(S3_RUN), trace(FUSION_RUN, raw=True)) == 0
    region = table_row(capsys.readouterr().out, "REGION")
    # tasks, then median duration S3 / Fusion / change, total duration S3 / Fusion / change
    assert region[1:9] == ["3", "3", "30.0s", "9.2s", "-69.3%", "90.0s", "27.7s", "-69.2%"]


def test_the_totals_hold_billed_time_wall_clock_and_the_cost_change(tmp_path, capsys):
    assert compare(tmp_path, trace(S3_RUN), trace(FUSION_RUN), "--price-per-hour", "3.6") == 0
    out = capsys.readouterr().out
    assert table_row(out, "billed task time (summed duration)")[1:] == ["2m 44s", "80.7s", "-50.8%"]
    assert table_row(out, "wall clock (first submit to last completion)")[1:] == [
        "112.0s",
        "66.0s",
        "-41.1%",
    ]
    # 164 s and 80.7 s at $3.60 an hour
    assert table_row(out, "estimated cost at $3.6/hour")[1:] == [
        "$0.1640",
        "$0.0807",
        "-$0.0833 (-50.8%)",
    ]


def test_failed_and_cached_tasks_are_named_and_left_out_of_the_measurement(tmp_path, capsys):
    s3 = [*S3_RUN, Row("REGION (4)", 67, 500, 400, status="FAILED")]
    fusion = [*FUSION_RUN, Row("REGION (4)", 52.6, 3, 1, status="CACHED")]
    assert compare(tmp_path, trace(s3), trace(fusion)) == 0
    out = capsys.readouterr().out
    assert table_row(out, "REGION")[1:3] == ["3", "3"]
    assert "1 failed, not measured: REGION (4) [FAILED]" in out
    assert "1 cached, not measured: REGION (4)" in out


def test_a_report_page_is_written_when_asked(tmp_path, capsys):
    page = tmp_path / "report.html"
    assert compare(tmp_path, trace(S3_RUN), trace(FUSION_RUN), "--html", str(page)) == 0
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert f"report written to {page}" in capsys.readouterr().out


MISMATCHED = [Row("TRIM (1)", 0, 3, 1), Row("MERGE", 5, 3, 1)]


@pytest.mark.parametrize(
    ("s3", "fusion", "message"),
    [
        ("hello world\n", trace(FUSION_RUN), "s3.txt: not a Nextflow trace"),
        ("", trace(FUSION_RUN), "s3.txt: empty file"),
        (
            "name\tstatus\n",
            trace(FUSION_RUN),
            "s3.txt: missing required column(s) duration, realtime",
        ),
        (trace(S3_RUN), trace([]), "fusion.txt: the trace holds no tasks"),
        (
            trace(S3_RUN),
            trace([Row("MERGE", 0, 3, 1, status="FAILED")]),
            "fusion.txt: no completed task to compare",
        ),
        (trace(S3_RUN), trace(MISMATCHED), "different pipelines (only in"),
        (trace(S3_RUN), trace(FUSION_RUN) + "7\tshort row\n", "fusion.txt, line 7: 2 values"),
    ],
    ids=[
        "not-a-trace",
        "empty-file",
        "missing-columns",
        "no-tasks",
        "none-completed",
        "mismatched",
        "ragged",
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, s3, fusion, message):
    assert compare(tmp_path, s3, fusion) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("wavectl: error: ") and message in err


def test_a_binary_file_is_one_line_and_status_2(tmp_path, capsys):
    binary = tmp_path / "s3.bin"
    binary.write_bytes(b"\x00\xff\xfe" * 100)
    fusion = write(tmp_path, "fusion.txt", trace(FUSION_RUN))
    assert main(["calibrate", "compare", str(binary), fusion]) == 2
    assert capsys.readouterr().err == f"wavectl: error: {binary}: not a Nextflow trace (not text)\n"


def test_a_missing_file_is_one_line_and_status_2(tmp_path, capsys):
    s3 = write(tmp_path, "s3.txt", trace(S3_RUN))
    assert main(["calibrate", "compare", s3, str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert err == f"wavectl: error: {tmp_path / 'nope.txt'}: No such file or directory\n"


def test_a_negative_price_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare(tmp_path, trace(S3_RUN), trace(FUSION_RUN), "--price-per-hour", "-1")
    assert exit_info.value.code == 2
    assert "not a price: '-1'" in capsys.readouterr().err


def test_a_report_that_cannot_be_written_is_one_line_and_status_2(tmp_path, capsys):
    page = tmp_path / "missing-dir" / "report.html"
    assert compare(tmp_path, trace(S3_RUN), trace(FUSION_RUN), "--html", str(page)) == 2
    assert capsys.readouterr().err == f"wavectl: error: {page}: No such file or directory\n"


def test_other_wavectl_commands_do_not_load_matplotlib():
    """It takes seconds to import: only `--html` may pay for it."""
    check = "import sys; from wave_proxy.cli import build_parser; build_parser(); "
    check += "sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
