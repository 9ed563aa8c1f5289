"""Every image pulled through the proxy (no --layer: the Fusion default) gains a working /fusion,
run by a real Docker daemon against s3rver, and otherwise behaves as before."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.fusion.images import PYTHON_HOME, FusionImages
from tests.support import wait_until
from tests.support.dockerd import Dockerd
from tests.support.s3servers import S3Server

pytestmark = pytest.mark.timeout(900)

FUSE = ("--device", "/dev/fuse", "--cap-add", "SYS_ADMIN")


def docker_run(
    docker: Dockerd, s3: S3Server, image: str, *args: str, fuse: bool = True, options: tuple = ()
) -> subprocess.CompletedProcess[str]:
    env = [arg for item in s3.env().items() for arg in ("-e", "=".join(item))]
    return docker.cli(
        "run", "--rm", "--network", "host", *(FUSE if fuse else ()), *env, *options, image, *args,
        check=False,
    )  # fmt: skip


def copy_command(kind: str, source: str, target: str) -> list[str]:
    """How each kind of image copies a file: its own shell, binary or interpreter."""
    return {
        "busybox": ["sh", "-c", f"cat {source} > {target}"],
        "scratch": [source, target],  # the Entrypoint is `copy`
        "debian": ["bash", "-c", f"cat {source} > {target}"],
        "python": [
            "python3.11",
            "-c",
            f"import shutil, sys; shutil.copyfile({source!r}, {target!r}); print(sys.prefix)",
        ],
    }[kind]


@pytest.mark.parametrize("kind", ["busybox", "scratch", "debian", "python"])
def test_a_file_copied_inside_fusion_arrives_in_s3_byte_identical(
    kind: str, docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    bucket = s3rver.new_bucket(kind)
    client = s3rver.boto3_client()
    data = os.urandom(3 << 20)
    client.put_object(Bucket=bucket, Key="in.bin", Body=data)
    fusion = f"/fusion/s3/{bucket}"
    command = copy_command(kind, f"{fusion}/in.bin", f"{fusion}/out.bin")
    run = docker_run(docker, s3rver, getattr(images, kind), *command)
    assert run.returncode == 0, run.stdout + run.stderr
    assert client.get_object(Bucket=bucket, Key="out.bin")["Body"].read() == data
    if kind == "python":  # the image's own interpreter, found through its own PYTHONHOME
        assert run.stdout.strip() == PYTHON_HOME


def test_the_command_exit_status_passes_through(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    run = docker_run(docker, s3rver, images.busybox, "sh", "-c", "exit 7")
    assert run.returncode == 7, run.stderr


def test_arguments_that_begin_with_a_dash_reach_the_command_untouched(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    script = 'printf "%s\\n" "$@"'
    run = docker_run(docker, s3rver, images.busybox, "sh", "-c", script, "sh", "--", "--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["--", "--version"]


def test_docker_stop_delivers_sigterm_to_the_command_and_saves_what_it_writes(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    bucket = s3rver.new_bucket("stop")
    script = (
        f'trap "echo got TERM > /fusion/s3/{bucket}/signal.txt; exit 3" TERM; '
        "echo ready; while true; do sleep 0.1; done"
    )
    env = [arg for item in s3rver.env().items() for arg in ("-e", "=".join(item))]
    started = docker.cli(
        "run", "-d", "--network", "host", *FUSE, *env, images.busybox, "sh", "-c", script
    )  # fmt: skip
    container = started.stdout.strip()
    try:
        wait_until(
            lambda: "ready" in docker.cli("logs", container).stdout, timeout=60, what="ready"
        )
        docker.cli("stop", "-t", "30", container)
        state = json.loads(docker.cli("inspect", container).stdout)[0]["State"]
    finally:
        docker.cli("rm", "-f", container, check=False)
    assert state["ExitCode"] == 3
    saved = s3rver.boto3_client().get_object(Bucket=bucket, Key="signal.txt")["Body"].read()
    assert saved == b"got TERM\n"


NEXTFLOW_SCRIPT = """#!/bin/bash
set -e
cd {work}
ln -sf /fusion/s3/{bucket}/data/reads.txt reads.txt
ln -sf /fusion/s3/{bucket}/data/ref.txt ref.txt
cat reads.txt ref.txt | tr a-z A-Z > result.txt
wc -l < reads.txt > .command.out
echo 0 > .exitcode
"""


@pytest.mark.parametrize("style", ["entrypoint", "command"])
def test_a_nextflow_task_reads_inputs_through_symlinks_and_writes_its_outputs(
    style: str, docker: Dockerd, moto_s3: S3Server, images: FusionImages
) -> None:
    """As Nextflow submits `/usr/bin/fusion bash .../.command.run`: as the entrypoint (Docker
    executor), or as the command after the image's wrapped Entrypoint (AWS Batch's `command`).

    On moto: s3rver lists no common prefix for work/ab/ when no object sits directly below it.
    """
    bucket = moto_s3.new_bucket("nextflow")
    client = moto_s3.boto3_client()
    work = f"/fusion/s3/{bucket}/work/ab/cdef"
    client.put_object(Bucket=bucket, Key="data/reads.txt", Body=b"acgt\nttga\n")
    client.put_object(Bucket=bucket, Key="data/ref.txt", Body=b"ref\n")
    script = NEXTFLOW_SCRIPT.format(work=work, bucket=bucket).encode()
    client.put_object(Bucket=bucket, Key="work/ab/cdef/.command.run", Body=script)
    task = ("bash", f"{work}/.command.run")
    if style == "entrypoint":
        run = docker_run(
            docker, moto_s3, images.debian, *task, options=("--entrypoint", "/usr/bin/fusion")
        )
    else:
        run = docker_run(docker, moto_s3, images.debian, "/usr/bin/fusion", *task)
    assert run.returncode == 0, run.stdout + run.stderr

    def read(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=f"work/ab/cdef/{key}")["Body"].read()

    assert read("result.txt") == b"ACGT\nTTGA\nREF\n"
    assert read(".command.out") == b"2\n"
    assert read(".exitcode") == b"0\n"


def test_without_dev_fuse_the_command_runs_unchanged_after_one_warning(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    run = docker_run(
        docker, s3rver, images.debian, "bash", "-c", "echo ran as $0; exit 4", fuse=False
    )
    assert run.returncode == 4
    assert run.stdout == "ran as bash\n"
    assert len(run.stderr.splitlines()) == 1 and "warning" in run.stderr


def test_an_image_entrypoint_still_receives_the_arguments(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    """The scratch image's Entrypoint is its one binary: with no arguments it says how to use it."""
    run = docker_run(docker, s3rver, images.scratch)
    assert run.returncode == 2
    assert "usage: copy SRC DST" in run.stderr.splitlines()


