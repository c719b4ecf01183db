"""Contract adapters of the network sinks: imap (the test Dovecot, through a relay that
can refuse or swallow replies), gmail (the local fake API) and lmtp (Dovecot's LMTP,
at-least-once: the kill cases bound its duplicates).

Both servers run in the test process (``setup``); what ``build`` needs in the kill
child (host, port, user, password, timeout) is written to ``DIRECTORY/net.json``.
Kill boundaries are the sink's own module functions that sit around each request:
before it is sent (IMAP ``date_header``, Gmail ``urlopen``, LMTP ``dot_stuffed``) and
after the server answered, before the sink returns the receipt (IMAP ``appenduid``,
Gmail ``_Response``, LMTP ``Receipt``), the window where the far side has committed
and the client has not recorded it.
"""

from __future__ import annotations

import imaplib
import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from popkeep.config.schema import Connection
from popkeep.config.secrets import SecretSource
from popkeep.config.sink_types import GmailSinkConfig, ImapSinkConfig, LmtpSinkConfig
from popkeep.sinks.base import Sink
from popkeep.sinks.gmail import GmailSink
from popkeep.sinks.imap import ImapSink
from popkeep.sinks.lmtp import LmtpSink

from ..fake_gmail import TOKEN, FakeGmail, make_handler
from ..imap_front import ImapFront
from .registry import REFUSE_MARK, Entry, register, strip_trace

#: servers of the current cases, by directory (they live in the test process)
_FRONTS: dict[Path, ImapFront] = {}
_APIS: dict[Path, FakeGmail] = {}
#: the one message of the batch carrying REFUSE_MARK is far larger than the others
REFUSE_ABOVE = 100_000


def _info(directory: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((directory / "net.json").read_text())
    return value


def _update(directory: Path, **values: Any) -> None:
    path = directory / "net.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(values)
    path.write_text(json.dumps(info))


# -- imap ---------------------------------------------------------------------------


class ImapAdapter:
    exactly_once = True

    def __init__(self, directory: Path) -> None:
        self.info = _info(directory)

    def sink(self) -> Sink:
        info = self.info
        server = Connection("127.0.0.1", info["port"], "none", user=info["user"],
                            secret=SecretSource("literal", info["password"]))
        return ImapSink(ImapSinkConfig(name="central", server=server, folder="INBOX",
                                       timeout=info["timeout"]))

    def held(self) -> list[bytes]:
        info = self.info
        with imaplib.IMAP4(info["host"], info["upstream"]) as client:
            client.login(info["user"], info["password"])
            typ, _ = client.select("INBOX", readonly=True)
            assert typ == "OK"
            typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        if typ != "OK" or data == [None]:
            return []
        return [strip_trace(part[1]) for part in data if isinstance(part, tuple)]


def _imap_setup(request: Any, directory: Path) -> None:
    dovecot = request.getfixturevalue("dovecot")
    user = request.getfixturevalue("dovecot_user") + f"k{len(_FRONTS)}"
    dovecot.add_user(user)
    front = ImapFront((dovecot.host, dovecot.imap_port))
    _FRONTS[directory] = front
    request.addfinalizer(lambda: _FRONTS.pop(directory).close())
    _update(directory, host=dovecot.host, port=front.port, upstream=dovecot.imap_port,
            user=user, password=dovecot.password, timeout=30.0)


def _imap_hang(directory: Path) -> None:
    _FRONTS[directory].swallow_next_append_reply()
    _update(directory, timeout=2.0)


def _imap_refuse(directory: Path) -> None:
    _FRONTS[directory].max_append = REFUSE_ABOVE


# -- gmail ----------------------------------------------------------------------------


class GmailAdapter:
    exactly_once = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.info = _info(directory)

    def sink(self) -> Sink:
        return GmailSink(GmailSinkConfig(
            name="gmail", api_endpoint=self.info["endpoint"], backoff=0.01,
            oauth_token=SecretSource("literal", TOKEN), labels=("INBOX",),
            timeout=self.info["timeout"],
        ))

    def held(self) -> list[bytes]:
        return [strip_trace(raw) for raw in _APIS[self.directory].messages.values()]


def _gmail_setup(request: Any, directory: Path) -> None:
    api = FakeGmail()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(api))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    _APIS[directory] = api

    def stop() -> None:
        api.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
        del _APIS[directory]
        assert api.errors == [], api.errors

    request.addfinalizer(stop)
    _update(directory, endpoint=f"http://127.0.0.1:{server.server_address[1]}", timeout=30.0)


def _gmail_hang(directory: Path) -> None:
    _APIS[directory].stall_imports = 1
    _update(directory, timeout=1.0)


def _gmail_refuse(directory: Path) -> None:
    _APIS[directory].refuse = REFUSE_MARK


# -- lmtp -------------------------------------------------------------------------------


class LmtpAdapter:
    exactly_once = False

    def __init__(self, directory: Path) -> None:
        self.info = _info(directory)

    def sink(self) -> Sink:
        info = self.info
        server = Connection(info["host"], info["port"], "none")
        return LmtpSink(LmtpSinkConfig(name="lmtp", recipients=(info["user"],),
                                       server=server, timeout=30.0))

    def held(self) -> list[bytes]:
        maildir = Path(self.info["maildir"])
        files = [p for sub in ("new", "cur") if (maildir / sub).is_dir()
                 for p in (maildir / sub).iterdir()]
        return [strip_trace(_without_lmtp_headers(p.read_bytes())) for p in sorted(files)]


def _without_lmtp_headers(data: bytes) -> bytes:
    """The message as sent: without the Return-Path, Delivered-To and Received (with its
    continuation lines) that Dovecot's LMTP puts in front of it."""
    lines = data.split(b"\n")
    index = 0
    for name in (b"Return-Path:", b"Delivered-To:", b"Received:"):
        if index < len(lines) and lines[index].startswith(name):
            index += 1
            while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
                index += 1
    return b"\n".join(lines[index:])


def _lmtp_setup(request: Any, directory: Path) -> None:
    dovecot = request.getfixturevalue("dovecot")
    user = request.getfixturevalue("dovecot_user") + f"l{len(list(directory.parent.iterdir()))}"
    dovecot.add_user(user)
    _update(directory, host=dovecot.host, port=dovecot.lmtp_port, user=user,
            maildir=str(dovecot.maildir(user)))


register(Entry("imap", ImapAdapter, setup=_imap_setup, disk_faults=False,
               kill_points=("popkeep.sinks.imap.date_header", "popkeep.sinks.imap.appenduid"),
               hang_after_commit=_imap_hang, refuse_marked=_imap_refuse))
register(Entry("gmail", GmailAdapter, setup=_gmail_setup, disk_faults=False,
               kill_points=("urllib.request.urlopen", "popkeep.sinks.gmail._Response"),
               hang_after_commit=_gmail_hang, refuse_marked=_gmail_refuse))
register(Entry("lmtp", LmtpAdapter, setup=_lmtp_setup, disk_faults=False,
               kill_points=("popkeep.sinks.lmtp.dot_stuffed", "popkeep.sinks.lmtp.Receipt")))
