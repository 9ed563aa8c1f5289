"""Each cloud's own Python SDK staging whole files: the stage-in / stage-out a pipeline does
without Fusion (boto3's TransferManager, google-cloud-storage, azure-storage-blob).

Every job runs in its own process, timing only the transfer (not the SDK's imports or client
set-up), so its memory is sampled like the mounts' and the bench process's GIL stays out of
the numbers. Each SDK runs with its default transfer settings.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.mounts import Workspace

# What each SDK does for a job: a client, then download(), upload() and list_all() (and for S3
# gets(): the ranged GETs that are the limit for random reads).
_SETUP = {
    "s3": """
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=job["endpoint"], aws_access_key_id=job["key"],
                  aws_secret_access_key=job["secret"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
def download(): s3.download_file(job["bucket"], job["object"], job["path"])
def upload(): s3.upload_file(job["path"], job["bucket"], job["object"])
def list_all():
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=job["bucket"], Prefix=job["prefix"]):
        pass
def gets():  # ranged GETs of 1 MiB on keep-alive connections, `threads` at once
    from concurrent.futures import ThreadPoolExecutor
    def get(offset):
        window = f"bytes={offset}-{offset + (1 << 20) - 1}"
        body = s3.get_object(Bucket=job["bucket"], Key=job["object"], Range=window)["Body"]
        assert len(body.read()) == 1 << 20
    shares = [job["reads"][n::job["threads"]] for n in range(job["threads"])]
    with ThreadPoolExecutor(job["threads"]) as pool:
        list(pool.map(lambda share: [get(offset) for offset in share], shares))
if job["op"] == "gets":  # the limit is a warm client on a connection already open
    s3.head_object(Bucket=job["bucket"], Key=job["object"])
""",
    "gs": """
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
bucket = storage.Client(project="bench", credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": job["endpoint"]}).bucket(job["bucket"])
def download(): bucket.blob(job["object"]).download_to_filename(job["path"])
def upload(): bucket.blob(job["object"]).upload_from_filename(job["path"])
def list_all(): list(bucket.list_blobs(prefix=job["prefix"]))
""",
    "az": """
from azure.storage.blob import ContainerClient
container = ContainerClient.from_connection_string(job["endpoint"], job["bucket"])
def download():
    with open(job["path"], "wb") as file:
        container.download_blob(job["object"]).readinto(file)
def upload():
    with open(job["path"], "rb") as file:
        container.upload_blob(job["object"], file, overwrite=True)
def list_all(): list(container.list_blobs(name_starts_with=job["prefix"]))
""",
}

_RUN = """
import json, os, sys, time
job = json.loads(sys.argv[1])
{setup}
start, cpu = time.perf_counter(), time.process_time()
if job["op"] == "download":
    download()
    fd = os.open(job["path"], os.O_RDONLY)
    for offset in job.get("reads", []):
        assert len(os.pread(fd, 1 << 20, offset)) == 1 << 20
    os.close(fd)
elif job["op"] == "upload":
    upload()
elif job["op"] == "gets":
    gets()
else:
    list_all()
print(time.perf_counter() - start, time.process_time() - cpu)
"""

NAMES = {"s3": "boto3", "gs": "gcs-sdk", "az": "azure-sdk"}  # the client's column in tables


def timed_sdk_job(
    space: Workspace, scheme: str, workload: str, warm: tuple[str, ...], **job: object
) -> float:
    """Run one SDK job (op: download, upload, list; gets for S3) in its own process against the
    `scheme` (job["endpoint"]: the S3 endpoint, GCS endpoint or Azure connection string); the
    seconds its transfer took. A download reads job["reads"] (1 MiB each) from the staged file."""
    client = NAMES[scheme]
    space.cold_start(warm)
    script = _RUN.format(setup=_SETUP[scheme])
    process = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(job)], stdout=subprocess.PIPE, text=True
    )
    with space.memory.watching(client, workload, process.pid):
        output, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"{client} {job['op']} failed with status {process.returncode}")
    seconds, cpu = map(float, output.split())
    space.cpu.setdefault((client, workload), []).append(cpu)
    print(f"  {workload:6} {client:7} {seconds:7.2f} s, cpu {cpu:6.2f} s", flush=True)
    return seconds
