"""Who may use the proxy: client address ranges, and refusing to serve private images openly.

`--allow-cidr` admits clients by address before anything else happens (403 DENIED otherwise).
Behind a load balancer the peer is the balancer: `X-Forwarded-For` is believed only when the peer
is a `--trusted-proxy`, and then the client is the right-most address that is not one.

A proxy holding upstream credentials serves private images with them to whoever reaches it, so
it does not start that way without access control unless told on purpose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from wave_proxy.config import ConfigError, Settings
from wave_proxy.failures import RegistryError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = ("/healthz", "/readyz")  # probes come from the node, not from clients


def _address(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _within(ip: Address, networks: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> Address | None:
    """The client: the peer, or (from a trusted proxy) the right-most untrusted forwarded hop."""
    ip = _address(peer or "")
    if ip is None or not _within(ip, trusted):
        return ip
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        forwarded = _address(hop)
        if forwarded is None:
            return None  # a hop we cannot read: admit nobody on its word
        if not _within(forwarded, trusted):
            return forwarded
        ip = forwarded
    return ip


# On a request: admitted by its address, so it needs no login (--allow-cidr with --htpasswd).
ADMITTED_BY_ADDRESS = web.RequestKey("admitted_by_address", bool)


def allow_cidr_middleware(
    allowed: Sequence[Network], trusted: Sequence[Network], others_may_log_in: bool = False
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """403 DENIED outside `allowed`; with `others_may_log_in` (--htpasswd too), addresses inside
    are admitted without a login (mirror clients: dockerd cannot send one) and the others must
    log in."""

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            forwarded = request.headers.getall("X-Forwarded-For", [])
            ip = client_address(request.remote, forwarded, trusted)
            inside = ip is not None and _within(ip, allowed)
            request[ADMITTED_BY_ADDRESS] = inside
            if not inside and not others_may_log_in:
                return RegistryError(
                    403, "DENIED", f"clients from {ip or 'this address'} are not admitted"
                ).response()
        return await handler(request)

    return admit


def check_exposure(settings: Settings, credentials: Mapping[str, object]) -> None:
    """Refuse to serve with upstream credentials and no access control, unless on purpose."""
    if not credentials or settings.allow_anonymous_private:
        return
    if settings.allow_cidr or settings.htpasswd:
        return
    raise ConfigError(
        f"upstream credentials are configured for {', '.join(sorted(credentials))}: anyone who "
        "reaches this proxy would pull private images with them; admit clients with "
        "--htpasswd or --allow-cidr, or pass --allow-anonymous-private to serve them to everyone "
        "on purpose"
    )
