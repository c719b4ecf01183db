"""The spool: small messages in memory, big ones spilled to an unnamed file."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from popkeep.spool import LF_NUDGE_EVERY, LfCopy, SpoolWriter, crlf_to_lf, to_lf


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


# CR/LF in every arrangement a server can send: pairs, bare CRs, bare LFs, CR last.
_AWKWARD = b"Subject: x\r\n\r\nline\r\nbare\rcr\r\r\nand bare\nlf\n\r\r\n\r" * 40_000


def _reference_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


# Octets where CR, LF and their pairs meet in every order (lone CRs, "\r\r\n", a CR last).
_CR_LF_TEXT = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b".", b"\r\r\n"])).map(
    b"".join
)


@given(_CR_LF_TEXT)
@example(b"a\rb\nc")  # as many CRs as LFs, yet the CR is lone: deleting CRs would be wrong
@example(b"x\r\r\n")
@example(b"line\r\n\r")
def test_crlf_to_lf_is_replace(data: bytes) -> None:
    assert crlf_to_lf(data) == data.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("seed", range(5))
def test_to_lf_is_the_same_wherever_the_stream_is_cut(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(_AWKWARD)), 300))
    pieces = [_AWKWARD[a:b] for a, b in zip([0, *cuts], [*cuts, len(_AWKWARD)], strict=True)]
    assert b"".join(to_lf(pieces)) == _reference_lf(_AWKWARD)


@pytest.mark.parametrize("spill_at", [1_000, 100_000_000], ids=["spilled", "in-memory"])
def test_lf_copy_matches_converting_afterwards(tmp_path: Path, spill_at: int) -> None:
    rng = random.Random(7)
    writer = SpoolWriter(tmp_path, spill_at=spill_at, lf_copy=LfCopy(tmp_path))
    start = 0
    while start < len(_AWKWARD):  # odd write sizes: CRs land on every boundary sooner or later
        step = rng.randrange(1, 5_000)
        writer.write(_AWKWARD[start : start + step])
        start += step
    message = writer.finish()
    try:
        assert message.in_memory is (spill_at > len(_AWKWARD))
        assert b"".join(message.chunks()) == _AWKWARD  # the network form is untouched
        assert message.sha256 == hashlib.sha256(_AWKWARD).hexdigest()
        assert b"".join(message.lf_chunks(size=4096)) == _reference_lf(_AWKWARD)
        assert b"".join(message.lf_chunks()).endswith(b"\n\r")  # trailing lone CR kept
    finally:
        message.close()
    assert message.closed


def test_lf_only_keeps_no_network_form_of_a_spilled_message(tmp_path: Path) -> None:
    told: list[int] = []
    copy = LfCopy(tmp_path, lambda: told.append(1), only=True)
    small = SpoolWriter(tmp_path, spill_at=1_000_000, lf_copy=copy)
    small.write(b"A: b\r\n\r\nsmall\r\n")
    kept = small.finish()
    assert b"".join(kept.chunks()) == b"A: b\r\n\r\nsmall\r\n"  # in memory: both forms
    data = _AWKWARD * 20  # 37 MB
    writer = SpoolWriter(tmp_path, spill_at=1_000, lf_copy=copy)
    for start in range(0, len(data), 1 << 20):
        writer.write(data[start : start + (1 << 20)])
    message = writer.finish()
    assert (message.size, message.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert b"".join(message.lf_chunks()) == _reference_lf(data)
    with pytest.raises(ValueError, match="LF form only"):
        next(message.chunks())
    assert len(told) == len(data) // LF_NUDGE_EVERY == 2  # told every 16 MB received
    assert not message.closed
    message.close()
    assert message.closed
    assert list(tmp_path.iterdir()) == []


def test_lf_copy_files_are_gone_after_close_and_discard(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, spill_at=1_000, lf_copy=LfCopy(tmp_path))
    writer.write(b"x" * 5_000 + b"\r\n")
    message = writer.finish()
    assert list(tmp_path.iterdir()) == []  # unnamed files: nothing to clean up after a crash
    message.close()
    broken = SpoolWriter(tmp_path, spill_at=1_000, lf_copy=LfCopy(tmp_path))
    broken.write(b"y" * 5_000)
    broken.discard()
    assert list(tmp_path.iterdir()) == []
