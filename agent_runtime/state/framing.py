"""Length-prefixed records in one byte stream (the pvc journal and the configmap journal).

Each record is a 4-byte big-endian length and the sealed envelope. A process killed in the
middle of a write leaves a torn last record; `split` returns the complete records and the
size of the torn tail so the caller can ignore it (it was never acknowledged: the fsync
that acknowledges it had not returned).
"""

from __future__ import annotations

LENGTH_BYTES = 4
MAX_RECORD_BYTES = 64 * 1024 * 1024


def frame(record: bytes) -> bytes:
    """One record with its length prefix."""
    if not record or len(record) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(record)} bytes is outside 1..{MAX_RECORD_BYTES}")
    return len(record).to_bytes(LENGTH_BYTES, "big") + record


def split(data: bytes) -> tuple[list[bytes], int]:
    """Complete records in order, and the number of trailing bytes that form no record."""
    records: list[bytes] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < LENGTH_BYTES:
            break
        length = int.from_bytes(data[offset : offset + LENGTH_BYTES], "big")
        end = offset + LENGTH_BYTES + length
        if length == 0 or length > MAX_RECORD_BYTES or end > len(data):
            break
        records.append(data[offset + LENGTH_BYTES : end])
        offset = end
    return records, len(data) - offset
