"""The MDA sink: pipe each message to a local delivery agent (dovecot-lda, procmail …).

Owns: running ``command`` (an argv list, never through a shell) once per message
with the message on stdin in **local LF line endings** (what ``dovecot-lda`` and
``procmail`` expect from a pipe), and mapping the exit status (sysexits.h):
0 delivered; 75 ``EX_TEMPFAIL`` → :class:`DeliveryError` (retry next run);
anything else, or death by a signal → :class:`DeliveryRefused`. A command that
runs longer than ``timeout`` seconds is killed and counts as a temporary failure.

At-least-once: nothing can ask an MDA whether it already delivered a message,
so :meth:`find` always returns None and a crash between the command's exit and
the state commit delivers that message again on the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from popkeep.clock import Clock, SystemClock
from popkeep.config.sink_types import MdaSinkConfig
from popkeep.errors import EX_TEMPFAIL, DeliveryError, DeliveryRefused
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery
from popkeep.sinks.trace import network_chunks, trace_lines
from popkeep.spool import SpooledMessage, to_lf

logger = logging.getLogger(__name__)

_STDERR_LIMIT = 2000  #: characters of the command's stderr kept for the error message


class MdaSink:
    """``type = "mda"``. See the module docstring."""

    exactly_once = False

    def __init__(self, config: MdaSinkConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock or SystemClock()

    async def open(self) -> None:
        """Nothing to connect; the command is checked when it first runs."""

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Run the command once per message, in order; stop at the first failure."""
        receipts = []
        for delivery in batch:
            await self._run(delivery)
            receipts.append(Receipt(self.name, delivery.key))
        return receipts

    async def _run(self, delivery: Delivery) -> None:
        program = self.config.command[0]
        try:
            process = await asyncio.create_subprocess_exec(
                *self.config.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise DeliveryRefused(f"sink {self.name}: command not found: {program}") from exc
        except OSError as exc:
            raise DeliveryRefused(f"sink {self.name}: cannot run {program}: {exc}") from exc
        try:
            stderr = await asyncio.wait_for(self._feed(process, delivery), self.config.timeout)
        except TimeoutError as exc:
            await _kill(process)
            raise DeliveryError(
                f"sink {self.name}: {program} did not finish within {self.config.timeout:g} s"
            ) from exc
        self._judge(process.returncode, stderr)

    async def _feed(self, process: asyncio.subprocess.Process, delivery: Delivery) -> bytes:
        """Write the message (LF endings) to stdin, close it, wait; return stderr."""
        assert process.stdin is not None and process.stderr is not None
        reader = asyncio.ensure_future(process.stderr.read())
        prefix = b""
        if self.config.trace_headers:
            prefix = trace_lines(delivery, self.name, self._clock.now())
        try:
            for block in to_lf(network_chunks(delivery, prefix)):
                process.stdin.write(block)
                await process.stdin.drain()
            process.stdin.close()
            await process.stdin.wait_closed()
        except (BrokenPipeError, ConnectionResetError):
            # The command stopped reading early; its exit status says why.
            logger.debug("sink %s: command closed its stdin early", self.name)
        stderr = await reader
        await process.wait()
        return stderr

    def _judge(self, status: int | None, stderr: bytes) -> None:
        if status == 0:
            return
        said = stderr.decode("utf-8", "replace").strip()[-_STDERR_LIMIT:]
        reason = f"{self.config.command[0]} exited with status {status}" + (
            f": {said}" if said else ""
        )
        if status == EX_TEMPFAIL:
            raise DeliveryError(f"sink {self.name}: {reason}")
        raise DeliveryRefused(f"sink {self.name}: {reason}")

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """Always None: an MDA cannot be asked (at-least-once)."""
        return None

    async def close(self) -> None:
        """Nothing is held between messages."""


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(Exception):
        await process.wait()
