"""`wavectl layer`: build the prebuilt Fusion layer, or refresh the packages it is pinned to."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wave_proxy.cli import CliError
from wave_proxy.layerbuild import (
    ARCHES,
    LayerBuildError,
    LayerInputs,
    build_layers,
    lockfile,
    parse_arches,
)
from wave_proxy.layerbuild.builder import REPO


def default_cache_dir() -> Path:
    """Where downloaded .debs are kept between builds (they are verified on every use)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wave-proxy" / "debs"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "layer",
        help="build the Fusion layer",
        description="Build the prebuilt Fusion layer (client + Python runtime + /usr/bin/fusion).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    all_arches = ",".join(ARCHES)

    build = actions.add_parser(
        "build",
        help="build fusion-<version>-<arch>.tar.gz and its .json descriptor per architecture",
    )
    build.add_argument("--arch", default=all_arches, help=f"comma-separated, default {all_arches}")
    build.add_argument("--out", type=Path, default=REPO / "layers/out", help="output directory")
    build.add_argument(
        "--cache", type=Path, default=default_cache_dir(), help="downloaded .deb cache directory"
    )
    build.set_defaults(run=run_build)

    lock = actions.add_parser(
        "lock", help="pin the current Debian package versions in layers/debian.lock.json"
    )
    lock.add_argument("--arch", default=all_arches, help=f"comma-separated, default {all_arches}")
    lock.set_defaults(run=run_lock)


def run_build(args: argparse.Namespace) -> int:
    try:
        layers = build_layers(parse_arches(args.arch), args.out, args.cache)
    except LayerBuildError as exc:
        raise CliError(str(exc), exit_code=1) from None
    for layer in layers:
        size = layer.gzip_size / 2**20
        print(f"{layer.tarball}  {size:.1f} MiB  {layer.gzip_digest}")
    return 0


def run_lock(args: argparse.Namespace) -> int:
    path = LayerInputs.from_repo().lock_path
    try:
        previous = lockfile.load(path) if path.exists() else None
        lock = lockfile.resolve(parse_arches(args.arch), previous)
    except LayerBuildError as exc:
        raise CliError(str(exc), exit_code=1) from None
    lockfile.dump(lock, path)
    changed = "unchanged" if previous == lock else "updated"
    print(f"{path}: {changed} (SOURCE_DATE_EPOCH {lock.source_date_epoch})")
    return 0
