"""HTTP Range for blobs: one `bytes=` range, as registries and containerd use it.

RFC 9110 lets a server ignore a Range it does not understand (other units, garbage, several
ranges): those get the whole blob with 200. A well-formed range that cannot be satisfied
(first byte past the end, or last before first as the distribution conformance suite expects)
gets 416 with `Content-Range: bytes */<size>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.IGNORECASE)
# Beyond any blob size; longer numbers are read as this (int() refuses > 4300 digits).
_HUGE = 1 << 64


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    pass


@dataclass(frozen=True)
class RangeSpec:
    """A syntactically valid single range, before the blob size is known."""

    first: int | None
    last: int | None

    def header(self) -> str:
        first = "" if self.first is None else str(self.first)
        last = "" if self.last is None else str(self.last)
        return f"bytes={first}-{last}"

    def resolve(self, size: int) -> ByteRange:
        if self.first is None:  # suffix: the last N bytes
            assert self.last is not None
            if self.last == 0 or size == 0:
                raise Unsatisfiable()
            return ByteRange(max(size - self.last, 0), size - 1)
        if self.first >= size or (self.last is not None and self.last < self.first):
            raise Unsatisfiable()
        end = size - 1 if self.last is None else min(self.last, size - 1)
        return ByteRange(self.first, end)


def parse_range(header: str | None) -> RangeSpec | None:
    """The requested range, or None when the header is absent or to be ignored.

    Raises Unsatisfiable for `first > last`, which no size can satisfy.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first = _number(match.group(1))
    last = _number(match.group(2))
    if first is not None and last is not None and last < first:
        raise Unsatisfiable()
    return RangeSpec(first, last)


def _number(digits: str) -> int | None:
    if not digits:
        return None
    return _HUGE if len(digits.lstrip("0")) > 20 else int(digits)
