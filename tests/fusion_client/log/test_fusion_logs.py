"""Per-task logs: JSON lines with the incumbent's field names in FUSION_LOG_OUTPUT, every module
in the one `fusion` logger tree (so FUSION_LOG_LEVEL=OFF silences all of them), and the exit
summary in the log and in FUSION_WORK/.fusion/trace.json."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from fusion_client.fuse import FuseError
from fusion_client.log import setup_logging
from fusion_client.store import AccessDenied, StoreError, StoreUnavailable
from fusion_client.store.memory import MemoryStoreError
from tests.fusion_client.conftest import FAST_RETRIES
from tests.fusion_client.fs.memstore_fs import memory_fusion


def injected(kind: type, status: int, code: str) -> StoreError:
    error_class = type(f"Memory{kind.__name__}", (MemoryStoreError, kind), {})
    error = error_class.__new__(error_class)
    StoreError.__init__(error, status, code, "injected", request_id="req-42")
    return error


@pytest.fixture
def restore_logging():
    yield
    setup_logging("INFO", "stderr")


def test_a_store_error_is_a_json_line_with_the_incumbents_fields(tmp_path, restore_logging):
    log = tmp_path / "fusion.log"
    setup_logging("INFO", str(log))
    for mem in memory_fusion(tmp_path, "az"):
        mem.stores["az"].put_object("bkt", "secret.txt", b"x")
        denied = injected(AccessDenied, 403, "AuthFailed")
        mem.stores["az"].fail_next("list_page", denied)  # a lookup lists a small directory first
        mem.stores["az"].fail_next("head_object", denied)
        with pytest.raises(FuseError):
            mem.ino("az/bkt/secret.txt")
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["level"] == "warn" and isinstance(line["time"], int)
    assert line["time"] > 1_700_000_000 * 10**9  # nanoseconds
    assert line["operation"] == "lookup"
    assert line["path"] == "/fusion/az/bkt/secret.txt"
    assert line["provider"] == "memory" and line["error_code"] == "Forbidden"
    assert line["provider_http_status"] == 403 and line["provider_code"] == "AuthFailed"
    assert line["provider_request_id"] == "req-42"
    assert "az://bkt/secret.txt" in line["message"]


def test_log_level_off_silences_upload_failures_too(tmp_path, capfd, restore_logging):
    setup_logging("OFF", "stderr")
    for mem in memory_fusion(tmp_path, "s3"):
        down = injected(StoreUnavailable, 0, "ConnectionError")
        mem.stores["s3"].fail_next("put_object", down, times=2)
        with pytest.raises(FuseError):
            mem.write_file("s3/bkt/lost.txt", b"data", fsync=True)
    assert capfd.readouterr().err == ""


def test_every_module_logs_inside_the_fusion_logger_tree():
    import fusion_client.fs.runtime  # noqa: F401  (imports every module of the mount)

    names = [name for name in logging.root.manager.loggerDict if name.startswith("fusion_client")]
    assert names == []


def test_the_exit_summary_goes_to_the_log_and_to_trace_json_in_fusion_work(s3rver, tmp_path):
    bucket = s3rver.new_bucket("trace")
    s3rver.put(bucket, "work/", b"")
    mount = tmp_path / "fusion"
    work = f"{mount}/s3/{bucket}/work"
    env = {
        **os.environ,
        **s3rver.env(**FAST_RETRIES),
        "FUSION_MOUNT": str(mount),
        "FUSION_CACHE_LOCATION": str(tmp_path / "cache"),
        "FUSION_WORK": work,
        "FUSION_LOG_OUTPUT": str(tmp_path / "fusion.log"),
    }
    script = f"open('{work}/out.bin', 'wb').write(b'x' * 12345)"
    done = subprocess.run(
        [sys.executable, "-m", "fusion_client", sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    trace = json.loads(s3rver.get(bucket, "work/.fusion/trace.json"))["fusion"]
    assert trace["bytes_written"] == 12345
    assert trace["bytes_uploaded"] == 12345 and trace["uploads_failed"] == 0
    assert trace["uploaded_per_written"] == 1.0
    assert trace["stores"]["s3"]["bytes_sent"] >= 12345
    lines = [json.loads(line) for line in (tmp_path / "fusion.log").read_text().splitlines()]
    summary = [line for line in lines if line["message"].startswith("summary:")]
    assert summary and summary[0]["summary"]["bytes_written"] == 12345
