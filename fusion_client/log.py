"""Logging for the mount: FUSION_LOG_LEVEL and FUSION_LOG_OUTPUT, through one `fusion` logger
tree (every module logs with get_logger(<area>); nothing reaches the root logger).

- stderr/stdout (the default): one `[fusion] LEVEL message` line each. The container's stderr
  is shared with the user's command, so the default level (INFO) only carries the mount's rare
  notices and the exit summary.
- A file path (Nextflow sets the task's `.fusion.log`): JSON lines with the incumbent's field
  names, so its troubleshooting recipes (`jq`) work unchanged: `level`, `time` (nanoseconds
  since the epoch), `message`, and when known `error`, `path`, `operation`, and for store
  errors `provider`, `error_code`, `provider_code`, `provider_http_status`,
  `provider_request_id`, `provider_error` (passed as `extra=` by the caller).
"""

from __future__ import annotations

import json
import logging
import sys

LOGGER_NAME = "fusion"
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "OFF": logging.CRITICAL + 10,
}
_JSON_LEVELS = {"WARNING": "warn", "CRITICAL": "fatal"}
FIELDS = (
    "error",
    "path",
    "operation",
    "provider",
    "error_code",
    "provider_code",
    "provider_http_status",
    "provider_request_id",
    "provider_error",
    "summary",
)


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


class JsonLines(logging.Formatter):
    """One JSON object per record, with the incumbent's field names."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "level": _JSON_LEVELS.get(record.levelname, record.levelname.lower()),
            "time": int(record.created * 1e9),
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and "error" not in line:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup_logging(level: str, output: str) -> logging.Logger:
    """Send the `fusion` logger to stderr, stdout or a file (appended); never to the root logger."""
    logger = get_logger()
    logger.setLevel(_LEVELS.get(level.upper(), logging.INFO))
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler: logging.Handler
    formatter: logging.Formatter = logging.Formatter("[fusion] %(levelname)s %(message)s")
    if output in ("", "stderr"):
        handler = logging.StreamHandler(sys.stderr)
    elif output == "stdout":
        handler = logging.StreamHandler(sys.stdout)
    else:
        try:
            handler = logging.FileHandler(output, encoding="utf-8")
            formatter = JsonLines()
        except OSError as exc:
            handler = logging.StreamHandler(sys.stderr)
            print(f"[fusion] cannot log to {output}: {exc.strerror}; using stderr", file=sys.stderr)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    return logger
