"""`wavectl serve`: run the registry proxy."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from wave_proxy.app.logs import configure_logging
from wave_proxy.app.serving import serve
from wave_proxy.cli import CliError
from wave_proxy.config import OPTIONS, ConfigError, Option, Settings, env_name, load_settings
from wave_proxy.layerbuild import LayerBuildError
from wave_proxy.store.layers import LayerFileError
from wave_proxy.store.metadata import MetadataStoreError
from wave_proxy.upstream.auth import DockerConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "serve",
        help="run the registry proxy",
        description="Serve upstream images with layers appended, as a registry mirror and "
        "through the Wave API. Every option is also an environment variable and a config key.",
    )
    groups = {"proxy": parser}
    for option in OPTIONS:
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        add_option(groups[option.group], option)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML or JSON file of these options [{env_name('config')}]",
    )
    parser.set_defaults(run=run)


def add_option(parser: argparse._ActionsContainer, option: Option) -> None:
    """The option's flag; a boolean gets --x/--no-x, so the command line overrides either way."""
    default = f" (default {option.default})" if option.default is not None else ""
    repeat = " (repeatable)" if option.repeat else ""
    help_text = f"{option.help}{default}{repeat} [{option.env}]".replace("%", "%%")
    if option.boolean:
        parser.add_argument(
            option.flag, dest=option.key, action=argparse.BooleanOptionalAction, help=help_text
        )
        return
    parser.add_argument(
        option.flag,
        dest=option.key,
        metavar=option.metavar,
        action="append" if option.repeat else "store",
        help=help_text,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        configure_logging(settings.log_level, settings.log_format)
        asyncio.run(serve(settings))
    except LayerBuildError as exc:
        raise CliError(f"cannot provide the Fusion layer: {exc}", exit_code=1) from None
    except (
        ConfigError,
        LayerFileError,
        DockerConfigError,
        MetadataStoreError,  # includes an unreachable Redis
    ) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot serve: {exc.strerror or exc}", exit_code=1) from None
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    """The command line's options over the environment's and the config file's."""
    cli = {option.key: getattr(args, option.key) for option in OPTIONS}
    return load_settings(cli, config_file=Path(args.config) if args.config else None)
