"""The lock file: the exact Debian packages (version, sha256) each layer architecture is built from.

Pinning them makes the layer reproducible; `wavectl layer lock` refreshes the pins from the
package index apt currently sees (run `apt-get update` first).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from wave_proxy.layerbuild.arch import Arch
from wave_proxy.layerbuild.errors import LayerBuildError

# The interpreter, its stdlib, and the shared libraries it and the client's modules load:
# libc6 (loader, libc, libm), libssl3 (_ssl, _hashlib), libexpat1 (pyexpat), libffi8 (_ctypes),
# zlib1g (zlib), ca-certificates (a CA bundle for images that have none).
PACKAGES = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libssl3",
    "libexpat1",
    "libffi8",
    "zlib1g",
    "ca-certificates",
)


@dataclass(frozen=True, slots=True)
class PinnedDeb:
    package: str
    version: str
    architecture: str  # the .deb's own: the layer arch, or "all"
    filename: str  # basename in the Debian pool; the name it is cached under
    size: int
    sha256: str

    @property
    def spec(self) -> str:
        """What `apt-get download` takes to fetch exactly this file."""
        return f"{self.package}:{self.architecture}={self.version}"


@dataclass(frozen=True, slots=True)
class Lock:
    distribution: str
    source_date_epoch: int  # mtime of every file in the layer
    packages: dict[str, list[PinnedDeb]]  # by layer architecture, sorted by package name

    def for_arch(self, arch: Arch) -> list[PinnedDeb]:
        try:
            return self.packages[arch.name]
        except KeyError:
            raise LayerBuildError(
                f"the lock file pins no packages for {arch.name}; run `wavectl layer lock`"
            ) from None


def load(path: Path) -> Lock:
    try:
        raw = json.loads(path.read_text())
        return Lock(
            distribution=raw["distribution"],
            source_date_epoch=int(raw["source_date_epoch"]),
            packages={
                arch: [PinnedDeb(**entry) for entry in entries]
                for arch, entries in raw["packages"].items()
            },
        )
    except FileNotFoundError:
        raise LayerBuildError(f"lock file {path} is missing; run `wavectl layer lock`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise LayerBuildError(
            f"lock file {path} is malformed ({exc}); run `wavectl layer lock`"
        ) from exc


def dump(lock: Lock, path: Path) -> None:
    doc = {
        "comment": "Inputs of the Fusion layer. Refresh with `wavectl layer lock`.",
        "distribution": lock.distribution,
        "source_date_epoch": lock.source_date_epoch,
        "packages": {
            arch: [asdict(p) for p in debs] for arch, debs in sorted(lock.packages.items())
        },
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def resolve(arches: list[Arch], previous: Lock | None = None) -> Lock:
    """Pin the candidate version apt sees for every package and architecture.

    The SOURCE_DATE_EPOCH moves only when a pin changes, so re-locking without changes
    keeps the layer byte-identical.
    """
    stanzas = _apt_show([f"{name}:{arch.name}" for arch in arches for name in PACKAGES])
    stanzas += _apt_show(list(PACKAGES))  # the candidates of Architecture: all packages
    packages = {
        arch.name: [_pin(name, arch, stanzas) for name in sorted(PACKAGES)] for arch in arches
    }
    if previous is not None:
        packages = {**previous.packages, **packages}
    unchanged = previous is not None and previous.packages == packages
    epoch = previous.source_date_epoch if unchanged else int(time.time())
    return Lock(distribution=_distribution(), source_date_epoch=epoch, packages=packages)


def _pin(package: str, arch: Arch, stanzas: list[dict[str, str]]) -> PinnedDeb:
    for wanted in (arch.name, "all"):
        for fields in stanzas:
            if fields.get("Package") == package and fields.get("Architecture") == wanted:
                return PinnedDeb(
                    package=package,
                    version=fields["Version"],
                    architecture=wanted,
                    filename=fields["Filename"].rsplit("/", 1)[-1],
                    size=int(fields["Size"]),
                    sha256=fields["SHA256"],
                )
    raise LayerBuildError(
        f"apt knows no {package}:{arch.name}: run "
        f"`dpkg --add-architecture {arch.name} && apt-get update`"
    )


def _apt_show(specs: list[str]) -> list[dict[str, str]]:
    """The candidates' control stanzas; apt silently skips specs it does not know.

    One call for all: each apt-cache start loads the whole package index (about a second).
    """
    cmd = ["apt-cache", "show", "--no-all-versions", *specs]
    result = subprocess.run(cmd, capture_output=True, text=True)
    return [_control_fields(chunk) for chunk in result.stdout.split("\n\n") if chunk.strip()]


def _control_fields(text: str) -> dict[str, str]:
    """A Debian control stanza as a dict (continuation lines dropped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def _distribution() -> str:
    try:
        info = dict(
            line.split("=", 1)
            for line in Path("/etc/os-release").read_text().splitlines()
            if "=" in line
        )
    except OSError:
        return "unknown"
    return f"{info.get('ID', 'unknown')} {info.get('VERSION_CODENAME', '')}".strip()
