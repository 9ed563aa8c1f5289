"""Runs one calibration task inside its container, the part of Nextflow's `.command.run`
the comparison depends on; standard library and boto3 only (the container's own Python).

`python3 pipeline_task.py JOB_JSON`, JOB_JSON holding mode ("s3" or "fusion"), bucket, workdir
(the task's key prefix), inputs ({local name: key}), outputs ([local names]) and command (argv).

- s3: make a local work directory, download every input whole with boto3 (what Nextflow's S3
  staging does with the AWS CLI), run the command there, upload every output.
- fusion: the work directory is /fusion/s3/BUCKET/WORKDIR; inputs are symlinks to their
  /fusion paths, outputs are written in place (the launcher saves them before it exits).

Like Nextflow's trace wrapper, it times the command alone (realtime) and reads its rchar,
wchar and peak RSS; it prints them as one `TRACE {json}` line last, and exits with the
command's status.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

FUSION = "/fusion/s3"


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}))


def prepare(job):
    """The task's work directory, with its inputs in place."""
    if job["mode"] == "fusion":
        workdir = f"{FUSION}/{job['bucket']}/{job['workdir']}"
        os.makedirs(workdir, exist_ok=True)
        for name, key in job["inputs"].items():
            os.symlink(f"{FUSION}/{job['bucket']}/{key}", os.path.join(workdir, name))
        return workdir
    workdir = tempfile.mkdtemp(prefix="nxf-")
    s3 = s3_client()
    for name, key in job["inputs"].items():
        s3.download_file(job["bucket"], key, os.path.join(workdir, name))
    return workdir


def unstage(job, workdir):
    if job["mode"] == "s3":
        s3 = s3_client()
        for name in job["outputs"]:
            s3.upload_file(os.path.join(workdir, name), job["bucket"], f"{job['workdir']}/{name}")


def run(command, workdir):
    """Run the command; its status, seconds, rchar, wchar and peak RSS (bytes)."""
    start = time.monotonic()
    child = subprocess.Popen(command, cwd=workdir)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # keep it, to read its /proc/io
    realtime = time.monotonic() - start
    with open(f"/proc/{child.pid}/io") as io:
        counters = dict(line.split(": ") for line in io.read().splitlines())
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "exit": child.returncode,
        "realtime": round(realtime * 1000),
        "cpu": round(100 * cpu / realtime, 1) if realtime else 0.0,
        "rchar": int(counters["rchar"]),
        "wchar": int(counters["wchar"]),
        "peak_rss": usage.ru_maxrss * 1024,
    }


def main():
    job = json.loads(sys.argv[1])
    workdir = prepare(job)
    trace = run(job["command"], workdir)
    if trace["exit"] == 0:
        unstage(job, workdir)
    print("TRACE " + json.dumps(trace), flush=True)
    return trace["exit"]


if __name__ == "__main__":
    sys.exit(main())
