"""FUSION_* environment settings, parsed once at start-up into one immutable object.

Every tunable of the mount lives here so that docs, launcher and tests agree on names and
defaults. Parsing is strict: a malformed value is a clear one-line error, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

MiB = 2**20

_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])I?)?B?\s*$", re.IGNORECASE)


class SettingsError(ValueError):
    """A FUSION_* variable holds a value we cannot use; the message names it."""


def parse_size(text: str) -> int:
    """Bytes from `4096`, `20000M`, `20G`, `1.5g`, `10Gi`, `512MiB` or `2GB`.

    The one size format of the project (wave_proxy's settings use it too): K, M, G and T are
    always powers of 1024, as Nextflow and Fusion mean them; `i`, `B` and `iB` after the unit
    are accepted spellings of the same thing (so `10G` = `10GB` = `10GiB` = 10 * 2**30 bytes)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 20000M or 20G)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "").upper()])


@dataclass(frozen=True, slots=True)
class Settings:
    mount: str = "/fusion"
    cache_location: str = "/tmp"
    cache_size: int | None = None  # None: 80% of the cache file system's free space at start
    chunk_size: int = 1 * MiB  # unit of caching; a random read fetches at most two of them
    fetch_size: int = 16 * MiB  # largest single ranged GET when prefetching runs of chunks
    prefetch_max_chunks: int = 128  # ceiling of the sequential read-ahead window
    fetch_threads: int = 16
    fuse_threads: int = 8
    upload_part_size: int = 8 * MiB
    upload_threads: int = 8
    metadata_ttl: float = 1.0  # seconds the kernel and we trust attributes and listings
    negative_ttl: float = 1.0  # seconds a "no such file" answer is trusted
    write_settle: float = 1.0  # seconds a file rewritten in close/reopen cycles rests before upload
    symlink_probe_max: int = 4096  # listed objects up to this size are HEAD-checked for symlinks
    log_level: str = "INFO"
    log_output: str = "stderr"
    disabled: bool = False  # FUSION_DISABLE=1: run the command without mounting
    work: str | None = None  # FUSION_WORK: the task's work directory (gets .fusion/trace.json)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        reader = _Reader(environ)
        default = cls()
        settings = cls(
            mount=reader.text("FUSION_MOUNT", default.mount),
            cache_location=reader.text(
                "FUSION_CACHE_LOCATION",
                environ.get("AZ_BATCH_TASK_WORKING_DIR") or default.cache_location,
            ),
            cache_size=reader.size("FUSION_CACHE_SIZE", None),
            chunk_size=reader.size("FUSION_CHUNK_SIZE", default.chunk_size),
            fetch_size=reader.size("FUSION_FETCH_SIZE", default.fetch_size),
            prefetch_max_chunks=reader.integer(
                "FUSION_PREFETCH_CHUNKS", default.prefetch_max_chunks
            ),
            fetch_threads=reader.integer("FUSION_FETCH_THREADS", default.fetch_threads),
            fuse_threads=reader.integer("FUSION_FUSE_THREADS", default.fuse_threads),
            upload_part_size=reader.size("FUSION_UPLOAD_PART_SIZE", default.upload_part_size),
            upload_threads=reader.integer("FUSION_UPLOAD_THREADS", default.upload_threads),
            metadata_ttl=reader.seconds("FUSION_METADATA_TTL", default.metadata_ttl),
            negative_ttl=reader.seconds("FUSION_NEGATIVE_TTL", default.negative_ttl),
            write_settle=reader.seconds("FUSION_WRITE_SETTLE", default.write_settle),
            symlink_probe_max=reader.size("FUSION_SYMLINK_PROBE_MAX", default.symlink_probe_max),
            log_level=reader.text("FUSION_LOG_LEVEL", default.log_level).upper(),
            log_output=reader.text("FUSION_LOG_OUTPUT", default.log_output),
            disabled=reader.flag("FUSION_DISABLE"),
            work=reader.text("FUSION_WORK", "") or None,
        )
        settings._validate()
        return settings

    def _validate(self) -> None:
        page = 4096
        if self.chunk_size < page or self.chunk_size % page:
            raise SettingsError("FUSION_CHUNK_SIZE must be a multiple of 4K")
        if self.fetch_size < self.chunk_size:
            raise SettingsError("FUSION_FETCH_SIZE must be at least FUSION_CHUNK_SIZE")
        if self.upload_part_size < 5 * MiB:
            raise SettingsError("FUSION_UPLOAD_PART_SIZE must be at least 5M (an S3 limit)")
        if self.upload_part_size % (256 * 1024):
            raise SettingsError("FUSION_UPLOAD_PART_SIZE must be a multiple of 256K (a GCS limit)")
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "WARN", "ERROR", "OFF"}:
            raise SettingsError(
                f"FUSION_LOG_LEVEL={self.log_level}: use debug, info, warning, error or off"
            )
        if not self.mount.startswith("/"):
            raise SettingsError(f"FUSION_MOUNT={self.mount}: must be an absolute path")


class _Reader:
    """Reads one typed variable at a time and names the variable in every error."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str) -> str:
        value = self.environ.get(name, "").strip()
        return value or default

    def size(self, name: str, default: int | None) -> int | None:
        value = self.environ.get(name, "").strip()
        if not value:
            return default
        try:
            return parse_size(value)
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None

    def integer(self, name: str, default: int) -> int:
        value = self.environ.get(name, "").strip()
        if not value:
            return default
        if not value.isdigit() or int(value) < 1:
            raise SettingsError(f"{name}={value}: must be a positive integer")
        return int(value)

    def seconds(self, name: str, default: float) -> float:
        value = self.environ.get(name, "").strip().removesuffix("s")
        if not value:
            return default
        try:
            seconds = float(value)
        except ValueError:
            raise SettingsError(f"{name}={value}: must be a number of seconds") from None
        if seconds < 0:
            raise SettingsError(f"{name}={value}: must not be negative")
        return seconds

    def flag(self, name: str) -> bool:
        return self.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
