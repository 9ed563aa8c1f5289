"""Turn S3 and OS failures into the errno a POSIX program expects, logging what it cannot see."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from fusion_client.fuse.ops import FuseError
from fusion_client.log import get_logger
from fusion_client.s3 import AccessDenied, NoSuchBucket, NoSuchKey, PreconditionFailed, S3Error

log = get_logger("fs")


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Run S3 calls for `what` (e.g. "read s3://b/k"), answering failures with an errno."""
    try:
        yield
    except FuseError:
        raise
    except (NoSuchKey, NoSuchBucket):
        raise FuseError(errno.ENOENT) from None
    except AccessDenied as exc:
        log.warning("%s: %s", what, exc)
        raise FuseError(errno.EACCES) from None
    except PreconditionFailed:
        log.warning("%s: the object changed in S3 while it was open; reopen to read it", what)
        raise FuseError(errno.EIO) from None
    except S3Error as exc:
        log.error("%s: %s", what, exc)
        raise FuseError(errno.EIO) from None
    except OSError as exc:
        if exc.errno in (None, 0, errno.EIO):
            log.error("%s: %s", what, exc)
        raise FuseError(exc.errno or errno.EIO) from None