def test_an_image_without_entrypoint_or_cmd_runs_a_given_command_and_refuses_none(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    """Docker refuses `docker run IMAGE` for such an image; through the launcher it is a usage
    error (status 2, one line), and `docker run IMAGE CMD` runs CMD as before."""
    nothing = docker_run(docker, s3rver, images.no_command)
    assert nothing.returncode == 2
    assert nothing.stderr.splitlines()[-1].startswith("usage: fusion")
    given = docker_run(docker, s3rver, images.no_command, "echo", "given")
    assert (given.returncode, given.stdout) == (0, "given\n")


def test_a_user_entrypoint_bypasses_the_launcher(
    docker: Dockerd, s3rver: S3Server, images: FusionImages
) -> None:
    run = docker_run(
        docker, s3rver, images.busybox, "-c", "grep -c ' /fusion ' /proc/mounts; true",
        options=("--entrypoint", "/bin/sh"),
    )  # fmt: skip
    assert run.stdout.strip() == "0", run.stdout + run.stderr


def test_the_pulled_image_shows_the_wrapped_entrypoint_and_its_history(
    docker: Dockerd, images: FusionImages
) -> None:
    docker.cli("pull", images.scratch)
    (inspected,) = json.loads(docker.cli("image", "inspect", images.scratch).stdout)
    assert inspected["Config"]["Entrypoint"] == ["/usr/bin/fusion", "--", "/copy"]
    history = json.loads(
        docker.cli(
            "history", "--no-trunc", "--format", "{{json .}}", images.scratch
        ).stdout.splitlines()[0]
    )
    assert "ENTRYPOINT" in history["CreatedBy"]
