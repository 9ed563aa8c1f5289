"""Fetch the pinned .debs with Debian's own client, verify them, unpack them into a tree."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wave_proxy.layerbuild.errors import LayerBuildError
from wave_proxy.layerbuild.lockfile import PinnedDeb

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchedDeb:
    """A .deb to unpack: the pinned one, or the mirror's current version when the mirror no
    longer has the pinned one (Debian keeps one version per suite)."""

    pinned: PinnedDeb
    path: Path
    version: str

    @property
    def substituted(self) -> bool:
        return self.version != self.pinned.version


def fetch(debs: list[PinnedDeb], cache_dir: Path) -> list[Path]:
    """Return the cached file of every pinned .deb, downloading the missing ones first."""
    return [fetched.path for fetched in fetch_with_fallback(debs, cache_dir)]


def fetch_with_fallback(debs: list[PinnedDeb], cache_dir: Path) -> list[FetchedDeb]:
    """Like fetch, but a version the mirror lacks is replaced by the one it has, with one
    warning naming the package; the caller records what was used."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = [d for d in debs if not _is_valid(cache_dir / d.filename, d)]
    replaced = _download(missing, cache_dir) if missing else {}
    return [replaced.get(d) or FetchedDeb(d, cache_dir / d.filename, d.version) for d in debs]


def unpack(files: list[Path], root: Path) -> None:
    """Extract the data of every .deb into `root` (no maintainer scripts run)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in files:
        _run(["dpkg-deb", "-x", str(deb), str(root)], f"unpack {deb.name}")


def _is_valid(path: Path, deb: PinnedDeb) -> bool:
    return path.is_file() and path.stat().st_size == deb.size and _sha256(path) == deb.sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download(debs: list[PinnedDeb], cache_dir: Path) -> dict[PinnedDeb, FetchedDeb]:
    if shutil.which("apt-get") is None:
        raise LayerBuildError(
            f"apt-get is needed to download {debs[0].filename}; "
            f"or put the pinned .debs in {cache_dir}"
        )
    _enable_foreign_arches({d.architecture for d in debs})
    replaced: dict[PinnedDeb, FetchedDeb] = {}
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        for deb in debs:
            # One call per file: apt-get names downloads after the version (epochs escaped),
            # so a directory of its own is how we know which file is which.
            target = Path(tmp) / deb.package / deb.architecture
            target.mkdir(parents=True)
            try:
                _run([*_APT_DOWNLOAD, deb.spec], f"download {deb.spec}", cwd=target)
            except LayerBuildError as pinned_error:
                replaced[deb] = _download_current(deb, target, cache_dir, pinned_error)
                continue
            (got,) = target.glob("*.deb")
            if not _is_valid(got, deb):
                raise LayerBuildError(
                    f"{got.name} does not match the sha256/size in the lock file; "
                    "the mirror serves different bytes for a pinned version"
                )
            os.replace(got, cache_dir / deb.filename)
    return replaced


_APT_DOWNLOAD = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root"]


def _download_current(
    deb: PinnedDeb, target: Path, cache_dir: Path, pinned_error: LayerBuildError
) -> FetchedDeb:
    """The version the mirror has now, when the pinned one is gone from it."""
    try:
        _run([*_APT_DOWNLOAD, f"{deb.package}:{deb.architecture}"], "download", cwd=target)
    except LayerBuildError:
        raise LayerBuildError(f"{pinned_error}; {_STALE_PIN_HINT}") from None
    (got,) = target.glob("*.deb")
    version = _output(["dpkg-deb", "-f", str(got), "Version"])
    path = cache_dir / got.name
    os.replace(got, path)
    log.warning(
        "%s %s (%s) is no longer on the mirror: using %s instead, recorded next to the layer; "
        "`wavectl layer lock` pins current versions",
        deb.package,
        deb.version,
        deb.architecture,
        version,
    )
    return FetchedDeb(deb, path, version)


_STALE_PIN_HINT = (
    "if the mirror no longer has this version, run `wavectl layer lock` to pin current ones"
)


def _enable_foreign_arches(needed: set[str]) -> None:
    """`dpkg --add-architecture` + `apt-get update` for .deb architectures apt does not know."""
    native = _output(["dpkg", "--print-architecture"])
    known = {native, "all", *_output(["dpkg", "--print-foreign-architectures"]).split()}
    unknown = sorted(needed - known)
    if not unknown:
        return
    if os.geteuid() != 0:
        raise LayerBuildError(
            f"apt cannot fetch {', '.join(unknown)} packages; as root run "
            f"`dpkg --add-architecture {unknown[0]} && apt-get update`"
        )
    for arch in unknown:
        _run(["dpkg", "--add-architecture", arch], f"enable {arch} packages")
    _run(
        ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], "refresh apt's package index"
    )


def _output(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["?"]
        raise LayerBuildError(f"cannot {what}: {last[0]}")
