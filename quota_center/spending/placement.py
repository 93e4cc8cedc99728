"""Which sub-bucket serves a request id at the center.

Merging and central mode move budget to that sub-bucket rather than the request elsewhere, and
agents serve from their own slices, so this one hash is all a request's place depends on.
"""

from __future__ import annotations

import zlib


def sub_bucket_for(request_id: str, sub_buckets: int) -> int:
    """The sub-bucket that serves a request id (and later its returns).

    A stable hash, the same in every center process, so that a retry lands on the
    sub-bucket that holds the request's record.
    """
    return zlib.crc32(request_id.encode("utf-8")) % sub_buckets
