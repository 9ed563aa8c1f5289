"""Turn store and OS failures into the errno a POSIX program expects, logging what it cannot see.

One mapping for every store (docs/SEMANTICS.md, "Errors"): not found -> ENOENT, denied or no
credentials -> EACCES, changed while open -> EIO, throttled past retries -> EBUSY, anything
else after retries (server errors, store unreachable) -> EIO.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from fusion_client.fuse.ops import FuseError
from fusion_client.log import get_logger
from fusion_client.store import (
    AccessDenied,
    BucketNotFound,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    Throttled,
)
from fusion_client.store.errors import log_fields

log = get_logger("fs")


@contextmanager
def store_errors(operation: str, url: str, path: str) -> Iterator[None]:
    """Run store calls for `operation` on `url` (e.g. "read", "gs://b/k"; `path` is where it
    is mounted), answering failures with an errno and logging the ones worth a line."""
    try:
        yield
    except FuseError:
        raise
    except (ObjectNotFound, BucketNotFound):
        raise FuseError(errno.ENOENT) from None
    except AccessDenied as exc:
        _log_store_error("warning", operation, url, path, exc)
        raise FuseError(errno.EACCES) from None
    except PreconditionFailed as exc:
        extra = {**log_fields(exc), "operation": operation, "path": path}
        log.warning(
            "%s %s: the object changed in the store while it was open; reopen to read it",
            operation,
            url,
            extra=extra,
        )
        raise FuseError(errno.EIO) from None
    except Throttled as exc:
        _log_store_error("error", operation, url, path, exc)
        raise FuseError(errno.EBUSY) from None
    except StoreError as exc:
        _log_store_error("error", operation, url, path, exc)
        raise FuseError(errno.EIO) from None
    except OSError as exc:
        if exc.errno in (None, 0, errno.EIO):
            log.error(
                "%s %s: %s", operation, url, exc, extra={"operation": operation, "path": path}
            )
        raise FuseError(exc.errno or errno.EIO) from None


def _log_store_error(level: str, operation: str, url: str, path: str, exc: StoreError) -> None:
    extra = {**log_fields(exc), "operation": operation, "path": path}
    getattr(log, level)("%s %s: %s", operation, url, exc.describe(with_resource=False), extra=extra)
