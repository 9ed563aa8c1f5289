"""Two runs of one pipeline side by side: per process and in total, S3 staging vs Fusion.

Only completed tasks are measured; failed and cached ones are counted apart and named, since a
cached task did no work in this run and a failed one may have stopped anywhere. The billed time
is the summed `duration` of completed tasks: a task holds its share of an instance from submit
to completion, staging included, which `realtime` (the command alone) leaves out.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from wave_proxy.calibrate.trace import Run, Task, TraceError


@dataclass(frozen=True)
class Stats:
    """The completed tasks of one process (or of a whole run) in one run."""

    tasks: int
    median_duration: float | None  # None without tasks
    total_duration: float
    median_realtime: float | None
    total_realtime: float
    rchar: int | None  # summed, when the trace has the column

    @classmethod
    def of(cls, tasks: list[Task]) -> Stats:
        durations = [task.duration for task in tasks]
        realtimes = [task.realtime for task in tasks]
        rchars = [task.rchar for task in tasks if task.rchar is not None]
        return cls(
            len(tasks),
            statistics.median(durations) if tasks else None,
            sum(durations),
            statistics.median(realtimes) if tasks else None,
            sum(realtimes),
            sum(rchars) if rchars else None,
        )


@dataclass(frozen=True)
class ProcessRow:
    process: str
    s3: Stats
    fusion: Stats


@dataclass(frozen=True)
class Totals:
    s3: Stats
    fusion: Stats
    s3_span: float | None  # wall clock from first submit to last completion, if known
    fusion_span: float | None


@dataclass(frozen=True)
class Apart:
    """Tasks left out of the measurement in one run: their names by kind."""

    failed: tuple[str, ...]
    cached: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    s3: Run
    fusion: Run
    processes: tuple[ProcessRow, ...]
    totals: Totals
    s3_apart: Apart
    fusion_apart: Apart
    price_per_hour: float | None

    def cost(self, billed_seconds: float) -> float | None:
        if self.price_per_hour is None:
            return None
        return billed_seconds / 3600 * self.price_per_hour


def change(before: float | None, after: float | None) -> float | None:
    """The change from `before` to `after` in percent (None when it cannot be said)."""
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before * 100


def compare(s3: Run, fusion: Run, price_per_hour: float | None = None) -> Comparison:
    for run in (s3, fusion):
        if not run.completed:
            raise TraceError(f"{run.source}: no completed task to compare")
    only_s3 = sorted(set(s3.processes) - set(fusion.processes))
    only_fusion = sorted(set(fusion.processes) - set(s3.processes))
    if only_s3 or only_fusion:
        parts = [
            f"only in {run.source}: {', '.join(names)}"
            for run, names in ((s3, only_s3), (fusion, only_fusion))
            if names
        ]
        raise TraceError(f"the traces are of different pipelines ({'; '.join(parts)})")
    rows = tuple(
        ProcessRow(
            process,
            Stats.of([task for task in s3.completed if task.process == process]),
            Stats.of([task for task in fusion.completed if task.process == process]),
        )
        for process in s3.processes
    )
    totals = Totals(Stats.of(s3.completed), Stats.of(fusion.completed), span(s3), span(fusion))
    return Comparison(s3, fusion, rows, totals, apart(s3), apart(fusion), price_per_hour)


def span(run: Run) -> float | None:
    """Seconds from the first submit to the last completion of the run's completed tasks."""
    timed = [task for task in run.completed if task.submit is not None]
    if not timed:
        return None
    return max(task.end for task in timed) - min(task.submit for task in timed)  # type: ignore[type-var,operator]


def apart(run: Run) -> Apart:
    return Apart(
        tuple(f"{task.name} [{task.status}]" for task in run.failed),
        tuple(task.name for task in run.cached),
    )
