"""Fetch the pinned .debs with Debian's own client, verify them, unpack them into a tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from wave_proxy.layerbuild.errors import LayerBuildError
from wave_proxy.layerbuild.lockfile import PinnedDeb


def fetch(debs: list[PinnedDeb], cache_dir: Path) -> list[Path]:
    """Return the cached file of every pinned .deb, downloading the missing ones first."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = [d for d in debs if not _is_valid(cache_dir / d.filename, d)]
    if missing:
        _download(missing, cache_dir)
    return [cache_dir / d.filename for d in debs]


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


def _download(debs: list[PinnedDeb], cache_dir: Path) -> None:
    if shutil.which("apt-get") is None:
        raise LayerBuildError(
            f"apt-get is needed to download {debs[0].filename}; "
            f"or put the pinned .debs in {cache_dir}"
        )
    _enable_foreign_arches({d.architecture for d in debs})
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        for deb in debs:
            # One call per file: apt-get names downloads after the version (epochs escaped),
            # so a directory of its own is how we know which file is which.
            target = Path(tmp) / deb.package / deb.architecture
            target.mkdir(parents=True)
            cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", deb.spec]
            _run(cmd, f"download {deb.spec}", cwd=target, hint=_STALE_PIN_HINT)
            (got,) = target.glob("*.deb")
            if not _is_valid(got, deb):
                raise LayerBuildError(
                    f"{got.name} does not match the sha256/size in the lock file; "
                    "the mirror serves different bytes for a pinned version"
                )
            os.replace(got, cache_dir / deb.filename)


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


def _run(cmd: list[str], what: str, cwd: Path | None = None, hint: str = "") -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["?"]
        raise LayerBuildError(f"cannot {what}: {last[0]}" + (f"; {hint}" if hint else ""))
