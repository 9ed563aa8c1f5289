"""Measurements and the results table every benchmark suite prints."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """One metric for the product (`ours`) next to the same metric for a peer (`theirs`).

    `better` says which direction wins ("lower" for durations, "higher" for rates); `target`
    is the ratio ours/theirs we aim for (a ceiling for "lower", a floor for "higher").
    """

    name: str
    unit: str
    ours: float
    theirs: float
    peer: str
    better: str
    target: float

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else float("inf")

    @property
    def meets_target(self) -> bool:
        return self.ratio <= self.target if self.better == "lower" else self.ratio >= self.target


@dataclass(frozen=True)
class Timed:
    """Something to time, with untimed preparation (`before`) ahead of every run."""

    action: Callable[[], object]
    before: Callable[[], object] = lambda: None


def interleaved_medians(contenders: dict[str, Timed], repeat: int) -> dict[str, float]:
    """Median wall time of each contender over `repeat` rounds, the contenders taking turns
    within a round, so that load drifting on a shared machine weighs on all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, timed in contenders.items():
            timed.before()
            start = time.perf_counter()
            timed.action()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def table(comparisons: list[Comparison]) -> str:
    """A Markdown table, so the output can be pasted into bench/RESULTS.md as is."""
    lines = [
        "| metric | wave-proxy | peer | ratio | target | met |",
        "| --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for c in comparisons:
        sign = "<=" if c.better == "lower" else ">="
        lines.append(
            f"| {c.name} | {c.ours:.2f} {c.unit} | {c.theirs:.2f} {c.unit} ({c.peer}) "
            f"| {c.ratio:.2f} | {sign} {c.target:.2f} | {'yes' if c.meets_target else 'NO'} |"
        )
    return "\n".join(lines)
