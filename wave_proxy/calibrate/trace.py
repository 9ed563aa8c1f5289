"""Nextflow trace files (`trace.txt`): tab-separated, a header of field names, one row a task.

Values come in two forms: the human one (`1m 2s`, `850ms`, `1.5 GB`, `2024-05-01 10:00:00.123`)
and the one `trace.raw = true` writes (milliseconds, bytes, epoch milliseconds). Both are read
to seconds and bytes here; missing values (`-`, empty) become None. Any set of fields is
accepted as long as the ones the comparison needs are there.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

REQUIRED = ("name", "status", "duration", "realtime")
COMPLETED, CACHED = "COMPLETED", "CACHED"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTPE]?B)", re.IGNORECASE)
_SIZE_UNITS = {unit: 1024**power for power, unit in enumerate(("B", "KB", "MB", "GB", "TB", "PB"))}
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


class TraceError(ValueError):
    """The text is not a usable Nextflow trace; the message says why, in one line."""


@dataclass(frozen=True)
class Task:
    """One row of a trace. Times in seconds (submit/complete since the epoch), sizes in bytes."""

    name: str
    process: str
    status: str
    exit: str | None
    submit: float | None
    complete: float | None
    duration: float
    realtime: float
    rchar: int | None = None
    wchar: int | None = None
    peak_rss: int | None = None

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def end(self) -> float | None:
        """When the task completed: the `complete` field, else submit plus duration."""
        if self.complete is not None:
            return self.complete
        return None if self.submit is None else self.submit + self.duration


@dataclass(frozen=True)
class Run:
    """The tasks of one pipeline run, in trace order; `source` names it in messages."""

    source: str
    tasks: tuple[Task, ...]

    @property
    def completed(self) -> list[Task]:
        return [task for task in self.tasks if task.completed]

    @property
    def cached(self) -> list[Task]:
        return [task for task in self.tasks if task.status == CACHED]

    @property
    def failed(self) -> list[Task]:
        """Every task neither completed nor cached (FAILED, ABORTED, ...)."""
        return [task for task in self.tasks if task.status not in (COMPLETED, CACHED)]

    @property
    def processes(self) -> list[str]:
        """Process names in order of first appearance."""
        return list(dict.fromkeys(task.process for task in self.tasks))


def parse_trace(text: str, source: str) -> Run:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise TraceError(f"{source}: empty file, not a Nextflow trace")
    header = [field.strip() for field in lines[0].split("\t")]
    missing = [field for field in REQUIRED if field not in header]
    if missing:
        if len(header) == 1:
            raise TraceError(f"{source}: not a Nextflow trace (no tab-separated header line)")
        raise TraceError(f"{source}: missing required column(s) {', '.join(missing)}")
    tasks = []
    for number, line in enumerate(lines[1:], start=2):
        values = line.split("\t")
        if len(values) != len(header):
            raise TraceError(
                f"{source}, line {number}: {len(values)} values for {len(header)} columns"
            )
        row = {field: _value(value) for field, value in zip(header, values, strict=True)}
        try:
            tasks.append(_task(row))
        except ValueError as exc:
            raise TraceError(f"{source}, line {number}: {exc}") from None
    if not tasks:
        raise TraceError(f"{source}: the trace holds no tasks")
    return Run(source, tuple(tasks))


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text in ("", "-") else text


def _task(row: dict[str, str | None]) -> Task:
    name, status = row["name"], row["status"]
    if not name or not status:
        raise ValueError("a task without name or status")
    duration, realtime = seconds(row["duration"]), seconds(row["realtime"])
    if status.upper() == COMPLETED and (duration is None or realtime is None):
        raise ValueError(f"completed task {name!r} without duration or realtime")
    return Task(
        name=name,
        process=row.get("process") or name.split(" (", 1)[0],
        status=status.upper(),
        exit=row.get("exit"),
        submit=timestamp(row.get("submit")),
        complete=timestamp(row.get("complete")),
        duration=duration or 0.0,
        realtime=realtime or 0.0,
        rchar=size(row.get("rchar")),
        wchar=size(row.get("wchar")),
        peak_rss=size(row.get("peak_rss")),
    )


def seconds(value: str | None) -> float | None:
    """`1h 2m 3s`, `850ms`, `4.5s` (human) or milliseconds (raw) -> seconds."""
    if value is None:
        return None
    if _is_number(value):
        return float(value) / 1000
    parts = _DURATION_PART.findall(value)
    if not parts or _DURATION_PART.sub("", value).strip():
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def size(value: str | None) -> int | None:
    """`1.5 GB`, `850 KB`, `12 B` (human, 1024-based as Nextflow prints) or bytes (raw)."""
    if value is None:
        return None
    if _is_number(value):
        return int(float(value))
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match[1]) * _SIZE_UNITS[match[2].upper()])


def timestamp(value: str | None) -> float | None:
    """`2024-05-01 10:00:00.123` (human, local time as Nextflow prints) or epoch milliseconds."""
    if value is None:
        return None
    if _is_number(value):
        return float(value) / 1000
    for form in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, form).timestamp()
        except ValueError:
            continue
    raise ValueError(f"not a date: {value!r}")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
