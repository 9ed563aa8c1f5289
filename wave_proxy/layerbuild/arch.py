"""The CPU architectures the Fusion layer is built for, and what differs between them."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Literal, overload

from wave_proxy.layerbuild.errors import LayerBuildError


@dataclass(frozen=True, slots=True)
class Arch:
    name: str  # Debian and OCI name
    triplet: str  # Debian multiarch directory and cross-compiler prefix
    loader: str  # file name of glibc's dynamic loader
    elf_machine: int  # e_machine of its ELF files
    uname: str  # platform.machine() on such a host

    @property
    def multiarch_dirs(self) -> tuple[str, ...]:
        """Where Debian packages put this architecture's shared libraries."""
        return (f"lib/{self.triplet}", f"usr/lib/{self.triplet}")

    def c_compiler(self) -> str:
        """The compiler that targets this architecture from the build host."""
        return "gcc" if platform.machine() == self.uname else f"{self.triplet}-gcc"


AMD64 = Arch("amd64", "x86_64-linux-gnu", "ld-linux-x86-64.so.2", 62, "x86_64")
ARM64 = Arch("arm64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1", 183, "aarch64")
ARCHES = {a.name: a for a in (AMD64, ARM64)}


def parse_arches(text: str) -> list[Arch]:
    """Parse "amd64,arm64" into [AMD64, ARM64]; LayerBuildError names unknown ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARCHES]
    if unknown or not names:
        raise LayerBuildError(
            f"unknown architecture {', '.join(unknown) or repr(text)}; "
            f"choose from {', '.join(ARCHES)}"
        )
    return [ARCHES[n] for n in dict.fromkeys(names)]


@overload
def host_arch(strict: Literal[True] = True) -> Arch: ...
@overload
def host_arch(strict: Literal[False]) -> Arch | None: ...
def host_arch(strict: bool = True) -> Arch | None:
    """The architecture of this machine, whose runtime can run build tools natively.

    On other machines: LayerBuildError, or None when not `strict`.
    """
    for arch in ARCHES.values():
        if arch.uname == platform.machine():
            return arch
    if strict:
        raise LayerBuildError(
            f"cannot build the Fusion layer on a {platform.machine()} host (need x86_64 or aarch64)"
        )
    return None


def elf_machine(data: bytes) -> int | None:
    """e_machine of a little-endian ELF file's header, or None if `data` is not ELF."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    return int.from_bytes(data[18:20], "little")
