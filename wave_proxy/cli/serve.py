"""`wavectl serve`: run the registry proxy."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from wave_proxy.cli import CliError
from wave_proxy.config import ConfigError, Settings, env_name, load_settings
from wave_proxy.layerbuild import LayerBuildError
from wave_proxy.server.app import create_app
from wave_proxy.store.layers import LayerFileError
from wave_proxy.store.metadata import MetadataStoreError
from wave_proxy.upstream.auth import DockerConfigError

ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "serve",
        help="run the registry proxy",
        description="Serve upstream images with layers appended, as a registry mirror.",
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help=f"default 0.0.0.0:9090 [{env_name('listen')}]"
    )
    parser.add_argument(
        "--registry",
        action="append",
        metavar="NAME=URL",
        help="an upstream registry (repeatable); default docker.io=https://registry-1.docker.io "
        f"[{env_name('registry')}]",
    )
    parser.add_argument(
        "--registry-auth",
        action="append",
        metavar="NAME=USER:PASSWORD",
        help=f"credentials for an upstream (repeatable) [{env_name('registry_auth')}]",
    )
    parser.add_argument(
        "--docker-config",
        metavar="PATH",
        help=f"docker config.json with upstream credentials [{env_name('docker_config')}]",
    )
    parser.add_argument(
        "--layer",
        action="append",
        metavar="[OS/ARCH=]PATH.tar.gz",
        help="a gzip tar layer appended to every image, or only to one platform's (repeatable); "
        f"replaces the default Fusion layer [{env_name('layer')}]",
    )
    parser.add_argument(
        "--fusion",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append the Fusion layer of each image's architecture and run the image's command "
        "through /usr/bin/fusion (default: on unless --layer is given; the layer is built into "
        f"--fusion-layers or DATA_DIR/fusion-layers when absent) [{env_name('fusion')}]",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help=f"embedded store, default ./var [{env_name('data_dir')}]"
    )
    parser.add_argument(
        "--blob-cache-size",
        metavar="SIZE",
        help="disk space for upstream blobs kept in --data-dir, e.g. 50GiB; 0 disables "
        f"(default 10GiB) [{env_name('blob_cache_size')}]",
    )
    add_api_arguments(parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML or JSON file of these options [{env_name('config')}]",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(
            {
                "listen": args.listen,
                "registry": args.registry,
                "registry_auth": args.registry_auth,
                "docker_config": args.docker_config,
                "layer": args.layer,
                "fusion": args.fusion,
                "data_dir": args.data_dir,
                "blob_cache_size": args.blob_cache_size,
                **{option: getattr(args, option) for option in API_OPTIONS},
            },
            config_file=Path(args.config) if args.config else None,
        )
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


API_OPTIONS = (
    *("store", "advertise_host", "token_ttl", "api_key"),
    *("allow_private_layer_hosts", "fusion_layers"),
)


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the Wave API (POST /v1alpha2/container and friends, /v2/wt/<token>/...)."""
    group = parser.add_argument_group("Wave API")
    group.add_argument(
        "--store",
        metavar="URL",
        help="metadata store: sqlite (default, in --data-dir) or redis://HOST:PORT/DB to share "
        f"tokens and augmented images between replicas [{env_name('store')}]",
    )
    group.add_argument(
        "--advertise-host",
        metavar="HOST[:PORT]",
        help="host in the targetImage of API responses; default: the Host the client used "
        f"[{env_name('advertise_host')}]",
    )
    group.add_argument(
        "--token-ttl",
        metavar="DURATION",
        help=f"lifetime of container tokens, e.g. 36h (default) [{env_name('token_ttl')}]",
    )
    group.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help="require this key (Authorization: Bearer KEY, or Nextflow's tower.accessToken) on "
        f"API calls (repeatable); default: open [{env_name('api_key')}]",
    )
    group.add_argument(
        "--allow-private-layer-hosts",
        action="store_true",
        default=None,
        help="let containerConfig layers be fetched from loopback, link-local and private "
        f"addresses [{env_name('allow_private_layer_hosts')}]",
    )
    group.add_argument(
        "--fusion-layers",
        metavar="DIR",
        help="directory with fusion-<version>-<arch>.tar.gz and .json from `wavectl layer "
        "build` (default: DATA_DIR/fusion-layers, built at start; with --no-fusion, layers/out "
        f"of a source checkout if present) [{env_name('fusion_layers')}]",
    )


async def serve(settings: Settings) -> None:
    runner = web.AppRunner(
        create_app(settings),
        access_log=logging.getLogger("wave_proxy.access"),
        access_log_format=ACCESS_LOG_FORMAT,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        registries = ", ".join(f"{n}={u}" for n, u in settings.registries.items())
        logging.getLogger("wave_proxy").info(
            "listening on http://%s:%d (upstreams: %s; data dir %s)",
            settings.host,
            settings.port,
            registries,
            settings.data_dir,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
