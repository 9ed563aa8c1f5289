"""Nextflow trace files written the way Nextflow writes them, in its human and raw forms."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DEFAULT_FIELDS = ["task_id", "hash", "native_id", "name", "status", "exit", "submit"]
DEFAULT_FIELDS += ["duration", "realtime", "%cpu", "peak_rss", "peak_vmem", "rchar", "wchar"]
T0 = dt.datetime(2024, 5, 1, 10, 0, 0).timestamp()


@dataclass(frozen=True)
class Row:
    name: str
    submit: float  # seconds after T0
    duration: float  # seconds
    realtime: float
    status: str = "COMPLETED"
    rchar: int = 20 << 20


def human_duration(seconds: float) -> str:
    """As Nextflow's Duration prints: `850ms`, `4.5s`, `1m 2s`, `1h 2m 3s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h " if hours else "") + f"{minutes}m {rest}s"


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError


def trace(rows: list[Row], raw: bool = False, fields: list[str] | None = None) -> str:
    fields = fields or DEFAULT_FIELDS
    lines = ["\t".join(fields)]
    for number, row in enumerate(rows, start=1):
        submit = T0 + row.submit
        values = {
            "task_id": str(number),
            "hash": f"{number:02x}/abcdef",
            "native_id": f"job-{number}",
            "name": row.name,
            "status": row.status,
            "exit": "0" if row.status == "COMPLETED" else "1",
            "submit": str(round(submit * 1000))
            if raw
            else dt.datetime.fromtimestamp(submit).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            "duration": str(round(row.duration * 1000)) if raw else human_duration(row.duration),
            "realtime": str(round(row.realtime * 1000)) if raw else human_duration(row.realtime),
            "%cpu": "95.0" if raw else "95.0%",
            "peak_rss": str(50 << 20) if raw else "50 MB",
            "peak_vmem": str(100 << 20) if raw else "100 MB",
            "rchar": str(row.rchar) if raw else human_size(row.rchar),
            "wchar": "1024" if raw else "1 KB",
            "process": row.name.split(" (")[0],
            "workdir": f"s3://bucket/work/{number:02x}/abcdef",
        }
        lines.append("\t".join(values[field] for field in fields))
    return "\n".join(lines) + "\n"


S3_RUN = [
    Row("MAKE_INPUT", 0, 62, 40),
    Row("REGION (1)", 65, 30, 5.2),
    Row("REGION (2)", 65.5, 31, 5.0),
    Row("REGION (3)", 66, 29, 5.4),
    Row("MERGE", 100, 12, 0.85),
]
FUSION_RUN = [
    Row("MAKE_INPUT", 0, 50, 41),
    Row("REGION (1)", 52, 9, 6),
    Row("REGION (2)", 52.2, 9.5, 6.1),
    Row("REGION (3)", 52.4, 9.2, 6.2),
    Row("MERGE", 63, 3, 1),
]
