"""The timeline of both runs as SVG: one lane per task, submit to completion.

A Nextflow trace does not say when within a task its staging happened, only how long the
command ran (`realtime`) of the whole (`duration`). So each bar is split into the two shares:
the hatched part is `duration - realtime` (waiting, image pull, staging in and out), the solid
part the command itself. Failed tasks are outlined in red; cached tasks did no work and are
not drawn.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("svg")  # no display, and nothing but the SVG backend is needed

from matplotlib import pyplot
from matplotlib.patches import Patch

from wave_proxy.calibrate.compare import Comparison
from wave_proxy.calibrate.trace import CACHED, Run

COLOURS = {"S3 staging": "#d9822b", "Fusion": "#2b7bb9"}
LANE_INCHES = 0.16
SVG_METADATA = ("Creator", "Date", "Format", "Type")


def timeline_svg(comparison: Comparison) -> str:
    runs = {"S3 staging": comparison.s3, "Fusion": comparison.fusion}
    lanes = {label: _drawn(run) for label, run in runs.items()}
    heights = [max(len(tasks), 1) for tasks in lanes.values()]
    figure, axes = pyplot.subplots(
        2,
        1,
        sharex=True,
        figsize=(10, 1.6 + LANE_INCHES * sum(heights)),
        gridspec_kw={"height_ratios": heights},
    )
    try:
        for axis, (label, run) in zip(axes, runs.items(), strict=True):
            _draw_run(axis, label, run, lanes[label])
        axes[-1].set_xlabel("seconds since the run's first task was submitted")
        legend = [
            Patch(facecolor="#bbbbbb", hatch="///", edgecolor="#666666",
                  label="duration - realtime: waiting, pull, staging"),
            Patch(facecolor="#555555", label="realtime: the command"),
        ]  # fmt: skip
        if comparison.s3.failed or comparison.fusion.failed:
            legend.append(Patch(facecolor="white", edgecolor="#c0392b", label="failed task"))
        figure.legend(
            handles=legend,
            loc="upper center",
            ncol=len(legend),
            frameon=False,
            fontsize=8,
        )  # fmt: skip
        figure.tight_layout(rect=(0, 0, 1, 0.97))
        buffer = io.StringIO()
        # No metadata block: its RDF namespaces and creator link are URLs a reader may not expect.
        figure.savefig(buffer, format="svg", metadata=dict.fromkeys(SVG_METADATA))
    finally:
        pyplot.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # the page embeds it: no XML prolog or DOCTYPE


def _drawn(run: Run) -> list:
    return [t for t in run.tasks if t.status != CACHED and t.submit is not None]


def _draw_run(axis: pyplot.Axes, label: str, run: Run, tasks: list) -> None:
    colour = COLOURS[label]
    axis.set_title(f"{label}: {run.source}", loc="left", fontsize=9)
    if not tasks:
        axis.text(0.5, 0.5, "no submit times in this trace", ha="center", transform=axis.transAxes)
        axis.set_yticks([])
        return
    origin = min(task.submit for task in tasks)
    for lane, task in enumerate(tasks):
        start = task.submit - origin
        overhead = max(task.duration - task.realtime, 0.0)
        failed = task in run.failed
        edge = {"edgecolor": "#c0392b", "linewidth": 1.2} if failed else {"linewidth": 0}
        axis.barh(lane, overhead, left=start, height=0.7, color=colour, alpha=0.35,
                  hatch="///", **edge)  # fmt: skip
        axis.barh(lane, task.duration - overhead, left=start + overhead, height=0.7,
                  color=colour, **edge)  # fmt: skip
    axis.set_yticks(range(len(tasks)), [task.name for task in tasks], fontsize=6)
    axis.set_ylim(len(tasks) - 0.5, -0.5)
    axis.grid(axis="x", linewidth=0.3)
