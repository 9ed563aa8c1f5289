"""wavectl, the command line of wave-proxy.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds its parser
and sets `run=<callable(args) -> int>` as a default. User errors raise CliError: one line on
stderr, a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wave_proxy import __version__


class CliError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    # Imported here: subcommand modules import CliError from this package.
    from wave_proxy.cli import augment, calibrate, layer, serve, token

    parser = argparse.ArgumentParser(prog="wavectl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"wavectl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, layer, augment, token, calibrate):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as exc:
        print(f"wavectl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
