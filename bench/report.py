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


def median_seconds(
    action: Callable[[], object], repeat: int, before: Callable[[], object] = lambda: None
) -> float:
    """Median wall time of `action` over `repeat` runs; `before` runs untimed ahead of each."""
    samples = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


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
