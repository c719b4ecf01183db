"""Writing configs and running the CLI in-process against the test Dovecot."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli import main
from popkeep.model import StoredMessage
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..fixtures.dovecot import Dovecot


def account_toml(
    *,
    name: str = "isp",
    host: str = "127.0.0.1",
    port: int,
    user: str,
    password: str,
    tls: str = "starttls",
    ca_file: Path | None = None,
    sinks: list[str] | None = None,
    delete_after: str = "never",
    extra: str = "",
) -> str:
    """One ``[[account]]`` table (all sinks when ``sinks`` is None)."""
    ca = f'ca_file = "{ca_file}"\n' if ca_file else ""
    routed = f"sinks = {json.dumps(sinks)}\n" if sinks is not None else ""
    return f"""
[[account]]
name = "{name}"
host = "{host}"
port = {port}
tls = "{tls}"
{ca}user = "{user}"
password = "{password}"
{routed}delete_after = "{delete_after}"
{extra}
"""


def save_config(base: Path, text: str) -> Path:
    """``text`` as ``base/config.toml``, mode 0600 (popkeep refuses readable secrets)."""
    path = base / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def write_config(base: Path, **account: Any) -> Path:
    """A one-account (:func:`account_toml`), one-Maildir config under ``base``."""
    return save_config(
        base,
        f'[state]\npath = "{base / "state.db"}"\n\n[[sink]]\nname = "home"\n'
        f'type = "maildir"\npath = "{base / "Maildir"}"\n' + account_toml(**account),
    )


def server_config(
    base: Path, server: ScriptedPOP3Server, certs: TestCerts, **account: Any
) -> Path:
    """:func:`write_config` for the ``server`` fixture: its port, user and password,
    and the CA of ``certs``."""
    return write_config(base, port=server.port, user=server.user, password=server.password,
                        ca_file=certs.ca_file, **account)


def dovecot_config(
    dovecot: Dovecot, base: Path, user: str, *, implicit: bool = False, **kw: Any
) -> Path:
    kw.setdefault("ca_file", dovecot.ca_file)
    return write_config(
        base,
        port=dovecot.pop3s_port if implicit else dovecot.pop3_port,
        tls="implicit" if implicit else "starttls",
        user=user,
        password=kw.pop("password", dovecot.password),
        **kw,
    )


def fetch(
    config: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    """``popkeep -c CONFIG fetch --json``; returns (exit code, the account's JSON object)."""
    capsys.readouterr()
    code = main(["-c", str(config), "fetch", "--json", *args])
    out = capsys.readouterr().out
    data = json.loads(out)["accounts"][0]
    return code, data


def maildir_messages(maildir: Path) -> list[bytes]:
    """The collected messages in new/ and cur/: not popkeep's own alert notices
    (docs/alerts.md), which a failing run may add."""
    files = [p for d in ("new", "cur") for p in (maildir / d).iterdir()]
    messages = [p.read_bytes() for p in files]
    return [m for m in messages if b"\nX-Popkeep-Alert: " not in m.split(b"\n\n", 1)[0]]


def digests(messages: list[bytes]) -> list[str]:
    return sorted(hashlib.sha256(m.replace(b"\r\n", b"\n")).hexdigest() for m in messages)


def stored_messages(state: Path, account: str = "isp") -> dict[str, StoredMessage]:
    """What the SQLite store at ``state`` records of ``account``'s messages."""
    store = SQLiteStore.open(state)
    try:
        return store.messages(account)
    finally:
        store.close()


def rewrite_then_reuse(
    server: ScriptedPOP3Server, config: Path, maildir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server rewrites its 4th message in place (``Status: RO``): the next poll
    delivers nothing; then it gives the 5th's UIDL to new mail: the next poll delivers
    that mail, and only it (docs/guarantees.md, point 10). For accounts whose messages
    were marked collected without being fetched (baseline, import-state)."""
    box = server.mailbox
    uids = box.uids
    marked = box.message(uids[3]).replace(b"\r\n\r\n", b"\r\nStatus: RO\r\n\r\n", 1)
    box.reuse_uid(uids[3], marked)  # the same message, rewritten in place by the server
    code, data = fetch(config, capsys)
    assert (code, data["delivered"]) == (0, 0), data  # its header digest tells: the same
    new = b"From: x@example.com\r\nSubject: under an old uidl\r\nMessage-ID: <n@x>\r\n\r\nhi\r\n"
    box.remove(uids[4])  # deleted elsewhere, and its UIDL given to new mail, between polls
    box.reuse_uid(uids[4], new)
    code, data = fetch(config, capsys)
    assert (code, data["delivered"]) == (0, 1), data
    assert [p.read_bytes() for p in (maildir / "new").iterdir()] == [new.replace(b"\r\n", b"\n")]
