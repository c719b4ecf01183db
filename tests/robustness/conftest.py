"""A hostile POP3 server and the real CLI, in-process, plus the safety checks every case makes."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli import main
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import realistic_mailbox
from popkeep.testing.misbehaviour import Misbehaviour
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..integration.helpers import write_config

PASSWORD = "hostile-pw-42"


def digest(data: bytes) -> str:
    """sha256 of the LF form (what the Maildir stores)."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


@dataclass
class Case:
    """One server (with its misbehaviour), one config directory, and the CLI to run."""

    server: ScriptedPOP3Server
    base: Path
    capsys: pytest.CaptureFixture[str]
    config: Path | None = None
    by_uid: dict[str, str] = field(default_factory=dict)  #: uid → digest, as first served

    def __post_init__(self) -> None:
        box = self.server.mailbox
        self.by_uid = {uid: digest(box.message(uid)) for uid in box.uids}

    @property
    def maildir(self) -> Path:
        return self.base / "Maildir"

    def configure(self, **kw: str) -> Path:
        certs: TestCerts = self.server.certs  # type: ignore[attr-defined]
        self.config = write_config(
            self.base, port=self.server.port, user="taro", password=PASSWORD,
            ca_file=certs.ca_file, **kw,
        )
        return self.config

    def fetch(self) -> tuple[int, list[str]]:
        """``popkeep fetch`` in-process: (exit code, stderr lines)."""
        assert self.config is not None, "configure() first"
        self.capsys.readouterr()
        code = main(["-c", str(self.config), "fetch"])
        return code, self.capsys.readouterr().err.strip().splitlines()

    def files(self) -> list[Path]:
        """The collected messages in new/ and cur/ (not popkeep's own alert notices,
        docs/alerts.md: a skipped message raises one)."""
        return [p for d in ("new", "cur") if (self.maildir / d).is_dir()
                for p in (self.maildir / d).iterdir() if not _is_alert(p)]

    def stored(self) -> Counter[str]:
        return Counter(digest(p.read_bytes()) for p in self.files())

    def assert_failed_cleanly(self, code: int, err: list[str], *words: str) -> None:
        """One line naming the account and the reason; nothing unsafe happened."""
        assert code != 0
        assert len(err) == 1, err
        assert err[0].startswith("isp: FAILED: "), err
        for word in words:
            assert word.lower() in err[0].lower(), (word, err[0])
        self.assert_safe()

    def assert_safe(self) -> None:
        """Only whole served messages in new/cur, none twice; nothing deleted that is not
        stored; every delivered row of the state store is in the Maildir."""
        stored = self.stored()
        assert set(stored) <= set(self.by_uid.values()), "a partial or foreign file"
        assert all(n == 1 for n in stored.values()), "a message stored twice"
        deleted = {self.by_uid[u] for u in self.server.mailbox.deleted}
        assert deleted <= set(stored), "deleted on the server but not stored"
        names = {p.name.split(":2,")[0] for p in self.files()}
        refs = self.query("SELECT ref FROM receipts")
        assert set(refs) <= names, "a receipt names a file that is not in the Maildir"
        pending = self.query("SELECT uid FROM messages WHERE state = 'delete_pending'")
        assert not pending, "DELE left pending after the run ended"

    def query(self, sql: str) -> list[Any]:
        """First column of ``sql`` over the state database (empty if there is none)."""
        db = self.base / "state.db"
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            return [row[0] for row in conn.execute(sql)]

    def resume(self) -> dict[str, Any]:
        """The server is fixed: a normal run completes, and the Maildir holds everything
        the server still lists (and everything it deleted) exactly once."""
        self.server.misbehave = Misbehaviour()
        code, err = self.fetch()
        assert code == 0, err
        self.assert_safe()
        listed = {self.by_uid[u] for u in self.server.mailbox.uids}
        assert listed <= set(self.stored())
        return {"stored": self.stored()}


def small_mailbox(count: int = 5, seed: int = 11) -> Mailbox:
    return Mailbox.from_messages(realistic_mailbox(count, seed=seed, size_profile="small"))


@pytest.fixture
def hostile(
    certs: TestCerts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Case]]:
    """``hostile(mailbox=None, stls=True, **misbehaviour)`` → a running :class:`Case`."""
    threads: list[ServerThread] = []

    def make(mailbox: Mailbox | None = None, *, stls: bool = True, **mis: Any) -> Case:
        server = ScriptedPOP3Server(
            mailbox if mailbox is not None else small_mailbox(),
            user="taro", password=PASSWORD, tls_context=certs.server_context(), stls=stls,
            misbehave=Misbehaviour(**mis),
        )
        server.certs = certs  # type: ignore[attr-defined]
        thread = ServerThread(server)
        thread.start()
        threads.append(thread)
        base = tmp_path / f"case{len(threads)}"
        base.mkdir()
        return Case(server, base, capsys)

    yield make
    for thread in threads:
        thread.stop()


def _is_alert(path: Path) -> bool:
    """An alert notice popkeep wrote itself (its header block names X-Popkeep-Alert)."""
    head = path.read_bytes().split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return b"\nX-Popkeep-Alert: " in head
