"""`wavectl calibrate compare S3_TRACE FUSION_TRACE`: what Fusion changed in a pipeline's run."""

from __future__ import annotations

import argparse
from pathlib import Path

from wave_proxy.calibrate.compare import compare
from wave_proxy.calibrate.report import html_report, text_report
from wave_proxy.calibrate.trace import Run, TraceError, parse_trace
from wave_proxy.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("calibrate", help="compare a pipeline run with S3 staging and Fusion")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "compare",
        help="per-process and total changes between two Nextflow trace files",
        description="Compare the Nextflow trace of a run with S3 staging against one through "
        "Fusion (see calibration/README.md).",
    )
    run.add_argument("s3_trace", metavar="S3_TRACE", type=Path, help="trace.txt of the S3 run")
    run.add_argument(
        "fusion_trace", metavar="FUSION_TRACE", type=Path, help="trace.txt of the Fusion run"
    )
    run.add_argument("--html", metavar="REPORT.html", type=Path, help="also write an HTML report")
    run.add_argument(
        "--price-per-hour",
        metavar="USD",
        type=_price,
        help="instance price, to estimate the cost change of the billed task time",
    )
    run.set_defaults(run=run_compare)


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a price: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a price: {text!r}")
    return value


def _read(path: Path) -> Run:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a Nextflow trace (not text)") from None
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    return parse_trace(text, str(path))


def run_compare(args: argparse.Namespace) -> int:
    try:
        comparison = compare(_read(args.s3_trace), _read(args.fusion_trace), args.price_per_hour)
    except TraceError as exc:
        raise CliError(str(exc)) from None
    print(text_report(comparison), end="")
    if args.html:
        try:
            args.html.write_text(html_report(comparison), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{args.html}: {exc.strerror or exc}") from None
        print(f"\nreport written to {args.html}")
    return 0
