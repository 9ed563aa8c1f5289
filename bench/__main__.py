"""Run benchmark suites and print one table of medians and ratios (`make bench`).

A suite is a module in bench/ with `run(repeat: int) -> list[Comparison]`; register it in
SUITES below. Bench code may reuse the test peers in tests/support.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform

from bench.report import Comparison, table

SUITES = {
    "proxy": "bench.proxy",
    "fusion": "bench.fusion",
    "startup": "bench.startup",
    "fio": "bench.fio",
    "pipeline": "bench.pipeline",
    "security": "bench.security",
    "smallfiles": "bench.smallfiles",
    "fleet": "bench.fleet",
    "clouds": "bench.clouds",
}


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"default: all of {', '.join(SUITES)}"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--size-mib", type=int, default=1024, help="fusion, fio: large-file size")
    parser.add_argument(
        "--cloud-size-mib",
        type=int,
        default=256,
        help="clouds: large-file size (fake-gcs-server's resumable uploads slow down on big files)",
    )
    parser.add_argument("--store", choices=("s3", "gs", "az", "all"), default="all", help="clouds")
    args = parser.parse_args()
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(sorted(unknown))}; known: {', '.join(SUITES)}")
    comparisons: list[Comparison] = []
    for name in args.suites or SUITES:
        print(f"bench: running {name} (repeat={args.repeat}) ...", flush=True)
        options = {"size_mib": args.size_mib} if name in ("fusion", "fio") else {}
        if name == "clouds":
            stores = ("s3", "gs", "az") if args.store == "all" else (args.store,)
            options = {"size_mib": args.cloud_size_mib, "stores": stores}
        comparisons += importlib.import_module(SUITES[name]).run(args.repeat, **options)
    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}\n")
    print(table(comparisons))
    missed = [c.name for c in comparisons if not c.meets_target]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
