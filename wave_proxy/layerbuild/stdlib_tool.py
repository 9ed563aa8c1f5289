"""Run BY THE BUNDLED INTERPRETER during a build: pick the stdlib the client needs, precompile it.

Running inside the layer's own Python 3.11 means its builtin-module list decides what is an
extension file, and the bytecode is exactly what that interpreter loads. Stdlib only: this file
is executed by an interpreter that has nothing else.

The stdlib goes into one zip (fewer file-system lookups at start-up); the client goes into a tree
of .pyc files, since zipimport cannot import namespace packages and the client may use them.

Usage: python3.11 -S stdlib_tool.py REQUEST.json   (prints a JSON result on stdout)
REQUEST: {"client_root": dir holding fusion_client/, "stdlib": .../lib/python3.11,
          "baseline": [module names always shipped], "excludes": [module names never shipped],
          "zip_path": output zip, "zip_location": the zip's path in the layer,
          "client_out": output dir for fusion_client/, "client_location": its path in the layer}
RESULT:  {"extensions": [module names found as lib-dynload files],
          "unresolved": [client imports that the shipped stdlib does not have]}
"""

import contextlib
import json
import modulefinder
import os
import py_compile
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from types import CodeType

CLIENT = "fusion_client"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: fixed, so reproducible


def client_sources(client_root: str) -> dict[str, str]:
    """Every .py file of the client package, relative to client_root, in a stable order."""
    found = []
    for folder, dirs, files in os.walk(os.path.join(client_root, CLIENT)):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        found += [os.path.join(folder, name) for name in sorted(files) if name.endswith(".py")]
    return {os.path.relpath(path, client_root): path for path in found}


def absolute_imports(code: CodeType) -> Iterator[tuple[str, list[str] | None]]:
    """(name, fromlist) of every absolute import in a code object and the code nested in it."""
    for kind, args in modulefinder.ModuleFinder().scan_opcodes(code):
        if kind == "absolute_import":
            fromlist, name = args
            yield name, fromlist
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from absolute_imports(const)


def stdlib_needed(
    request: dict, client_files: list[str]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Stdlib modules imported, transitively, by the baseline and by every client file.

    The client's own imports (relative, or of fusion_client) need no resolving: the whole
    package is shipped. Its other imports must resolve in the shipped stdlib, or they are
    reported (the client must stay stdlib-only); inside the stdlib, imports that fail to
    resolve are optional ones and are left out, as modulefinder does.
    """
    stdlib = request["stdlib"]
    dynload = os.path.join(stdlib, "lib-dynload")
    finder = modulefinder.ModuleFinder(path=[stdlib, dynload], excludes=request["excludes"])
    for name in request["baseline"]:
        finder.import_hook(name)
    unresolved: set[str] = set()
    for path in client_files:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
        for name, fromlist in absolute_imports(code):
            if name.split(".")[0] == CLIENT:
                continue
            try:
                finder.import_hook(name)
            except ImportError:
                unresolved.add(name)
                continue
            for item in fromlist or ():
                # `from a import b`: b may be a submodule to ship, or just a name in a.
                with contextlib.suppress(ImportError):
                    finder.import_hook(name, None, [item])
    sources: dict[str, str] = {}
    extensions: list[str] = []
    for name, module in finder.modules.items():
        path = module.__file__
        if path is None:
            continue  # compiled into the interpreter
        if path.endswith(".py"):
            sources[os.path.relpath(path, stdlib)] = path
        elif os.path.dirname(path) == dynload:
            extensions.append(name)
    return sources, sorted(extensions), sorted(unresolved)


def compile_source(source: str, location: str) -> bytes:
    """Unchecked-hash bytecode: no mtimes inside, never re-validated against a source."""
    with tempfile.TemporaryDirectory() as tmp:
        compiled = os.path.join(tmp, "module.pyc")
        py_compile.compile(
            source,
            cfile=compiled,
            dfile=location,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        with open(compiled, "rb") as f:
            return f.read()


def write_zip(sources: dict[str, str], zip_path: str, zip_location: str) -> None:
    """Stored uncompressed: the layer's gzip compresses the whole better than per-file deflate."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for rel in sorted(sources):
            info = zipfile.ZipInfo(rel[:-3] + ".pyc", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            code = compile_source(sources[rel], f"{zip_location}/{rel}")
            archive.writestr(info, code, compress_type=zipfile.ZIP_STORED)


def write_tree(sources: dict[str, str], out_dir: str, location: str) -> None:
    for rel in sorted(sources):
        target = os.path.join(out_dir, rel[:-3] + ".pyc")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(compile_source(sources[rel], f"{location}/{rel}"))


def main(request_path: str) -> None:
    with open(request_path) as f:
        request = json.load(f)
    client = client_sources(request["client_root"])
    sources, extensions, unresolved = stdlib_needed(request, list(client.values()))
    write_zip(sources, request["zip_path"], request["zip_location"])
    write_tree(client, request["client_out"], request["client_location"])
    json.dump({"extensions": extensions, "unresolved": unresolved}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
