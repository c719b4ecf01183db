"""The spool: small messages in memory, big ones spilled to an unnamed file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from popkeep.spool import SpoolWriter


def _chunks(total: int, size: int = 100_000) -> list[bytes]:
    return [bytes([65 + i % 26]) * min(size, total - start) + b"\r\n"
            for i, start in enumerate(range(0, total, size))]


@pytest.mark.parametrize("total", [10_000, 3_000_000])
def test_content_size_and_hash_in_memory_and_spilled(tmp_path: Path, total: int) -> None:
    chunks = _chunks(total)
    writer = SpoolWriter(tmp_path, spill_at=1_000_000)
    for chunk in chunks:
        writer.write(chunk)
    message = writer.finish()
    whole = b"".join(chunks)
    assert message.in_memory is (total < 1_000_000)
    assert (message.size, message.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert b"".join(message.chunks(size=65536)) == whole
    message.close()
