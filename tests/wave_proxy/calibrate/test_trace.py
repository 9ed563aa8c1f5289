"""Reading Nextflow trace files: both value forms, any set of fields, clear errors."""

from __future__ import annotations

import pytest

from tests.wave_proxy.calibrate.traces import DEFAULT_FIELDS, S3_RUN, Row, trace
from wave_proxy.calibrate.trace import TraceError, parse_trace, seconds, size


def test_the_human_and_the_raw_form_read_to_the_same_tasks():
    human = parse_trace(trace(S3_RUN), "human")
    raw = parse_trace(trace(S3_RUN, raw=True), "raw")
    for a, b in zip(human.tasks, raw.tasks, strict=True):
        assert a.name == b.name and a.process == b.process
        assert a.duration == pytest.approx(b.duration, abs=0.001)
        assert a.realtime == pytest.approx(b.realtime, abs=0.001)
        assert a.submit == pytest.approx(b.submit, abs=0.001)
        assert a.rchar == pytest.approx(b.rchar, rel=0.01)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("850ms", 0.85), ("4.5s", 4.5), ("1m 2s", 62), ("1h 2m 3s", 3723), ("1d 1h", 90000)],
)
def test_human_durations_read_as_nextflow_prints_them(text, expected):
    assert seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "expected"), [("12 B", 12), ("1.5 GB", 3 << 29), ("2 KB", 2048)])
def test_human_sizes_read_1024_based(text, expected):
    assert size(text) == expected


def test_extra_columns_are_ignored_and_the_process_column_wins_over_the_name():
    fields = [*DEFAULT_FIELDS, "process", "workdir"]
    rows = [Row("ALIGN (sample_1)", 0, 10, 5)]
    (task,) = parse_trace(trace(rows, fields=fields), "extra").tasks
    assert task.process == "ALIGN"
    assert task.duration == 10


def test_a_trace_with_only_the_required_columns_reads_without_times_or_sizes():
    fields = ["name", "status", "duration", "realtime"]
    (task,) = parse_trace(trace([Row("ALIGN (1)", 0, 10, 5)], fields=fields), "few").tasks
    assert (task.process, task.submit, task.rchar, task.end) == ("ALIGN", None, None, None)


def test_a_missing_required_column_is_named():
    fields = [field for field in DEFAULT_FIELDS if field != "realtime"]
    with pytest.raises(TraceError, match=r"missing required column.*realtime"):
        parse_trace(trace(S3_RUN, fields=fields), "t.txt")


def test_a_value_that_is_no_duration_names_its_line():
    text = trace(S3_RUN).replace("1m 2s", "soon")
    with pytest.raises(TraceError, match=r"t.txt, line 2: not a duration: 'soon'"):
        parse_trace(text, "t.txt")


def test_a_dash_is_a_missing_value():
    text = trace([Row("MERGE", 0, 3, 1)]).replace("1 KB", "-")
    (task,) = parse_trace(text, "t").tasks
    assert task.wchar is None


def test_a_completed_task_without_realtime_is_refused():
    text = trace([Row("MERGE", 0, 3, 1)]).replace("\t1s\t", "\t-\t")
    with pytest.raises(TraceError, match="line 2: completed task 'MERGE' without duration"):
        parse_trace(text, "t")
