"""The kinds of image the Fusion layer must work in, pushed to the test upstream once.

- busybox: the static busybox and its applet links, Cmd ["sh"];
- no_command: the same files with neither Entrypoint nor Cmd;
- scratch: one static binary (copy.c: `copy SRC DST`) as Entrypoint, nothing else;
- debian: a real Debian userland (glibc, bash, coreutils and python3.11 from Debian's .debs),
  Cmd ["bash"];
- python: that image plus a second, different Python unpacked under /opt/py, with PYTHONHOME
  pointing at it and PYTHONPATH at a junk `fusion_client` package, which the launcher would
  import if it trusted the image's environment. (Junk that breaks the image's own Python, e.g.
  in LD_LIBRARY_PATH, is tests/layer's business: here that Python must work.)

The .debs are downloaded once with apt-get into .tools/debian-image-debs.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO, need_binary
from tests.support.fusion_layers import DEB_CACHE
from tests.support.images import (
    PATH_ENV,
    ImageSpec,
    Layer,
    Pusher,
    Symlink,
    busybox_layer,
    tar_layer,
)
from tests.support.registry import Registry
from wave_proxy.layerbuild import debs, lockfile
from wave_proxy.layerbuild.arch import Arch

HERE = Path(__file__).parent
IMAGE_DEBS = REPO / ".tools" / "debian-image-debs"
# What bash and coreutils need besides the layer's own pins (libc6, python3.11, ...).
USERLAND = ("bash", "coreutils", "libtinfo6", "libacl1", "libattr1", "libselinux1")
USERLAND += ("libpcre2-8-0", "libgmp10")
PYTHON_PACKAGES = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
PYTHON_HOME = "/opt/py/usr"


@dataclass(frozen=True)
class FusionImages:
    busybox: str  # repository:tag on the upstream (docker.io/...)
    no_command: str
    scratch: str
    debian: str
    python: str


def seed_images(registry: Registry, arch: Arch, work: Path) -> FusionImages:
    pusher = Pusher(registry)
    busybox = ImageSpec((busybox_layer(),), runtime={"Env": [PATH_ENV], "Cmd": ["sh"]})
    pusher.image("fusion/busybox", "1", busybox)
    pusher.image("fusion/nocommand", "1", ImageSpec((busybox_layer(),), {"Env": [PATH_ENV]}))
    scratch = ImageSpec((tar_layer({"copy": _static_copy(work)}),), {"Entrypoint": ["/copy"]})
    pusher.image("fusion/scratch", "1", scratch)
    base = directory_layer(debian_root(arch, work / "debian"))
    pusher.image("fusion/debian", "12", ImageSpec((base,), {"Env": [PATH_ENV], "Cmd": ["bash"]}))
    python = ImageSpec(
        (base, directory_layer(_python_root(arch, work / "python"))),
        {
            "Env": [
                f"PATH={PYTHON_HOME}/bin:{PATH_ENV.removeprefix('PATH=')}",
                f"PYTHONHOME={PYTHON_HOME}",
                "PYTHONPATH=/junk/py",
            ],
            "Cmd": ["python3.11"],
        },
    )
    pusher.image("fusion/python", "3.11", python)
    return FusionImages(
        "fusion/busybox:1",
        "fusion/nocommand:1",
        "fusion/scratch:1",
        "fusion/debian:12",
        "fusion/python:3.11",
    )


def _static_copy(work: Path) -> bytes:
    target = work / "copy"
    subprocess.run(
        [need_binary("gcc"), "-static", "-O2", "-o", str(target), str(HERE / "copy.c")], check=True
    )
    return target.read_bytes()


def debian_root(arch: Arch, root: Path) -> Path:
    pins = lockfile.load(REPO / "layers/debian.lock.json").for_arch(arch)
    wanted = [p for p in pins if p.package != "ca-certificates"]
    debs.unpack([*debs.fetch(wanted, DEB_CACHE), *_downloaded(USERLAND)], root)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp/.keep").write_bytes(b"")
    return root


def _python_root(arch: Arch, root: Path) -> Path:
    """Debian's python3.11 again, under /opt/py: the image's own, different installation."""
    pins = lockfile.load(REPO / "layers/debian.lock.json").for_arch(arch)
    wanted = [p for p in pins if p.package in PYTHON_PACKAGES]
    debs.unpack(debs.fetch(wanted, DEB_CACHE), root / "opt/py")
    junk = root / "junk/py/fusion_client/__init__.py"
    junk.parent.mkdir(parents=True)
    junk.write_text('raise SystemExit("imported fusion_client from the image\'s PYTHONPATH")\n')
    return root


def _downloaded(packages: tuple[str, ...]) -> list[Path]:
    """The host architecture's current .debs of `packages`, fetched once by apt-get."""
    IMAGE_DEBS.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(IMAGE_DEBS.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(
            [need_binary("apt-get"), "download", *missing],
            cwd=IMAGE_DEBS,
            check=True,
            capture_output=True,
        )
    return [next(IMAGE_DEBS.glob(f"{p}_*.deb")) for p in packages]


def directory_layer(root: Path) -> Layer:
    files: dict[str, bytes | Symlink] = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            files[relative] = Symlink(os.readlink(path)) if path.is_symlink() else path.read_bytes()
    return tar_layer(files, compresslevel=1)
