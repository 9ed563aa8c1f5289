"""Compile layers/shim.c into the static /usr/bin/fusion for one architecture."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from wave_proxy.layerbuild.arch import Arch, elf_machine
from wave_proxy.layerbuild.errors import LayerBuildError

# Static so it runs in images without a libc; stripped, no build id and no build paths inside,
# so the same compiler gives the same bytes.
CFLAGS = ("-static", "-Os", "-s", "-Wall", "-Werror", "-Wl,--build-id=none")


def compile_shim(source: Path, arch: Arch) -> bytes:
    compiler = arch.c_compiler()
    if shutil.which(compiler) is None:
        raise LayerBuildError(
            f"{compiler} is needed to build the {arch.name} launcher; "
            f"install gcc-{arch.triplet} and libc6-dev-{arch.name}-cross (or gcc on {arch.name})"
        )
    with tempfile.TemporaryDirectory(prefix="fusion-shim-") as tmp:
        output = Path(tmp) / "fusion"
        cmd = [
            compiler,
            *CFLAGS,
            f"-ffile-prefix-map={source.parent}=.",
            f"-ffile-prefix-map={tmp}=.",
            "-o",
            str(output),
            str(source),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise LayerBuildError(f"cannot compile {source.name} for {arch.name}: {result.stderr}")
        binary = output.read_bytes()
    if elf_machine(binary) != arch.elf_machine:
        raise LayerBuildError(f"{compiler} did not produce an {arch.name} binary")
    return binary
