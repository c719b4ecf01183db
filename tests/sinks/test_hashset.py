"""sinks.hashset.HashSet: a set of 64-bit hashes, checked against Python's set."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from popkeep.sinks.hashset import HashSet

_int64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(_int64, max_size=200), st.lists(_int64, max_size=50))
def test_members_are_what_was_added(added: list[int], others: list[int]) -> None:
    hashes = HashSet(added)
    wanted = {value or 1 for value in added}  # 0 is stored as 1 (a hit is not certain)
    assert len(hashes) == len(wanted)
    for value in added + others:
        assert (value in hashes) is ((value or 1) in wanted)


def test_many_members_with_clustered_low_bits() -> None:
    """Members alike in their low bits (the slot) probe past each other; the table grows
    as it fills and never holds a member twice."""
    rng = random.Random(7)
    values = [rng.getrandbits(40) << 20 for _ in range(20_000)] + list(range(-500, 500))
    hashes = HashSet()
    for value in values:
        hashes.add(value)
        hashes.add(value)
    assert len(hashes) == len({v or 1 for v in values})
    assert all(v in hashes for v in values)
    absent = {(rng.getrandbits(40) << 20) + 2**19 for _ in range(2_000)} - set(values)
    assert not any(value in hashes for value in absent)
    assert 2**62 not in hashes and -(2**63) not in hashes and 2**63 - 1 not in hashes
