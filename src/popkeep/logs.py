"""Which account a log line is about.

Owns: the account a pass is working on, as a context variable that every
logger's records can be stamped with (:class:`AccountFilter`), so a line reads
``… [isp] popkeep.pop3.client: …`` without each module naming the account.
Must not: configure handlers or levels (the command line does), or import
anything of popkeep.

A context variable follows the code that set it: an asyncio task copies the
context it was created in, and a thread starts with an empty one, so the pass
sets it where it runs (:func:`account`), in whichever thread or task that is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ACCOUNT: ContextVar[str | None] = ContextVar("popkeep_account", default=None)


@contextmanager
def account(name: str) -> Iterator[None]:
    """Log lines written inside this block (in this thread or task) name ``name``."""
    token = _ACCOUNT.set(name)
    try:
        yield
    finally:
        try:
            _ACCOUNT.reset(token)
        except ValueError:  # a coroutine begun in one context, ended in another
            _ACCOUNT.set(None)  # (cli.quick.poll): that one set it again around the rest


def current_account() -> str | None:
    """The account of the pass running in this context, if any."""
    return _ACCOUNT.get()


class AccountFilter(logging.Filter):
    """Sets ``record.account`` to ``"[name] "`` inside a pass, ``""`` outside; passes all."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = _ACCOUNT.get()
        record.account = "" if name is None else f"[{name}] "
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC ISO 8601), ``level``, ``logger``,
    ``account`` (or null), ``message`` and, with a traceback, ``exception``.

    Formats what the handler's filters left, so the secret-masking filter still
    applies; needs the :class:`AccountFilter` on the same handler for ``account``.
    """

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "account": _ACCOUNT.get() if getattr(record, "account", "") else None,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        import json  # here: a cron poll logging text lines never loads it (≈ 5 M instructions)

        return json.dumps(event, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
