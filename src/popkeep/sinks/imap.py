"""The IMAP sink: APPEND each message to a folder of any IMAP server (Gmail included).

Owns: one authenticated IMAP session (IMAPClient, a synchronous library, run in
a worker thread; it is imported nowhere else), TLS (implicit or STARTTLS,
verified against the system store or ``ca_file``; ``tls = "none"`` only when the
user wrote it), authentication (LOGIN, or SASL XOAUTH2 / OAUTHBEARER with a
token from ``oauth_token_command`` or the ``oauth`` provider, :mod:`popkeep.oauth`),
creating the folder if missing, and ``APPEND`` with the configured flags and an
INTERNALDATE (RFC 3501 §6.3.11).

Durable means the tagged OK to APPEND. The receipt ref is ``UIDVALIDITY:UID``
from the UIDPLUS ``APPENDUID`` response code (RFC 4315 §3) when the server sends
one, else ``folder:key``.

Exactly-once: :meth:`find` locates an earlier APPEND without changing the
stored bytes. Given the message, it searches the folder for its Message-ID and
exact size (RFC 3501 §6.4.4 ``HEADER``, ``LARGER``, ``SMALLER``), then fetches
each candidate and compares its sha256 with the key's hash part. With
``trace_headers = true`` it searches for the ``Received: … id <key>`` line
instead, which needs only the key. Known gap: a message with bare LF or CR
line ends is normalised to CRLF by APPEND, so its stored hash differs from the
key and :meth:`find` misses it (at-least-once for such messages).

The message is held in memory for the APPEND literal (imaplib needs bytes);
the collector's message size limit bounds that.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import imapclient
from imapclient import exceptions as imap_errors

from popkeep.clock import Clock, SystemClock
from popkeep.config.sink_types import ImapSinkConfig
from popkeep.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    DeliveryRefused,
    MessageRefused,
    PopkeepError,
    SecurityError,
    TLSError,
)
from popkeep.model import Receipt
from popkeep.pop3 import sasl
from popkeep.sinks.base import Delivery
from popkeep.sinks.trace import date_header, message_id, trace_lines
from popkeep.spool import SpooledMessage

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 20  #: messages fetched and hashed per find()
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_KEY = re.compile(r"[0-9a-f]{56}")
_RESP_CODE = re.compile(r"\[([A-Za-z-]+)")  #: RFC 3501 §7.1 resp-text-code
_MESSAGE_CODES = frozenset({"TOOBIG", "PARSE", "LIMIT", "CANNOT"})
_TEMPORARY_CODES = frozenset({"OVERQUOTA", "INUSE", "UNAVAILABLE", "SERVERBUG"})


def appenduid(response: bytes | str) -> tuple[int, int] | None:
    """``(uidvalidity, uid)`` from an APPEND OK's ``[APPENDUID v u]`` code, if present."""
    raw = response.encode() if isinstance(response, str) else response
    match = _APPENDUID.search(raw)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _sasl(initial: bytes, failure: bytes) -> Callable[[bytes], bytes]:
    """A SASL callback: the initial response; to a challenge after it (the server's
    error), ``failure`` (:func:`popkeep.pop3.sasl.failure_message`)."""
    sent = False

    def respond(challenge: bytes) -> bytes:
        nonlocal sent
        if sent:
            return failure
        sent = True
        return initial

    return respond


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """imaplib/IMAPClient/socket errors → popkeep errors (the boundary of this adapter)."""
    try:
        yield
    except imap_errors.LoginError as exc:
        raise AuthError(f"{what}: login refused: {exc}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"{what}: certificate not trusted: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise TLSError(f"{what}: TLS failed: {exc.reason}") from exc
    except imap_errors.IMAPClientError as exc:
        raise DeliveryError(f"{what}: {exc}") from exc
    except OSError as exc:
        raise DeliveryError(f"{what}: {exc.strerror or exc}") from exc


class ImapSink:
    """``type = "imap"``. See the module docstring for the guarantees."""

    exactly_once = True

    def __init__(self, config: ImapSinkConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock or SystemClock()
        self._client: Any = None
        self._folder = config.folder  #: as the server spells it, set by open()
        self._where = f"sink {config.name} ({config.server.host}:{config.server.port})"

    # -- session ------------------------------------------------------------

    async def open(self) -> None:
        """Connect, secure, authenticate and make sure the folder exists. With an
        ``oauth`` provider, an access token the server refuses is renewed once."""
        async def login(renew: bool) -> None:
            await asyncio.to_thread(self._connect, await self._secret(renew))

        if self.config.server.oauth is None:
            return await login(False)
        from popkeep.oauth import renewing

        await renewing(self._where, login, "a fresh access token was refused too: check that "
                       "the mailbox allows IMAP, or sign in again: "
                       f"popkeep auth {self.config.name}")

    async def _secret(self, renew: bool = False) -> str:
        return await asyncio.to_thread(self._resolve_secret, renew)

    def _resolve_secret(self, renew: bool = False) -> str:
        if self.config.server.oauth is not None:
            from popkeep.oauth import provider

            return provider(self.config.server.oauth).access_token(renew)
        source = self.config.server.secret
        if source is None:
            raise ConfigError(f"{self._where}: no password or token configured")
        return source.resolve()

    def _tls_context(self) -> ssl.SSLContext:
        from popkeep.transport.base import TLSSettings
        from popkeep.transport.tcp import system_ca_dir, tls_context  # as for POP3

        if self.config.server.tls_fingerprint:
            server = self.config.server
            return tls_context(TLSSettings(server.host, server.ca_file, server.tls_fingerprint))
        cafile = str(self.config.server.ca_file) if self.config.server.ca_file else None
        try:
            return ssl.create_default_context(
                cafile=cafile, capath=None if cafile else system_ca_dir()
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{self._where}: cannot read ca_file {cafile}: {exc}") from exc

    def _connect(self, secret: str) -> None:
        if self._client is not None:
            return
        config, server = self.config, self.config.server
        context = None if server.tls == "none" else self._tls_context()
        with _translated(self._where):
            client = imapclient.IMAPClient(
                server.host, server.port, ssl=server.tls == "implicit",
                ssl_context=context, timeout=config.timeout,
            )
            try:
                self._secure_and_login(client, context, secret)
                self._ensure_folder(client)
            except BaseException:
                client.shutdown()
                raise
        self._client = client

    def _secure_and_login(self, client: Any, context: ssl.SSLContext | None, secret: str) -> None:
        config, server = self.config, self.config.server
        user = server.user or ""
        if server.tls == "starttls":
            # RFC 3501 §6.2.1; capabilities are re-read after the handshake (§6.2.1).
            if not client.has_capability("STARTTLS"):
                raise SecurityError(f"{self._where}: server does not offer STARTTLS")
            client.starttls(context)
        self._check_pin(client)
        if config.auth == "password":
            client.login(user, secret)
        else:
            mechanism = "OAUTHBEARER" if config.auth == "oauthbearer" else "XOAUTH2"
            initial = sasl.client_message(mechanism, user, secret, server.host, server.port)
            client.sasl_login(mechanism, _sasl(initial, sasl.failure_message(mechanism)))
        logger.debug("%s: logged in as %s", self._where, user)

    def _check_pin(self, client: Any) -> None:
        """With ``tls_fingerprint``, the leaf certificate's SHA-256 must match it before
        the password is sent (the pin replaces CA verification, as for POP3)."""
        pin = self.config.server.tls_fingerprint
        if not pin:
            return
        der = client.socket().getpeercert(binary_form=True)
        got = hashlib.sha256(der or b"").hexdigest()
        if got != pin:
            raise TLSError(f"{self._where}: certificate fingerprint sha256:{got} "
                           "does not match the pin")

    def _server_folder(self, client: Any) -> str:
        """``folder`` with ``/`` replaced by the server's hierarchy delimiter (RFC 3501 §6.3.8)."""
        folder = self.config.folder
        if "/" not in folder:
            return folder
        listed = client.list_folders("", "")  # LIST "" "" answers with the delimiter
        delimiter = listed[0][1] if listed else None
        if isinstance(delimiter, bytes):
            delimiter = delimiter.decode("ascii", "replace")
        return folder.replace("/", delimiter) if delimiter else folder

    def _ensure_folder(self, client: Any) -> None:
        folder = self._folder = self._server_folder(client)
        if client.folder_exists(folder):
            return
        if not self.config.create_folder:
            raise DeliveryRefused(f"{self._where}: folder {folder!r} does not exist")
        try:
            client.create_folder(folder)
        except imap_errors.IMAPClientError:
            if not client.folder_exists(folder):  # someone else may have just made it
                raise
        logger.info("%s: created folder %r", self._where, folder)

    # -- deliver ------------------------------------------------------------

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """APPEND each message in order; each counts once its tagged OK arrives."""
        if self._client is None:
            await self.open()
        return await asyncio.to_thread(self._append_all, list(batch))

    def _append_all(self, batch: list[Delivery]) -> list[Receipt]:
        receipts: list[Receipt] = []
        try:
            for delivery in batch:
                receipts.append(self._append_once(delivery))
        except DeliveryError as exc:
            exc.delivered = tuple(receipts)  # the Sink contract: what did become durable
            raise
        return receipts

    def _append_once(self, delivery: Delivery) -> Receipt:
        """APPEND; when the connection breaks before the tagged reply, look, then resend.

        A timeout or a dropped connection after the literal was sent leaves it open
        whether the server committed the message (RFC 3501 §6.3.11: only the tagged
        OK says so). A new session searches the folder (:meth:`_find`) and APPENDs
        again only when the message is not there.
        """
        try:
            return self._append_translated(delivery)
        except DeliveryError as exc:
            if self._client is not None or isinstance(exc, DeliveryRefused):
                raise  # an answer from the server, not a broken connection
            logger.info("%s: connection lost during APPEND %s; looking before resending",
                        self._where, delivery.key)
            try:
                self._connect(self._resolve_secret())
            except PopkeepError as again:  # kept a DeliveryError: it carries `delivered`
                raise DeliveryError(f"{self._where}: reconnecting: {again}") from again
            found = self._find(delivery.key, delivery.message)
            if found is not None:
                return found
            return self._append_translated(delivery)

    def _append_translated(self, delivery: Delivery) -> Receipt:
        what = f"{self._where} APPEND {delivery.key}"
        with _translated(what):
            try:
                return self._append(delivery)
            except (OSError, imap_errors.IMAPClientAbortError):
                self._drop()
                raise
            except imap_errors.IMAPClientError as exc:
                raise _append_refused(what, exc) from exc

    def _append(self, delivery: Delivery) -> Receipt:
        now = self._clock.now()
        prefix = trace_lines(delivery, self.name, now) if self.config.trace_headers else b""
        data = prefix + b"".join(delivery.message.chunks())
        response = self._client.append(
            self._folder, data, flags=self.config.flags,
            msg_time=self._internaldate(delivery.message, now),
        )
        uid = appenduid(response)
        ref = f"{uid[0]}:{uid[1]}" if uid else f"{self._folder}:{delivery.key}"
        return Receipt(self.name, ref)

    def _internaldate(self, message: SpooledMessage, now: datetime) -> datetime:
        """The Date header's time (config ``internaldate = "date_header"``), else ``now``."""
        if self.config.internaldate == "date_header":
            return date_header(message) or now
        return now

    # -- find ---------------------------------------------------------------

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """The receipt of an earlier APPEND of this content to the folder, if any.

        Needs ``message`` (the re-fetched bytes) unless ``trace_headers`` is on;
        without either it cannot tell and returns None.
        """
        if not _KEY.fullmatch(delivery_key):
            raise ValueError(f"not a delivery key: {delivery_key!r}")
        if not self.config.trace_headers and message is None:
            logger.warning("%s: find() without the message cannot search; assuming absent",
                           self._where)
            return None
        if self._client is None:
            await self.open()
        return await asyncio.to_thread(self._find, delivery_key, message)

    def _find(self, key: str, message: SpooledMessage | None) -> Receipt | None:
        with _translated(f"{self._where} find {key}"):
            selected = self._client.select_folder(self._folder, readonly=True)
            try:
                validity = int(selected[b"UIDVALIDITY"])
                uids = sorted(self._client.search(self._criteria(key, message)), reverse=True)
                for uid in uids[:MAX_CANDIDATES]:
                    if self._matches(uid, key):
                        return Receipt(self.name, f"{validity}:{uid}")
            finally:
                self._client.unselect_folder()
        return None

    def _criteria(self, key: str, message: SpooledMessage | None) -> list[Any]:
        if self.config.trace_headers:
            return ["HEADER", "Received", f"id {key}"]
        assert message is not None
        size = ["LARGER", message.size - 1, "SMALLER", message.size + 1]
        found = message_id(message)
        return (["HEADER", "Message-ID", found] if found else []) + size

    def _matches(self, uid: int, key: str) -> bool:
        fetched = self._client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
        data = fetched.get(b"BODY[]")
        if not isinstance(data, bytes):
            return False
        if self.config.trace_headers:
            data = _strip_trace(data)
        return hashlib.sha256(data).hexdigest()[:40] == key[16:]

    # -- teardown -----------------------------------------------------------

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown()
            except OSError:
                logger.debug("%s: shutdown failed", self._where)

    async def close(self) -> None:
        """LOGOUT when possible; never raises."""
        await asyncio.to_thread(self._logout)

    def _logout(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (imap_errors.IMAPClientError, OSError):
            self._client = client
            self._drop()


def _append_refused(what: str, exc: imap_errors.IMAPClientError) -> DeliveryError:
    """An APPEND answered NO or BAD, as a popkeep error (RFC 5530 response codes).

    [TOOBIG], [PARSE], [LIMIT] and [CANNOT] refuse this message, not the folder:
    :class:`MessageRefused`, and the rest of the batch goes on. [OVERQUOTA],
    [INUSE], [UNAVAILABLE] and [SERVERBUG] may pass: retried next run. Anything
    else (NOPERM, a BAD, a NO without a code) refuses the sink.
    """
    text = str(exc)
    match = _RESP_CODE.search(text)
    code = match.group(1).upper() if match else ""
    if code in _MESSAGE_CODES:
        return MessageRefused(f"{what}: refused: {text}")
    if code in _TEMPORARY_CODES:
        return DeliveryError(f"{what}: {text}")
    return DeliveryRefused(f"{what}: {text}")


def _strip_trace(data: bytes) -> bytes:
    """The stored bytes without the two trace lines :func:`trace_lines` prepended."""
    if not data.startswith(b"X-Popkeep-Account: "):
        return data
    first = data.find(b"\r\n")
    second = data.find(b"\r\n", first + 2)
    if first < 0 or second < 0 or not data[first + 2 :].startswith(b"Received: by popkeep"):
        return data
    return data[second + 2 :]
