"""The calibration pipeline (calibration/main.nf) without Nextflow: every task a container in a
real dockerd pulling through `wavectl serve`, against s3rver, once with S3 staging and once
through /fusion; then `wavectl calibrate compare` on the two traces it writes.

The task scripts are calibration/bin's, mounted read-only into each container: one source for
both. bench/pipeline_task.py plays the part of Nextflow's `.command.run` (staging with boto3,
or a work directory under /fusion; timing the command). The image is Debian's Python with
boto3 added, as a team's own tool image would be; it is pulled before the runs, so neither
pays the pull. A calibration is one run of each kind, S3 first.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.report import Comparison
from tests.e2e.fusion.images import debian_root, directory_layer
from tests.support import REPO
from tests.support.browser import screenshot
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.fusion_layers import FusionBuild, build_once
from tests.support.images import PATH_ENV, ImageSpec, Layer, Pusher, tar_layer
from tests.support.proxy import WAVECTL, proxy_running, upstream_args
from tests.support.registry import registry_running
from tests.support.s3servers import S3Server, start_s3rver
from wave_proxy.calibrate.compare import compare
from wave_proxy.calibrate.trace import parse_trace
from wave_proxy.layerbuild.arch import host_arch

IMAGE = "calibration/python:3.11"  # on the upstream; pulled as docker.io/... through the mirror
BIN = "/opt/calibration/bin"
WRAPPER = "/opt/bench/pipeline_task.py"
FUSE = ("--device", "/dev/fuse", "--cap-add", "SYS_ADMIN")
BUCKET = "calibration"
PRICE_PER_HOUR = 0.192  # an m5.xlarge on demand in us-east-1, USD
TRACE_FIELDS = ["task_id", "hash", "native_id", "name", "status", "exit", "submit"]
TRACE_FIELDS += ["duration", "realtime", "%cpu", "peak_rss", "peak_vmem", "rchar", "wchar"]
BOTO3_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
SUMMARY = re.compile(r"fetched ([\d.]+) (B|KiB|MiB|GiB), served ([\d.]+) (B|KiB|MiB|GiB)")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


@dataclass(frozen=True)
class Scale:
    """The pipeline's parameters (main.nf's params of the same names)."""

    regions: int = 256
    region_kib: int = 4096  # 1 GiB of input
    chunks: int = 16
    regions_per_chunk: int = 2
    parallel: int = 2  # tasks at once (the compute environment's size)

    def chunk_regions(self, chunk: int) -> list[str]:
        """Regions spread over the whole file, as main.nf picks them."""
        return [
            f"chr{(chunk + step * self.chunks) % self.regions}"
            for step in range(self.regions_per_chunk)
        ]


@dataclass(frozen=True)
class Task:
    name: str
    inputs: dict[str, str]  # local name -> key in the bucket
    outputs: tuple[str, ...]
    command: tuple[str, ...]

    @property
    def hash(self) -> str:
        digest = hashlib.sha1(self.name.encode()).hexdigest()
        return f"{digest[:2]}/{digest[2:8]}"


def stages(scale: Scale, run: str) -> list[list[Task]]:
    """The pipeline's tasks, stage by stage, with the keys of one run's work directory."""
    make = Task(
        "MAKE_INPUT",
        {},
        ("genome.fa", "genome.fa.idx"),
        ("python3.11", f"{BIN}/make_input.py", "--regions", str(scale.regions),
         "--region-kib", str(scale.region_kib), "genome.fa", "genome.fa.idx"),
    )  # fmt: skip
    genome = {name: work_key(run, make, name) for name in make.outputs}
    regions = [
        Task(
            f"REGION_STATS ({chunk})",
            genome,
            (f"stats_{chunk}.tsv",),
            (
                "python3.11",
                f"{BIN}/region_stats.py",
                "--regions",
                ",".join(scale.chunk_regions(chunk)),
                "--out",
                f"stats_{chunk}.tsv",
                "genome.fa",
                "genome.fa.idx",
            ),
        )
        for chunk in range(scale.chunks)
    ]
    stats = {task.outputs[0]: work_key(run, task, task.outputs[0]) for task in regions}
    merge = Task(
        "MERGE",
        stats,
        ("summary.tsv",),
        ("python3.11", f"{BIN}/merge_stats.py", "--out", "summary.tsv", *stats),
    )
    return [[make], regions, [merge]]


def work_key(run: str, task: Task, name: str = "") -> str:
    return f"{run}/work/{task.hash}" + (f"/{name}" if name else "")


# -- the image ---------------------------------------------------------------------------------


def boto3_layer() -> Layer:
    """boto3 and its pure-Python dependencies from our environment, where `pip install boto3`
    puts them in Debian's python3.11; botocore with its S3 model only."""
    target = "usr/local/lib/python3.11/dist-packages"
    files: dict[str, bytes] = {}
    for name in BOTO3_PACKAGES:
        path = Path(importlib.import_module(name).__file__ or "")
        package = path.name == "__init__.py"
        root = path.parent.parent if package else path.parent
        for file in path.parent.rglob("*") if package else [path]:
            relative = file.relative_to(root).as_posix()
            if file.is_file() and "__pycache__" not in relative and _wanted_model(relative):
                files[f"{target}/{relative}"] = file.read_bytes()
    return tar_layer(files, compresslevel=1)


