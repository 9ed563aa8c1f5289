"""A comparison as text (Markdown tables, for a terminal or bench/RESULTS.md) and as one
self-contained HTML page: the same tables and the timeline chart inlined as SVG, no scripts,
no stylesheets or fonts from anywhere else."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

from wave_proxy.calibrate.compare import Apart, Comparison, Stats, change


@dataclass(frozen=True)
class Table:
    """Rows under a header; `groups` (label, columns spanned) head the header in the page."""

    header: list[str]
    rows: list[list[str]]
    groups: list[tuple[str, int]] = field(default_factory=list)

    def flat_header(self) -> list[str]:
        """One label a column: its group's and its own (`tasks S3`)."""
        if not self.groups:
            return self.header
        over = [group for group, span in self.groups for _ in range(span)]
        return [f"{group} {own}".strip() for group, own in zip(over, self.header, strict=True)]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes}m {rest}s"
    return f"{minutes // 60}h {minutes % 60}m"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def size(value: int | None) -> str:
    if value is None:
        return "n/a"
    if value < 1024:
        return f"{value} B"
    scaled, unit = value / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, larger
    return f"{scaled:.1f} {unit}"


def money(value: float | None) -> str:
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):.4f}" if abs(value) < 1 else f"{sign}${abs(value):.2f}"


def _pair(get: Callable[[Stats], float | None], s3: Stats, fusion: Stats) -> list[str]:
    return [duration(get(s3)), duration(get(fusion)), percent(change(get(s3), get(fusion)))]


def process_table(comparison: Comparison) -> Table:
    measures = ("median duration", "total duration", "median realtime", "total realtime")
    groups = [("process", 1), ("tasks", 2), *((what, 3) for what in measures), ("rchar", 2)]
    header = ["", "S3", "Fusion", *(["S3", "Fusion", "change"] * len(measures)), "S3", "Fusion"]
    rows = []
    for row in comparison.processes:
        s3, fusion = row.s3, row.fusion
        cells = [row.process, str(s3.tasks), str(fusion.tasks)]
        cells += _pair(lambda s: s.median_duration, s3, fusion)
        cells += _pair(lambda s: s.total_duration, s3, fusion)
        cells += _pair(lambda s: s.median_realtime, s3, fusion)
        cells += _pair(lambda s: s.total_realtime, s3, fusion)
        cells += [size(s3.rchar), size(fusion.rchar)]
        rows.append(cells)
    return Table(header, rows, groups)


def totals_table(comparison: Comparison) -> Table:
    totals = comparison.totals
    s3, fusion = totals.s3, totals.fusion
    rows = [
        ["completed tasks", str(s3.tasks), str(fusion.tasks), ""],
        ["billed task time (summed duration)", *_pair(lambda s: s.total_duration, s3, fusion)],
        ["summed realtime (the commands)", *_pair(lambda s: s.total_realtime, s3, fusion)],
        [
            "wall clock (first submit to last completion)",
            duration(totals.s3_span),
            duration(totals.fusion_span),
            percent(change(totals.s3_span, totals.fusion_span)),
        ],
    ]
    s3_cost = comparison.cost(s3.total_duration)
    fusion_cost = comparison.cost(fusion.total_duration)
    if s3_cost is not None and fusion_cost is not None:
        rows.append(
            [
                f"estimated cost at ${comparison.price_per_hour:g}/hour",
                money(s3_cost),
                money(fusion_cost),
                f"{money(fusion_cost - s3_cost)} ({percent(change(s3_cost, fusion_cost))})",
            ]
        )
    return Table(["total", "S3", "Fusion", "change"], rows)


def apart_lines(comparison: Comparison) -> list[str]:
    """One line per run and kind of task left out of the measurement."""
    lines = []
    for label, run, left in (
        ("S3", comparison.s3, comparison.s3_apart),
        ("Fusion", comparison.fusion, comparison.fusion_apart),
    ):
        for kind, names in _kinds(left):
            if names:
                shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
                lines.append(f"{label} ({run.source}): {len(names)} {kind}, not measured: {shown}")
    return lines


def _kinds(left: Apart) -> list[tuple[str, tuple[str, ...]]]:
    return [("failed", left.failed), ("cached", left.cached)]


def markdown(table: Table) -> str:
    header, rows = table.flat_header(), table.rows
    lines = [
        f"| {' | '.join(header)} |",
        f"| {' | '.join(['---'] + ['---:'] * (len(header) - 1))} |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def text_report(comparison: Comparison) -> str:
    parts = [
        f"S3 staging: {comparison.s3.source}\nFusion:     {comparison.fusion.source}",
        "Per process (completed tasks):\n\n" + markdown(process_table(comparison)),
        "Totals:\n\n" + markdown(totals_table(comparison)),
    ]
    left = apart_lines(comparison)
    if left:
        parts.append("\n".join(left))
    return "\n\n".join(parts) + "\n"


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; text-align: center; }
figure { margin: 1em 0; }
svg { max-width: 100%; height: auto; }
"""


def _html_table(table: Table, caption: str) -> str:
    if table.groups:  # two header rows; a group of one unlabelled column spans both
        top, below, column = "", "", 0
        for group, span in table.groups:
            own = table.header[column : column + span]
            if span == 1 and not own[0]:
                top += f'<th rowspan="2">{html.escape(group)}</th>'
            else:
                top += f'<th colspan="{span}">{html.escape(group)}</th>'
                below += "".join(f"<th>{html.escape(label)}</th>" for label in own)
            column += span
        head = f"<tr>{top}</tr><tr>{below}</tr>"
    else:
        head = "<tr>" + "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        f"<thead>{head}</thead><tbody>{body}</tbody></table>"
    )


def html_report(comparison: Comparison) -> str:
    # Imported here: matplotlib takes a second or more to load, which every other wavectl
    # command (they all build the parser that imports this module) would pay for nothing.
    from wave_proxy.calibrate.chart import timeline_svg

    left = "".join(f"<li>{html.escape(line)}</li>" for line in apart_lines(comparison))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Calibration: S3 staging vs Fusion</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Calibration: S3 staging vs Fusion</h1>
<p>S3 staging: <code>{html.escape(comparison.s3.source)}</code><br>
Fusion: <code>{html.escape(comparison.fusion.source)}</code></p>
{_html_table(totals_table(comparison), "Totals")}
{_html_table(process_table(comparison), "Per process (completed tasks)")}
{f"<h2>Not measured</h2><ul>{left}</ul>" if left else ""}
<h2>Timeline</h2>
<p>One lane per task, from submission to completion. Hatched: the share of the task's
<code>duration</code> outside its command (waiting, image pull, staging in and out);
solid: <code>realtime</code>, the command itself.</p>
<figure id="timeline">
{timeline_svg(comparison)}
</figure>
</body>
</html>
"""
