"""The :class:`SourceSession` protocol: one authenticated session with a provider mailbox.

Owns: the shape the collector drives (list, retrieve, delete, quit). POP3 is the
first implementation (``popkeep.sources.pop3.POP3Session`` satisfies it
structurally); an IMAP source can follow. Must not: decide what to fetch or delete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from popkeep.model import ServerStat
from popkeep.spool import LfCopy, SpooledMessage
from popkeep.transport.base import TLSInfo


class SourceSession(Protocol):
    @property
    def tls(self) -> TLSInfo | None: ...

    @property
    def capabilities(self) -> dict[str, list[str]]: ...

    async def stat(self) -> ServerStat: ...

    async def uids(self) -> dict[str, int]:
        """{unique-id: message number} of every message, in message-number order."""
        ...

    async def sizes(self, numbers: Sequence[int], count: int) -> dict[int, int]:
        """Octets of each of ``numbers`` (as the server reports them); ``count``: mailbox size."""
        ...

    def retrieve(
        self,
        numbers: Sequence[int],
        spool_dir: Path | None = None,
        *,
        lf_copy: LfCopy | None = None,
    ) -> AsyncIterator[tuple[int, SpooledMessage]]:
        """Messages in the order asked, streamed (pipelined where the server allows).

        ``lf_copy``: spool large messages with an LF copy too (SpoolWriter).
        """
        ...

    async def delete(self, numbers: Sequence[int]) -> list[int]:
        """Mark for deletion; returns the numbers the server refused to mark.

        Nothing is deleted unless :meth:`quit` returns True.
        """
        ...

    async def quit(self) -> bool:
        """True only when the server answered +OK to QUIT (RFC 1939 §6, UPDATE state)."""
        ...

    async def close(self) -> None: ...


SessionFactory = Callable[[], Awaitable[SourceSession]]
