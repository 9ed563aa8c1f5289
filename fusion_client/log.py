"""Logging for the mount: FUSION_LOG_LEVEL and FUSION_LOG_OUTPUT, one `[fusion]` prefix.

The container's own stderr is shared with the user's command, so every line is tagged and the
default level (INFO) only carries the mount's rare notices and the exit summary.
"""

from __future__ import annotations

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


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_logging(level: str, output: str) -> logging.Logger:
    """Send the `fusion` logger to stderr, stdout or a file (appended); never to the root logger."""
    logger = get_logger()
    logger.setLevel(_LEVELS.get(level.upper(), logging.INFO))
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler: logging.Handler
    if output in ("", "stderr"):
        handler = logging.StreamHandler(sys.stderr)
    elif output == "stdout":
        handler = logging.StreamHandler(sys.stdout)
    else:
        try:
            handler = logging.FileHandler(output, encoding="utf-8")
        except OSError as exc:
            handler = logging.StreamHandler(sys.stderr)
            print(f"[fusion] cannot log to {output}: {exc.strerror}; using stderr", file=sys.stderr)
    handler.setFormatter(logging.Formatter("[fusion] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger
