"""/usr/bin/fusion, the static shim: what it execs, and the environment it hands over.

A probe program stands in for /.fusion/bin/python3, so these tests see exactly the argv and
environment the shim passes to the interpreter (contract section 4).
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.layer.rootfs import chroot_run
from tests.support import need_binary


def parse(output: bytes) -> tuple[list[str], dict[str, str]]:
    args, env = [], {}
    for item in output.decode().split("\0")[:-1]:
        kind, _, value = item.partition(" ")
        if kind == "ARG":
            args.append(value)
        else:
            name, _, val = value.partition("=")
            env[name] = val
    return args, env


@pytest.fixture(scope="module")
def shim_root(tmp_path_factory, layers, native, showenv) -> Path:
    """Only the native shim, with the probe where the interpreter would be."""
    root = tmp_path_factory.mktemp("shim-root")
    with tarfile.open(layers[native.name].tarball) as tar:
        tar.extract("usr/bin/fusion", root)
    probe = root / ".fusion/bin/python3"
    probe.parent.mkdir(parents=True)
    probe.write_bytes(showenv("gcc -static").read_bytes())
    probe.chmod(0o755)
    return root


def run_shim(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return chroot_run(root, ["/usr/bin/fusion", *args], env)


def test_shim_execs_the_bundled_interpreter_isolated_with_the_callers_arguments(shim_root):
    result = run_shim(shim_root, "bash", "/fusion/s3/b/.command.run", "--x", "", env={})
    assert result.returncode == 0, result.stderr
    args, _ = parse(result.stdout)
    assert args == [
        "/.fusion/bin/python3",
        "-I",
        "-m",
        "fusion_client",
        "bash",
        "/fusion/s3/b/.command.run",
        "--x",
        "",
    ]


def test_shim_moves_ld_variables_to_saved_names(shim_root):
    env = {"PATH": "/bin", "LD_PRELOAD": "/lib/a.so b.so", "LD_LIBRARY_PATH": "/x:/y=z"}
    result = run_shim(shim_root, env=env)
    assert result.stderr == b""
    _, seen = parse(result.stdout)
    assert seen == {
        "PATH": "/bin",
        "FUSION_SAVED_LD_PRELOAD": "/lib/a.so b.so",
        "FUSION_SAVED_LD_LIBRARY_PATH": "/x:/y=z",
    }


def test_shim_keeps_empty_ld_values_so_they_can_be_restored_exactly(shim_root):
    _, seen = parse(run_shim(shim_root, env={"LD_PRELOAD": ""}).stdout)
    assert seen == {"FUSION_SAVED_LD_PRELOAD": ""}


def test_shim_drops_stale_saved_values_so_only_its_own_are_restored(shim_root):
    env = {
        "FUSION_SAVED_LD_PRELOAD": "stale",
        "FUSION_SAVED_LD_LIBRARY_PATH": "stale",
        "LD_LIBRARY_PATH": "/fresh",
        "FUSION_SAVED_OTHER": "kept",
    }
    _, seen = parse(run_shim(shim_root, env=env).stdout)
    assert seen == {"FUSION_SAVED_LD_LIBRARY_PATH": "/fresh", "FUSION_SAVED_OTHER": "kept"}


def test_shim_leaves_every_other_variable_untouched_and_in_order(shim_root):
    env = {"A": "1", "LD_PRELOADX": "not moved", "XLD_PRELOAD": "2", "PYTHONHOME": "/junk"}
    _, seen = parse(run_shim(shim_root, env=env).stdout)
    assert list(seen.items()) == list(env.items())


def test_shim_without_the_runtime_fails_with_a_clear_message(tmp_path, shim_root):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/fusion").write_bytes((shim_root / "usr/bin/fusion").read_bytes())
    (tmp_path / "usr/bin/fusion").chmod(0o755)
    result = run_shim(tmp_path, "--version", env={})
    assert result.returncode == 127
    assert result.stderr == (
        b"fusion: cannot start /.fusion/bin/python3: No such file or directory "
        b"(is the Fusion layer complete?)\n"
    )


def test_foreign_architecture_shim_runs_under_qemu(tmp_path, layers, foreign):
    """Without binfmt the emulated shim cannot exec the next binary; its own error shows it ran."""
    qemu = need_binary(f"qemu-{foreign.uname}-static")
    with tarfile.open(layers[foreign.name].tarball) as tar:
        tar.extract("usr/bin/fusion", tmp_path)
    result = subprocess.run(
        [qemu, str(tmp_path / "usr/bin/fusion"), "--version"], capture_output=True, env={}
    )
    assert result.returncode == 127
    assert result.stderr.startswith(b"fusion: cannot start /.fusion/bin/python3")
