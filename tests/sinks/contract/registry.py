"""How a sink joins the contract suite, and the batch every case delivers.

The suite (``test_contract.py``) runs every case against every registered sink.
A sink is "durable" in docs/guarantees.md only once it passes. To add one:

1. write a module under ``tests/sinks/contract/`` that calls :func:`register`
   at import time (see ``local.py``), and name it in :data:`ADAPTER_MODULES`;
2. ``register(Entry(name, build, ...))``, where ``build(directory)`` returns an
   :class:`Adapter`: a fresh sink over the storage behind ``directory``, and a
   way to read back every message that storage holds. ``build`` is called in
   the test process *and* in the kill child (``child.py``) with the same
   directory, so everything it needs must be derivable from that directory;
   a sink that needs a server gets an ``Entry.setup(request, directory)``, run
   once per case in the test process before any ``build``, which may start
   fixtures (``request.getfixturevalue("dovecot")``) and write what ``build``
   needs into ``directory``.

What the cases check (``Adapter.exactly_once`` selects the promise):

- *exactly once*: after a crash and recovery (``find`` for every key, then
  ``deliver`` of the rest) every message of the batch is held once, complete;
- *at least once*: every message is held, complete, at most once more per crash
  (or per timeout) than it was delivered;
- always: nothing incomplete is ever held (a partial copy is a failure), and a
  failed ``deliver`` raises a one-line :class:`~popkeep.errors.DeliveryError`.

Optional capabilities of an :class:`Entry` (a case runs only for the entries
that have it):

- ``kill_points``: the functions (dotted names) the kill child counts as
  write/append boundaries; it SIGKILLs itself before the n-th call, for every
  n. Local sinks count ``os`` calls; a network sink names its send function.
- ``disk_faults``: the sink writes local files with ``os.write``, so the suite
  can inject ENOSPC/EFBIG and short writes by patching it.
- ``hang_after_commit(directory)``: make the far side store the next message
  and then stop answering (once), so the sink times out after the commit; the
  sink ``build`` returns afterwards must time out within a few seconds. An
  exactly-once sink may look (``find``) and carry on; the others must fail.
- ``refuse_marked(directory)``: make the far side refuse the message carrying
  :data:`REFUSE_MARK` for good (a size limit, an invalid-message answer), so the
  sink raises ``MessageRefused`` with the receipts of the messages before it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from popkeep.sinks.base import Delivery, Sink, delivery_key
from popkeep.spool import SpooledMessage

#: modules that register adapters (import order = test order)
ADAPTER_MODULES = ("tests.sinks.contract.local", "tests.sinks.contract.network")

ACCOUNT = "contract"
#: header of the message the "message k of a batch fails" case makes the sink refuse
REFUSE_MARK = b"X-Contract-Refuse: yes"

#: boundaries of a sink that writes local files
LOCAL_KILL_POINTS = ("os.write", "os.pwrite", "os.fsync", "os.ftruncate", "os.rename",
                     "os.link", "os.unlink")


class Adapter(Protocol):
    """One sink under test, over storage that outlives the process."""

    exactly_once: bool  #: the promise the sink makes (see the module docstring)

    def sink(self) -> Sink:
        """A new sink object over the storage (not yet opened)."""
        ...

    def held(self) -> list[bytes]:
        """Every message the storage holds, as stored, in LF form, without popkeep's
        trace lines (``X-Popkeep-Account``, ``Received: by popkeep``); waits until
        anything still writing on the sink's behalf (an orphaned MDA) is finished."""
        ...


@dataclass(frozen=True)
class Entry:
    """A registered sink: how to build it, and what the suite may do to it."""

    name: str
    build: Callable[[Path], Adapter]
    setup: Callable[[Any, Path], None] | None = None
    kill_points: tuple[str, ...] = LOCAL_KILL_POINTS
    disk_faults: bool = True
    hang_after_commit: Callable[[Path], None] | None = None
    refuse_marked: Callable[[Path], None] | None = None
    marks: tuple[Any, ...] = ()


_ENTRIES: dict[str, Entry] = {}


def register(entry: Entry) -> None:
    """Add ``entry`` to the suite (its name becomes the test id)."""
    if entry.name in _ENTRIES:
        raise ValueError(f"sink adapter {entry.name!r} registered twice")
    _ENTRIES[entry.name] = entry


def entries() -> list[Entry]:
    """Every registered entry, importing :data:`ADAPTER_MODULES` first."""
    for module in ADAPTER_MODULES:
        importlib.import_module(module)
    return list(_ENTRIES.values())


def entry(name: str) -> Entry:
    entries()
    return _ENTRIES[name]


def batch_bytes() -> list[bytes]:
    """The three messages every case delivers: mboxrd traps, a big one written in many
    blocks (carrying :data:`REFUSE_MARK`), and one without a final line end."""
    big_body = b"".join(b"line %06d of a long message\r\nFrom here on\r\n" % i for i in range(5000))
    return [
        b"Return-Path: <a@example.org>\r\nMessage-ID: <c1@example.org>\r\nSubject: one\r\n\r\n"
        b"From the start\r\n>From quoted once\r\nbody\r\n",
        b"Message-ID: <c2@example.org>\r\n" + REFUSE_MARK + b"\r\nSubject: big\r\n\r\n" + big_body,
        b"Message-ID: <c3@example.org>\r\nSubject: three\r\n\r\nno final line end",
    ]


def deliveries() -> list[Delivery]:
    """:func:`batch_bytes` as fresh deliveries (keys as the collector derives them)."""
    out = []
    for number, data in enumerate(batch_bytes(), 1):
        message = SpooledMessage.from_bytes(data)
        out.append(Delivery(ACCOUNT, f"u{number}", delivery_key(ACCOUNT, message.sha256), message))
    return out


def canonical(message: bytes) -> bytes:
    """What two copies of one message have in common across sinks: LF line ends, and
    no line ends at the very end (mbox adds one where a message has none)."""
    return message.replace(b"\r\n", b"\n").rstrip(b"\n")


def strip_trace(message: bytes) -> bytes:
    """``message`` without the trace lines a sink with ``trace_headers`` prepends."""
    for prefix in (b"X-Popkeep-Account: ", b"Received: by popkeep "):
        if message.startswith(prefix):
            message = message[message.index(b"\n") + 1 :]
    return message
