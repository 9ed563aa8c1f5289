"""`wavectl token show|delete TOKEN`: look at or revoke a container token."""

from __future__ import annotations

import argparse

from wave_proxy.cli import CliError
from wave_proxy.cli.augment import add_endpoint_arguments, print_output
from wave_proxy.cli.wave_client import WaveClient, WaveClientError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("token", help="show or delete a container token")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="what a token serves and until when")
    show.add_argument("token", metavar="TOKEN")
    add_endpoint_arguments(show)
    show.set_defaults(run=run_show)
    delete = actions.add_parser("delete", help="revoke a token: its targetImage stops working")
    delete.add_argument("token", metavar="TOKEN")
    add_endpoint_arguments(delete)
    delete.set_defaults(run=run_delete)


def run_show(args: argparse.Namespace) -> int:
    try:
        described = WaveClient(args.endpoint, args.api_key).describe(args.token)
    except WaveClientError as exc:
        raise CliError(str(exc), exit_code=1) from None
    print_output(described, args.output or "json")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    try:
        WaveClient(args.endpoint, args.api_key).delete(args.token)
    except WaveClientError as exc:
        raise CliError(str(exc), exit_code=1) from None
    print(f"deleted {args.token}")
    return 0