def _wanted_model(relative: str) -> bool:
    """botocore's service models: S3's only (the others weigh tens of MB)."""
    parts = relative.split("/")
    return parts[:2] != ["botocore", "data"] or len(parts) == 3 or parts[2] == "s3"


def push_image(pusher: Pusher, work: Path) -> None:
    arch = host_arch(strict=False)
    if arch is None:
        raise SystemExit("bench pipeline: the Fusion layer exists for amd64 and arm64 hosts only")
    base = directory_layer(debian_root(arch, work / "debian"))
    spec = ImageSpec((base, boto3_layer()), {"Env": [PATH_ENV], "Cmd": ["bash"]})
    pusher.image(*IMAGE.split(":"), spec)


# -- running tasks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One task's line of the trace, in Nextflow's raw form (ms, bytes, epoch ms)."""

    task_id: int
    task: Task
    submit: float
    complete: float
    measured: dict  # pipeline_task.py's TRACE line

    def values(self) -> list[str]:
        m = self.measured  # of a completed task: a failed one stops the run (task() raises)
        return [
            str(self.task_id), self.task.hash, f"calibration-{self.task_id}", self.task.name,
            "COMPLETED", str(m["exit"]),
            str(round(self.submit * 1000)), str(round((self.complete - self.submit) * 1000)),
            str(m["realtime"]), str(m["cpu"]), str(m["peak_rss"]), "-", str(m["rchar"]),
            str(m["wchar"]),
        ]  # fmt: skip


