"""The LMTP sink: hand each message to a Dovecot/Cyrus LMTP server (RFC 2033).

Owns: one LMTP session (TCP ``host:port`` or a unix ``socket`` path, via the
stdlib ``smtplib.LMTP`` run in a worker thread), one transaction per message,
and the per-recipient outcome: RFC 2033 §4.2 — after the final ``.`` of DATA
the server sends **one reply per accepted RCPT**, in RCPT order. The message
is streamed (never held whole) with CRLF line ends and dot-stuffing
(RFC 5321 §4.5.2).

Outcome of a message: every recipient 2xx → delivered; any 4xx (at MAIL, RCPT
or after DATA) → :class:`DeliveryError` (retry next run); otherwise any 5xx →
:class:`DeliveryRefused`, or :class:`MessageRefused` when every recipient took
RCPT and it is the message that was refused after DATA (552 too big, 554
content): the rest of the batch is still delivered. A failure carries the
receipts of the messages delivered before it (``DeliveryError.delivered``).

At-least-once: LMTP offers no way to ask whether a message was delivered, so
:meth:`find` returns None. A retry after a partial failure (one recipient 2xx,
another 4xx) or after a crash before the state commit delivers again to the
recipients that already had it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from popkeep.clock import Clock, SystemClock
from popkeep.config.sink_types import LmtpSinkConfig
from popkeep.errors import DeliveryError, DeliveryRefused, MessageRefused
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery
from popkeep.sinks.trace import network_chunks, trace_lines
from popkeep.spool import SpooledMessage

logger = logging.getLogger(__name__)


def dot_stuffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """CRLF lines with a leading ``.`` doubled, then the ``.`` terminator (RFC 5321 §4.5.2).

    A bare LF ends a line too and is sent as CRLF, since DATA is line-based; a
    final line without its line end gets one.
    """
    carry = b""
    for chunk in chunks:
        carry += chunk
        *lines, carry = carry.split(b"\n")
        if lines:
            yield b"".join(_stuff(line) for line in lines)
    if carry:
        yield _stuff(carry)
    yield b".\r\n"


def _stuff(line: bytes) -> bytes:
    line = line.removesuffix(b"\r")
    return (b"." if line.startswith(b".") else b"") + line + b"\r\n"


def _classify(code: int, text: str, what: str) -> DeliveryError:
    if 400 <= code < 500 or code < 0:
        return DeliveryError(f"{what}: temporary failure {code} {text}")
    return DeliveryRefused(f"{what}: refused {code} {text}")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """smtplib and socket errors → DeliveryError (the message is retried next run)."""
    try:
        yield
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"{what}: {exc}") from exc
    except OSError as exc:
        raise DeliveryError(f"{what}: {exc.strerror or exc}") from exc


class LmtpSink:
    """``type = "lmtp"``. See the module docstring."""

    exactly_once = False

    def __init__(self, config: LmtpSinkConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock or SystemClock()
        self._client: smtplib.LMTP | None = None
        self._where = f"sink {config.name}"

    async def open(self) -> None:
        """Connect and send LHLO; DeliveryError if the server is not there."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> smtplib.LMTP:
        if self._client is not None:
            return self._client
        server = self.config.server
        target = str(self.config.socket) if server is None else server.host
        with _translated(f"{self._where}: connect to {target}"):
            client = smtplib.LMTP(timeout=self.config.timeout)
            code, text = client.connect(target, 0 if server is None else server.port)
            if code != 220:  # RFC 5321 §4.2: the greeting
                client.close()
                raise _classify(code, text.decode("utf-8", "replace"), self._where)
            code, text = client.ehlo()  # sends LHLO (ehlo_msg)
            if code != 250:
                client.close()
                raise _classify(code, text.decode("utf-8", "replace"), f"{self._where} LHLO")
        self._client = client
        return client

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """One LMTP transaction per message, in order; stop at the first failure."""
        return await asyncio.to_thread(self._deliver_all, list(batch))

    def _deliver_all(self, batch: list[Delivery]) -> list[Receipt]:
        receipts: list[Receipt] = []
        for delivery in batch:
            try:
                ref = self._transaction(self._connect(), delivery)
            except DeliveryError as exc:
                self._drop()
                exc.delivered = tuple(receipts)
                raise
            receipts.append(Receipt(self.name, ref))
        return receipts

    def _transaction(self, client: smtplib.LMTP, delivery: Delivery) -> str:
        what = f"{self._where} message {delivery.key}"
        with _translated(what):
            code, text = client.mail(self.config.sender)
            if code != 250:
                raise _classify(code, text.decode("utf-8", "replace"), f"{what} MAIL")
            accepted, failures = self._recipients(client)
            if not accepted:
                raise _worst(failures, what)
            client.putcmd("data")
            code, text = client.getreply()
            if code != 354:
                raise _classify(code, text.decode("utf-8", "replace"), f"{what} DATA")
            prefix = b""
            if self.config.trace_headers:
                prefix = trace_lines(delivery, self.name, self._clock.now())
            for block in dot_stuffed(network_chunks(delivery, prefix)):
                client.send(block)
            late: list[tuple[str, int, str]] = []
            for rcpt in accepted:  # RFC 2033 §4.2: one reply per accepted RCPT
                code, text = client.getreply()
                if code != 250:
                    late.append((rcpt, code, text.decode("utf-8", "replace")))
        if failures or late:
            error = _worst(failures + late, what)
            if not failures and type(error) is DeliveryRefused:
                raise MessageRefused(str(error))  # every RCPT was fine: the message is not
            raise error
        return ",".join(accepted)

    def _recipients(self, client: smtplib.LMTP) -> tuple[list[str], list[tuple[str, int, str]]]:
        accepted: list[str] = []
        failures: list[tuple[str, int, str]] = []
        for rcpt in self.config.recipients:
            code, text = client.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                failures.append((rcpt, code, text.decode("utf-8", "replace")))
        return accepted, failures

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except OSError:
                logger.debug("%s: close failed", self._where)

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """Always None: LMTP cannot be asked (at-least-once)."""
        return None

    async def close(self) -> None:
        """QUIT politely when possible; never raises."""
        await asyncio.to_thread(self._quit)

    def _quit(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def _worst(failures: list[tuple[str, int, str]], what: str) -> DeliveryError:
    """Temporary if any recipient failed temporarily, else permanent."""
    detail = "; ".join(f"{rcpt}: {code} {text}" for rcpt, code, text in failures)
    if any(400 <= code < 500 or code < 0 for _, code, _ in failures):
        return DeliveryError(f"{what}: temporary failure: {detail}")
    return DeliveryRefused(f"{what}: refused: {detail}")
