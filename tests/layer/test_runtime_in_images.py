"""The layer in every kind of image: busybox-static, scratch + one static binary, musl, and a
Debian userland whose own PYTHONHOME/PYTHONPATH/LD_LIBRARY_PATH/LD_PRELOAD/PATH mislead.

Each test runs in a chroot of the image with exactly the image's environment.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.layer.rootfs import PROBE
from tests.layer.test_launcher_shim import parse
from tests.support import need_binary

CLIENT_NEEDS = "import ssl, ctypes, xml.etree.ElementTree, mmap, http.client, hashlib, json"
CA_BUNDLE = "/.fusion/etc/ssl/certs/ca-certificates.crt"


def client_modules(client_root: Path) -> list[str]:
    names = []
    for path in sorted((client_root / "fusion_client").rglob("*.py")):
        parts = list(path.relative_to(client_root).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue  # running it is the launcher tests' business
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def without_preload(env: dict[str, str]) -> dict[str, str]:
    """Keeping LD_PRELOAD away from the interpreter is the shim's job, tested with the shim."""
    return {k: v for k, v in env.items() if k != "LD_PRELOAD"}


def test_bundled_interpreter_imports_what_the_client_needs(image):
    result = image.run(
        "/.fusion/bin/python3", "-I", "-c", CLIENT_NEEDS, env=without_preload(image.env)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""


def test_bundled_interpreter_ignores_the_images_python_and_libraries(image):
    code = "import sys, ssl; print(sys.prefix, sys.path, ssl.OPENSSL_VERSION)"
    result = image.run("/.fusion/bin/python3", "-I", "-c", code, env=without_preload(image.env))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith("/.fusion ['/.fusion/lib/python311.zip', '/.fusion/lib/python3.11', ")
    assert "junk" not in out


def test_every_client_module_imports_under_the_stripped_runtime(image, layer_inputs):
    modules = client_modules(layer_inputs.client_root)
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = image.run("/.fusion/bin/python3", "-I", "-c", code, env=without_preload(image.env))
    assert result.returncode == 0, result.stderr.decode()[-3000:]


def test_bundled_ca_bundle_loads_into_an_ssl_context(image):
    code = (
        f"import ssl; c = ssl.create_default_context(cafile={CA_BUNDLE!r}); "
        "print(c.cert_store_stats()['x509_ca'])"
    )
    result = image.run("/.fusion/bin/python3", "-I", "-c", code, env=without_preload(image.env))
    assert result.returncode == 0, result.stderr.decode()
    assert int(result.stdout) > 100


def test_launcher_prints_its_version(image):
    result = image.run("/usr/bin/fusion", "--version")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith("fusion ")
    assert result.stderr == b""


def test_launcher_hands_the_command_exactly_the_images_environment(image):
    result = image.run("/usr/bin/fusion", "--", PROBE, "an arg")
    assert result.returncode == 0, result.stderr.decode()
    args, env = parse(result.stdout)
    assert args == [PROBE, "an arg"]
    assert env == image.env


def test_foreign_interpreter_runs_the_client_under_qemu(layers, foreign, layer_inputs, tmp_path):
    qemu = need_binary(f"qemu-{foreign.uname}-static")
    subprocess.run(
        ["tar", "-xzf", str(layers[foreign.name].tarball), "-C", str(tmp_path)], check=True
    )
    python = str(tmp_path / ".fusion/bin/python3")

    def emulated(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [qemu, "-L", str(tmp_path), python, "-I", *args],
            capture_output=True,
            env={},
            timeout=120,
        )

    modules = [CLIENT_NEEDS.removeprefix("import "), *client_modules(layer_inputs.client_root)]
    imports = emulated("-c", f"import {', '.join(modules)}")
    assert imports.returncode == 0, imports.stderr.decode()
    version = emulated("-m", "fusion_client", "--version")
    assert version.returncode == 0, version.stderr.decode()
    assert version.stdout.startswith(b"fusion ")


@pytest.mark.parametrize("variable", ["LD_PRELOAD", "LD_LIBRARY_PATH"])
def test_launcher_restores_an_ld_variable_set_to_nothing(image, variable):
    env = {**image.env, variable: ""}
    result = image.run("/usr/bin/fusion", "--", PROBE, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert parse(result.stdout)[1] == env
