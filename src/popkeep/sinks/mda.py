"""The MDA sink: hand each message to a local delivery agent (dovecot-lda, procmail …).

Owns: running ``command`` (an argv list, never through a shell) once per message
with the message on stdin in **local LF line endings** (what ``dovecot-lda`` and
``procmail`` expect), and judging the outcome. A message counts as delivered
only when the command **read all of it and exited 0**:

- stdin is an unnamed temporary file holding the whole message, not a pipe, so
  the command never sees an end of input before the message's end, even if
  popkeep is killed while it runs (a pipe would hand it a truncated message);
- the file offset the command leaves behind (shared with ours) tells how much it
  read; an exit 0 after reading less (``head -c 1000``, a filter that quits
  early) is :class:`DeliveryRefused`, not a delivery;
- exit status (sysexits.h): 0 delivered; 75 ``EX_TEMPFAIL`` →
  :class:`DeliveryError` (retry next run); anything else, or death by a signal →
  :class:`DeliveryRefused`. A command that runs longer than ``timeout`` seconds
  is killed and counts as a temporary failure (it may have delivered already).

Writing the temporary file checks every ``os.write``; a full disk is a
:class:`DeliveryError` before the command runs.

At-least-once: nothing can ask an MDA whether it already delivered a message,
so :meth:`find` always returns None and a crash (or a timeout) between the
command's delivery and the state commit delivers that message again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from typing import BinaryIO

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
        """Run the command once per message, in order; stop at the first failure, whose
        DeliveryError carries the receipts of the messages delivered before it."""
        receipts: list[Receipt] = []
        for delivery in batch:
            try:
                await self._run(delivery)
            except DeliveryError as exc:
                exc.delivered = tuple(receipts)
                raise
            receipts.append(Receipt(self.name, delivery.key))
        return receipts

    async def _run(self, delivery: Delivery) -> None:
        program = self.config.command[0]
        stdin, size = await asyncio.to_thread(self._spool, delivery)
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.config.command,
                    stdin=stdin,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            except FileNotFoundError as exc:
                raise DeliveryRefused(f"sink {self.name}: command not found: {program}") from exc
            except OSError as exc:
                raise DeliveryRefused(f"sink {self.name}: cannot run {program}: {exc}") from exc
            try:
                stderr = await asyncio.wait_for(_finish(process), self.config.timeout)
            except TimeoutError as exc:
                await _kill(process)
                raise DeliveryError(
                    f"sink {self.name}: {program} did not finish within {self.config.timeout:g} s"
                ) from exc
            self._judge(process.returncode, stderr)
            self._check_read(os.lseek(stdin.fileno(), 0, os.SEEK_CUR), size)
        finally:
            stdin.close()

    def _spool(self, delivery: Delivery) -> tuple[BinaryIO, int]:
        """The message as the command reads it (LF endings, optional trace lines) in an
        unnamed temporary file positioned at its start; and its size."""
        prefix = b""
        if self.config.trace_headers:
            prefix = trace_lines(delivery, self.name, self._clock.now())
        file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _run
        size = 0
        try:
            for block in to_lf(network_chunks(delivery, prefix)):
                _write_all(file.fileno(), block)
                size += len(block)
            os.lseek(file.fileno(), 0, os.SEEK_SET)
        except OSError as exc:
            file.close()
            raise DeliveryError(
                f"sink {self.name}: cannot write the message for the command: "
                f"{exc.strerror or exc}"
            ) from exc
        return file, size

    def _check_read(self, read: int, size: int) -> None:
        """An exit 0 counts only if the command read the whole message (module docstring)."""
        if read < size:
            raise DeliveryRefused(
                f"sink {self.name}: {self.config.command[0]} exited 0 after reading only "
                f"{read} of {size} octets of the message; not counted as delivered"
            )

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


async def _finish(process: asyncio.subprocess.Process) -> bytes:
    """Wait for the command to exit; its stderr."""
    assert process.stderr is not None
    stderr = await process.stderr.read()
    await process.wait()
    return stderr


def _write_all(fd: int, data: bytes) -> None:
    """Write every octet (``os.write`` may write fewer than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(Exception):
        await process.wait()
