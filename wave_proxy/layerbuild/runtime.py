"""The self-contained Python runtime under /.fusion, assembled from unpacked Debian packages.

Layout in the layer:
    .fusion/bin/python3                  Debian's python3.11, patched: loader and DT_RPATH point
                                         into /.fusion/lib, so neither the image's libc nor a
                                         misleading LD_LIBRARY_PATH can get in the way
    .fusion/lib/<loader>, lib*.so.*      glibc's loader and every library the above needs
    .fusion/lib/python311.zip            the stdlib modules the client needs, precompiled
    .fusion/lib/python3.11/lib-dynload/  the extension modules among them
    .fusion/lib/python3.11/fusion_client the client, precompiled
    .fusion/etc/ssl/certs/ca-certificates.crt   Mozilla's CAs, for images that bring none
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wave_proxy.layerbuild.arch import Arch
from wave_proxy.layerbuild.errors import LayerBuildError
from wave_proxy.layerbuild.tarball import LayerTree

PREFIX = "/.fusion"
PYTHON = f"{PREFIX}/bin/python3"
LIB = f"{PREFIX}/lib"
STDLIB_ZIP = f"{LIB}/python311.zip"
PURELIB = f"{LIB}/python3.11"
DYNLOAD = f"{PURELIB}/lib-dynload"
CA_BUNDLE = f"{PREFIX}/etc/ssl/certs/ca-certificates.crt"

# Shipped whatever the client's sources say today: what its contract promises to use (S3 over
# https with XML bodies, mount(2) through ctypes, an mmap cache), and the codecs that names and
# HTTP headers may need. The client's own imports are added to these by analysis.
BASELINE_MODULES = (
    "ssl",
    "ctypes",
    "xml.etree.ElementTree",
    "mmap",
    "http.client",
    "hashlib",
    "hmac",
    "json",
    "logging",
    "argparse",
    "concurrent.futures.thread",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8",
    "encodings.utf_8_sig",
    "encodings.idna",
    "encodings.cp1252",
)

# Never shipped: tools, tests, UIs and modules whose libraries the layer does not carry. A
# module that falls back when one of these is missing (shutil without bz2, uuid without _uuid)
# keeps working; the import test of the built layer proves the client does.
EXCLUDED_MODULES = (
    "tkinter",
    "_tkinter",
    "turtle",
    "turtledemo",
    "idlelib",
    "test",
    "unittest",
    "doctest",
    "pdb",
    "pydoc",
    "pydoc_data",
    "lib2to3",
    "ensurepip",
    "venv",
    "distutils",
    "curses",
    "_curses",
    "_curses_panel",
    "readline",
    "sqlite3",
    "_sqlite3",
    "dbm",
    "_dbm",
    "_gdbm",
    "bz2",
    "_bz2",
    "lzma",
    "_lzma",
    "_uuid",
    "nis",
    "crypt",
    "_crypt",
    "ossaudiodev",
    "audioop",
    "_ctypes_test",
)

_TOOL = Path(__file__).with_name("stdlib_tool.py")


@dataclass(frozen=True, slots=True)
class Modules:
    """What the analysis chose: arch-independent, computed once per build."""

    stdlib_zip: bytes
    client: dict[str, bytes]  # "fusion_client/x.pyc" -> bytecode
    extensions: tuple[str, ...]  # lib-dynload module names, e.g. "_ssl"


def select_modules(root: Path, arch: Arch, client_root: Path, work: Path) -> Modules:
    """Run the analysis with the unpacked interpreter in `root` (which must run on this host)."""
    stdlib = root / "usr/lib/python3.11"
    request = {
        "client_root": str(client_root),
        "stdlib": str(stdlib),
        "baseline": list(BASELINE_MODULES),
        "excludes": list(EXCLUDED_MODULES),
        "zip_path": str(work / "python311.zip"),
        "zip_location": STDLIB_ZIP,
        "client_out": str(work / "client"),
        "client_location": PURELIB,
    }
    request_path = work / "modules-request.json"
    request_path.write_text(json.dumps(request))
    libs = ":".join(str(root / d) for d in arch.multiarch_dirs)
    cmd = [
        str(root / f"lib/{arch.triplet}/{arch.loader}"),
        "--library-path",
        libs,
        str(root / "usr/bin/python3.11"),
        "-S",
        str(_TOOL),
        str(request_path),
    ]
    # A fixed hash seed: set constants in bytecode are marshalled in hash order.
    env = {"PYTHONHASHSEED": "0", "LC_ALL": "C"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise LayerBuildError(f"selecting the stdlib modules failed:\n{result.stderr[-3000:]}")
    chosen = json.loads(result.stdout)
    if chosen["unresolved"]:
        raise LayerBuildError(
            f"fusion_client imports {', '.join(chosen['unresolved'])}, which the layer's Python "
            "does not ship: the client must stay stdlib-only (see EXCLUDED_MODULES in "
            "wave_proxy/layerbuild/runtime.py)"
        )
    client_dir = work / "client"
    client = {
        path.relative_to(client_dir).as_posix(): path.read_bytes()
        for path in sorted(client_dir.rglob("*.pyc"))
    }
    if "fusion_client/__init__.pyc" not in client:
        raise LayerBuildError(f"no fusion_client package under {client_root}")
    return Modules(
        stdlib_zip=(work / "python311.zip").read_bytes(),
        client=client,
        extensions=tuple(chosen["extensions"]),
    )


def add_runtime(tree: LayerTree, root: Path, arch: Arch, modules: Modules, work: Path) -> None:
    """Put the runtime for `arch`, unpacked in `root`, into the layer."""
    python = root / "usr/bin/python3.11"
    extensions = {
        name: root / f"usr/lib/python3.11/lib-dynload/{name}.cpython-311-{arch.triplet}.so"
        for name in modules.extensions
    }
    for name, path in extensions.items():
        if not path.is_file():
            raise LayerBuildError(f"extension module {name} is missing for {arch.name}")
        tree.add_file(f"{DYNLOAD}/{path.name}", path.read_bytes())
    for soname, path in _library_closure(root, arch, [python, *extensions.values()]).items():
        mode = 0o755 if soname == arch.loader else 0o644
        tree.add_file(f"{LIB}/{soname}", path.read_bytes(), mode)
    tree.add_file(PYTHON, _patched_interpreter(python, arch, work), 0o755)
    tree.add_file(STDLIB_ZIP, modules.stdlib_zip)
    for rel, code in modules.client.items():
        tree.add_file(f"{PURELIB}/{rel}", code)
    tree.add_file(CA_BUNDLE, _ca_bundle(root))


def _patched_interpreter(python: Path, arch: Arch, work: Path) -> bytes:
    if shutil.which("patchelf") is None:
        raise LayerBuildError("patchelf is needed to build the layer; apt-get install patchelf")
    patched = work / f"python3-{arch.name}"
    shutil.copyfile(python, patched)
    cmd = ["patchelf", "--set-interpreter", f"{LIB}/{arch.loader}", "--force-rpath"]
    _run([*cmd, "--set-rpath", LIB, str(patched)], f"patch {python.name} for {arch.name}")
    return patched.read_bytes()


def _library_closure(root: Path, arch: Arch, elves: list[Path]) -> dict[str, Path]:
    """Every shared library the given ELF files need, transitively: soname -> file in root."""
    found: dict[str, Path] = {}
    queue = list(elves)
    while queue:
        needed = _run(["patchelf", "--print-needed", str(queue.pop())], "read ELF dependencies")
        for soname in needed.split():
            if soname not in found:
                found[soname] = _find_library(root, arch, soname)
                queue.append(found[soname])
    return dict(sorted(found.items()))


def _find_library(root: Path, arch: Arch, soname: str) -> Path:
    for folder in arch.multiarch_dirs:
        candidate = root / folder / soname
        if candidate.exists() or candidate.is_symlink():
            return _resolve_in(root, candidate)
    raise LayerBuildError(
        f"{soname} is needed for {arch.name} but no pinned package provides it; add its package "
        "to PACKAGES in wave_proxy/layerbuild/lockfile.py and run `wavectl layer lock`"
    )


def _resolve_in(root: Path, path: Path) -> Path:
    """Follow symlinks as if `root` were `/` (absolute targets stay inside it)."""
    for _ in range(16):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        path = root / target.lstrip("/") if target.startswith("/") else path.parent / target
    raise LayerBuildError(f"too many symbolic links at {path}")


def _ca_bundle(root: Path) -> bytes:
    certs = sorted((root / "usr/share/ca-certificates/mozilla").glob("*.crt"))
    if not certs:
        raise LayerBuildError("the ca-certificates package brought no certificates")
    return b"".join(c.read_bytes().rstrip(b"\n") + b"\n" for c in certs)


def _run(cmd: list[str], what: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise LayerBuildError(f"cannot {what}: {result.stderr.strip()}")
    return result.stdout
