"""Root file systems of the kinds of image the Fusion layer must work in, for `chroot`.

Each holds the native layer unpacked at / and a probe program (showenv.c) as the user's command,
and comes with the environment its image would define.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from wave_proxy.layerbuild import debs, lockfile
from wave_proxy.layerbuild.arch import Arch

PROBE = "/usr/local/bin/showenv"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Runtime libraries under names the bundled interpreter loads; garbage, so using one would fail.
JUNK_LIBS = (
    "libc.so.6",
    "libm.so.6",
    "libz.so.1",
    "libexpat.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
    "libffi.so.8",
    "preload.so",
)
JUNK_MODULE = 'raise SystemExit("imported a module of the image, not of the layer")\n'


@dataclass(slots=True)
class RootFs:
    kind: str
    path: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run argv chrooted into it with exactly the image's environment (or `env`)."""
        return chroot_run(self.path, list(argv), self.env if env is None else env)


def chroot_run(root: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """chroot(2) in the child itself: a chroot(8) binary would be subject to LD_PRELOAD in env."""

    def enter() -> None:
        os.chroot(root)
        os.chdir("/")

    return subprocess.run(argv, env=env, capture_output=True, timeout=120, preexec_fn=enter)


def make(kind: str, path: Path, layer: Path, arch: Arch, probes: dict[str, Path], cache: Path):
    path.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(layer), "-C", str(path)], check=True)
    rootfs = RootFs(kind, path, {"PATH": IMAGE_PATH, "HOME": "/root"})
    _install(probes["static"] if kind != "musl" else probes["musl"], path / PROBE.lstrip("/"))
    if kind == "busybox":
        _busybox(path)
    elif kind == "musl":
        musl = Path(f"/lib/ld-musl-{arch.uname}.so.1")
        _install(musl.resolve(), path / "lib" / musl.name)
    elif kind == "debian":
        _debian(path, arch, cache)
        rootfs.env.update(_misleading_env())
        _junk(path)
    elif kind != "scratch":
        raise ValueError(kind)
    return rootfs


def _install(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _busybox(root: Path) -> None:
    _install(Path(shutil.which("busybox") or "/bin/busybox"), root / "bin/busybox")
    for applet in ("sh", "env", "true", "cat"):
        (root / "bin" / applet).symlink_to("busybox")


def _debian(root: Path, arch: Arch, cache: Path) -> None:
    """A real Debian userland of the same release: glibc, its own python3.11, busybox as sh."""
    pins = lockfile.load(Path(__file__).parents[2] / "layers/debian.lock.json").for_arch(arch)
    wanted = [p for p in pins if p.package != "ca-certificates"]
    debs.unpack(debs.fetch(wanted, cache), root)
    _busybox(root)


def _misleading_env() -> dict[str, str]:
    return {
        "PATH": f"/junk/bin:{IMAGE_PATH}",
        "PYTHONHOME": "/junk",
        "PYTHONPATH": "/junk/py",
        "PYTHONSTARTUP": "/junk/py/startup.py",
        "LD_LIBRARY_PATH": "/junk/lib",
        "LD_PRELOAD": "/junk/lib/preload.so",
    }


def _junk(root: Path) -> None:
    for lib in JUNK_LIBS:
        _write(root / "junk/lib" / lib, "not a shared library\n")
    for module in ("fusion_client/__init__.py", "ssl.py", "encodings/__init__.py", "startup.py"):
        _write(root / "junk/py" / module, JUNK_MODULE)
    for module in ("os.py", "encodings/__init__.py", "site.py"):
        _write(root / "junk/lib/python3.11" / module, JUNK_MODULE)
    _write(root / "junk/bin/python3", "#!/bin/sh\necho junk python\nexit 99\n")
    (root / "junk/bin/python3").chmod(0o755)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
