"""HTTPS on the proxy's own port (`--tls-cert`, `--tls-key`), the pair reloaded on SIGHUP.

One SSLContext serves every connection; loading a new pair into it changes what new handshakes
present, while connections already open keep theirs, so a renewed certificate (cert-manager,
certbot) takes effect without dropping a pull in flight.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from wave_proxy.config import ConfigError

log = logging.getLogger("wave_proxy.app")


class ReloadableTls:
    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load()

    def _load(self) -> None:
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot use TLS certificate {self.cert} with key {self.key}: {exc}"
            ) from None

    def reload(self) -> None:
        """On SIGHUP: a pair that does not load is reported and the old one kept."""
        try:
            self._load()
        except ConfigError as exc:
            log.error("TLS reload failed, still serving the previous certificate: %s", exc)
            return
        log.info("TLS certificate reloaded from %s", self.cert)
