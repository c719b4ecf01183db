"""Contract adapters of the local sinks: maildir, mbox (trace headers off and on), mda."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from popkeep.config.sink_types import MboxSinkConfig, MdaSinkConfig
from popkeep.sinks.base import Sink
from popkeep.sinks.maildir import MaildirSink
from popkeep.sinks.mbox import MboxSink, mboxrd_unquote
from popkeep.sinks.mda import MdaSink

from .registry import Entry, register, strip_trace


class MaildirAdapter:
    exactly_once = True

    def __init__(self, directory: Path) -> None:
        self.root = directory / "Maildir"

    def sink(self) -> Sink:
        return MaildirSink("box", self.root)

    def held(self) -> list[bytes]:
        return [strip_trace(path.read_bytes()) for sub in ("new", "cur")
                if (self.root / sub).is_dir() for path in sorted((self.root / sub).iterdir())]


def read_mboxrd(data: bytes) -> list[bytes]:
    """An independent mboxrd reader: a ``From `` line opens a message at the start of the
    file or after an empty line; one ``>`` is taken off quoted From lines; the empty
    separator line before the next message (or the end) is not part of the message.
    Whatever precedes the first From_ line, or an unterminated last line, is kept
    as (part of) a message, so a cut-off copy shows up as one."""
    complete = data.endswith(b"\n")
    lines = (data[:-1] if complete else data).split(b"\n") if data else []
    messages: list[list[bytes]] = []
    previous_empty = True
    for line in lines:
        if line.startswith(b"From ") and previous_empty:
            messages.append([])
        else:
            if not messages:
                messages.append([b"(no From_ line)"])
            messages[-1].append(mboxrd_unquote(line))
        previous_empty = line == b""
    out = []
    for message in messages:
        if message and message[-1] == b"":
            message = message[:-1]
        out.append(b"".join(line + b"\n" for line in message))
    return out


class MboxAdapter:
    def __init__(self, directory: Path, trace_headers: bool) -> None:
        self.path = directory / "mbox"
        self.trace_headers = trace_headers
        self.exactly_once = True

    def sink(self) -> Sink:
        config = MboxSinkConfig(name="box", path=self.path, lock_timeout=5.0,
                                trace_headers=self.trace_headers)
        return MboxSink(config)

    def held(self) -> list[bytes]:
        if not self.path.exists():
            return []
        return [strip_trace(m) for m in read_mboxrd(self.path.read_bytes())]


#: a tiny MDA: reads stdin whole, stores it with tmp + rename (so the suite never sees
#: the MDA's own partial file), and, if ``hang`` exists, removes it and stops answering
MDA_SCRIPT = """
import os, sys, time
out = sys.argv[1]
data = sys.stdin.buffer.read()
name = str(os.getpid())
with open(os.path.join(out, "tmp", name), "wb") as file:
    file.write(data)
os.rename(os.path.join(out, "tmp", name), os.path.join(out, "new", name))
if os.path.exists(os.path.join(out, "hang")):
    os.unlink(os.path.join(out, "hang"))
    time.sleep(60)
"""


class MdaAdapter:
    exactly_once = False

    def __init__(self, directory: Path) -> None:
        self.out = directory / "mda"
        for sub in ("tmp", "new"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.script = self.out / "mda.py"
        if not self.script.exists():
            self.script.write_text(MDA_SCRIPT)

    def sink(self) -> Sink:
        timeout = 5.0 if (self.out / "hang").exists() else 30.0
        command = (sys.executable, str(self.script), str(self.out))
        return MdaSink(MdaSinkConfig(name="box", command=command, timeout=timeout))

    def _running(self) -> bool:
        """Whether an MDA of this directory still runs (an orphan of a killed parent)."""
        needle = str(self.script).encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if needle in cmdline.read_bytes():
                    return True
            except OSError:
                continue
        return False

    def held(self) -> list[bytes]:
        deadline = time.monotonic() + 30
        while self._running():
            assert time.monotonic() < deadline, "an MDA process did not finish"
            time.sleep(0.02)  # polling /proc: there is no event to wait on for an orphan
        return [strip_trace(p.read_bytes()) for p in sorted((self.out / "new").iterdir())]


def _hang(directory: Path) -> None:
    (directory / "mda").mkdir(exist_ok=True)
    (directory / "mda" / "hang").write_text("")


register(Entry("maildir", MaildirAdapter))
register(Entry("mbox", lambda d: MboxAdapter(d, trace_headers=False)))
register(Entry("mbox-trace", lambda d: MboxAdapter(d, trace_headers=True)))
register(Entry("mda", MdaAdapter, kill_points=(*Entry.kill_points, "os.read"),
               hang_after_commit=_hang))
