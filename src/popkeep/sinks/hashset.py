"""A set of 64-bit hashes held in one array: what a sink's index of the messages it
holds needs, in memory that stays small at hundreds of thousands of members.

Owns: :class:`HashSet`. A Python ``set`` of ints costs about 100 bytes a member
(the int object and at least two table slots, and twice that while it resizes);
this costs 16 bytes at most and creates no object per member (issue 16 item 3: the
Maildir sink's index of a 200,000-file folder took ≈ 24 MiB of a first
collection's peak). Must not: know what the hashes stand for.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

_START = 1 << 4  #: slots of an empty set (a power of two)
_UNSIGNED = (1 << 64) - 1


class HashSet:
    """Membership of ints in [-2**63, 2**63), e.g. ``hash(str)`` values.

    Open addressing in an ``array('q')`` at most half full, probed as CPython's own
    sets and dicts probe (``i = 5 i + 1 + perturb``, ``perturb`` shifted right by 5
    each step: every bit of the member takes part, so members alike in their low bits
    do not pile up, and the sequence reaches every slot). 0 marks a free slot, so 0
    is stored as 1: the two are one member here. A caller that needs certainty (two
    strings with one hash) must check a hit some other way; a miss is certain.
    """

    __slots__ = ("_count", "_table")

    def __init__(self, members: Iterable[int] = ()) -> None:
        self._table = array("q", [0]) * _START
        self._count = 0
        for member in members:
            self.add(member)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, member: int) -> bool:
        # _slot inline: a fetch asks once a message, and a call costs more than the probe.
        table = self._table
        value = member or 1
        mask = len(table) - 1
        perturb = value & _UNSIGNED
        slot = perturb & mask
        while (held := table[slot]) != 0:
            if held == value:
                return True
            perturb >>= 5
            slot = (slot * 5 + 1 + perturb) & mask
        return False

    def add(self, member: int) -> None:
        value = member or 1
        slot = self._slot(value)
        if self._table[slot] == 0:
            self._table[slot] = value
            self._count += 1
            if self._count * 2 > len(self._table):
                self._grow()

    def _slot(self, value: int) -> int:
        """Where ``value`` is, or the free slot where it would go."""
        table = self._table
        mask = len(table) - 1
        perturb = value & _UNSIGNED
        slot = perturb & mask
        while (held := table[slot]) != 0 and held != value:
            perturb >>= 5
            slot = (slot * 5 + 1 + perturb) & mask
        return slot

    def _grow(self) -> None:
        """Twice the slots; every member placed again, probed as :meth:`_slot` does
        (inline: the members are distinct, so each goes to the first free slot; no
        call per member, the count stays)."""
        old = self._table
        # Repeated, not copied from bytes(): no second table-sized buffer while it grows.
        table = self._table = array("q", [0]) * (2 * len(old))
        mask = len(table) - 1
        for value in old:
            if value:
                perturb = value & _UNSIGNED
                slot = perturb & mask
                while table[slot] != 0:
                    perturb >>= 5
                    slot = (slot * 5 + 1 + perturb) & mask
                table[slot] = value