class PipelineRun:
    """One run of the pipeline, S3 staging or Fusion, through one dockerd."""

    def __init__(self, daemon: Dockerd, server: S3Server, image: str, mode: str) -> None:
        self.daemon, self.server, self.image, self.mode = daemon, server, image, mode
        self.rows: list[Row] = []

    def task(self, task: Task, task_id: int) -> Row:
        workdir = work_key(self.mode, task)
        job = {"mode": self.mode, "bucket": BUCKET, "workdir": workdir, "inputs": task.inputs,
               "outputs": task.outputs, "command": task.command}  # fmt: skip
        env = [arg for item in self.server.env().items() for arg in ("-e", "=".join(item))]
        argv = ["run", "--rm", "--network", "host", *env,
                "-v", f"{REPO / 'calibration/bin'}:{BIN}:ro",
                "-v", f"{REPO / 'bench/pipeline_task.py'}:{WRAPPER}:ro"]  # fmt: skip
        if self.mode == "fusion":
            log = f"/fusion/s3/{BUCKET}/{workdir}/.fusion.log"
            argv += [*FUSE, "-e", f"FUSION_LOG_OUTPUT={log}", self.image, "python3.11"]
        else:  # no Fusion: the image's command as is, not the launcher
            argv += ["--entrypoint", "python3.11", self.image]
        submit = time.time()
        done = self.daemon.cli(*argv, WRAPPER, json.dumps(job), check=False)
        complete = time.time()
        lines = [line for line in done.stdout.splitlines() if line.startswith("TRACE ")]
        if done.returncode or not lines:
            raise RuntimeError(
                f"{self.mode} task {task.name} failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        row = Row(task_id, task, submit, complete, json.loads(lines[-1].removeprefix("TRACE ")))
        print(f"  {self.mode:6} {task.name:20} {complete - submit:6.2f} s", flush=True)
        return row

    def run(self, scale: Scale) -> None:
        task_ids = itertools.count(1)
        with ThreadPoolExecutor(scale.parallel) as pool:
            for stage in stages(scale, self.mode):
                numbered = [(task, next(task_ids)) for task in stage]
                self.rows += pool.map(lambda pair: self.task(*pair), numbered)

    def write_trace(self, path: Path) -> Path:
        lines = ["\t".join(TRACE_FIELDS), *("\t".join(row.values()) for row in self.rows)]
        path.write_text("\n".join(lines) + "\n")
        return path


# -- the suite ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    s3_trace: Path
    fusion_trace: Path
    report: Path
    compared: subprocess.CompletedProcess[str]  # `wavectl calibrate compare`'s run
    results: dict[str, bytes]  # each run's summary.tsv
    bytes_moved: str  # staged in by the S3 run; fetched and served by Fusion (.fusion.log)


def calibrate(workdir: Path, build: FusionBuild, scale: Scale, out: Path) -> Calibration:
    """Run the pipeline both ways; the traces and the report (in `out`), and the compare
    command's output."""
    for directory in ("s3", "s3data", "image"):
        (workdir / directory).mkdir(parents=True)
    server = start_s3rver(workdir / "s3", workdir / "s3data")
    try:
        server.boto3_client().create_bucket(Bucket=BUCKET)
        with registry_running(workdir / "registry") as registry:
            push_image(Pusher(registry), workdir / "image")
            layers = build.copy_to(workdir / "fusion-layers")
            args = [*upstream_args({"docker.io": registry}), "--fusion-layers", str(layers)]
            with (
                proxy_running(workdir / "proxy", args, fusion=True) as proxy,
                dockerd_running([proxy.url], [proxy.host]) as daemon,
            ):
                daemon.cli("pull", IMAGE)
                runs = {mode: PipelineRun(daemon, server, IMAGE, mode) for mode in ("s3", "fusion")}
                for mode, pipeline in runs.items():
                    print(f"bench.pipeline: the {mode} run", flush=True)
                    pipeline.run(scale)
        out.mkdir(parents=True, exist_ok=True)
        traces = {mode: runs[mode].write_trace(out / f"trace-{mode}.txt") for mode in runs}
        s3 = server.boto3_client()
        results = {}
        for mode, pipeline in runs.items():
            key = work_key(mode, pipeline.rows[-1].task, "summary.tsv")
            results[mode] = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        moved = bytes_moved(server, runs)
    finally:
        if server.service:
            server.service.stop()
    report = out / "report.html"
    compared = subprocess.run(  # in `out`, so the report names the traces as a user would
        [str(WAVECTL), "calibrate", "compare", traces["s3"].name, traces["fusion"].name,
         "--html", report.name, "--price-per-hour", str(PRICE_PER_HOUR)],
        capture_output=True, text=True, check=False, cwd=out,
    )  # fmt: skip
    return Calibration(traces["s3"], traces["fusion"], report, compared, results, moved)


def bytes_moved(server: S3Server, runs: dict[str, PipelineRun]) -> str:
    """What the S3 run staged in, against what the Fusion tasks fetched from S3 and served to
    their commands (the summary line of each task's .fusion.log)."""
    s3 = server.boto3_client()
    staged = sum(
        s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        for row in runs["s3"].rows
        for key in row.task.inputs.values()
    )
    fetched = served = 0
    for row in runs["fusion"].rows:
        log = s3.get_object(Bucket=BUCKET, Key=work_key("fusion", row.task, ".fusion.log"))
        for match in SUMMARY.finditer(log["Body"].read().decode()):
            fetched += round(float(match[1]) * UNITS[match[2]])
            served += round(float(match[3]) * UNITS[match[4]])
    return (
        f"The S3 run staged in {staged / 2**20:.1f} MiB; the Fusion tasks fetched "
        f"{fetched / 2**20:.1f} MiB from S3 and served {served / 2**20:.1f} MiB to their commands"
    )


def run(repeat: int, scale: Scale | None = None) -> list[Comparison]:
    """`repeat` does not apply: a calibration is one run of each kind."""
    del repeat
    scale = scale or Scale()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        print("bench.pipeline: providing the Fusion layers ...", flush=True)
        kept = REPO / "bench" / "calibration"
        done = calibrate(workdir / "run", build_once(workdir / "client"), scale, kept)
        print(done.compared.stdout + done.compared.stderr, flush=True)
        print(done.bytes_moved, flush=True)
        if done.compared.returncode:
            raise SystemExit("bench pipeline: wavectl calibrate compare failed")
        screenshot(done.report, done.report.with_suffix(".png"))
        print(f"bench.pipeline: traces, report.html and report.png kept in {kept}", flush=True)
    s3, fusion = (parse_trace(p.read_text(), p.name) for p in (done.s3_trace, done.fusion_trace))
    totals = compare(s3, fusion).totals
    return [
        Comparison(
            "calibration: billed task time (summed duration)",
            "s",
            totals.fusion.total_duration,
            totals.s3.total_duration,
            "S3 staging",
            "lower",
            1.0,
        ),
        Comparison(
            "calibration: wall clock, first submit to last completion",
            "s",
            totals.fusion_span or 0.0,
            totals.s3_span or 0.0,
            "S3 staging",
            "lower",
            1.0,
        ),
    ]
