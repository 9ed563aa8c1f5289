"""A Debian 12 base image for `docker build`, made with debootstrap from Debian's mirror (no
container registry needed), cached under .tools/debian-base so only the first run pays."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from tests.support import REPO, need_binary

CACHE = REPO / ".tools" / "debian-base"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")


def base_tarball() -> Path:
    """The root file system as a tar, for `docker import`."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {PACKAGES}".encode()).hexdigest()[:12]
    tarball = CACHE / f"{SUITE}-{key}.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time per checkout
        if not tarball.is_file():
            _debootstrap(tarball)
    return tarball


def _debootstrap(tarball: Path) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".build-") as tmp:
        root = Path(tmp) / "root"
        argv = [need_binary("debootstrap"), "--variant=minbase"]
        argv += [f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=1500)
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr}")
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        os.replace(partial, tarball)
