"""Sources: the registry by ``[[account]] type``, and the collector driving a source
that is not POP3 (opaque keys, no message numbers) through its one pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from popkeep import app
from popkeep.clock import SystemClock
from popkeep.collector import AccountJob, Collector
from popkeep.config.load import ACCOUNT_TYPES, load_config
from popkeep.config.schema import AccountConfig, MaildirSinkConfig
from popkeep.errors import ConfigError, MessageError
from popkeep.model import MessageState, RetentionPolicy
from popkeep.sinks.maildir import MaildirSink
from popkeep.sources.base import ListedMessage, Listing, SessionFactory, SourceSession
from popkeep.sources.pop3 import StreamOpener
from popkeep.spool import SpooledMessage, SpoolFactory, SpoolWriter
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.sqlite import SQLiteStore
from popkeep.transport.base import TLSInfo

from .integration.helpers import write_config


class FolderSource:
    """A source shaped like an IMAP folder: keys are ``UIDVALIDITY/UID`` strings, the
    server reports sizes with the listing, and deletions are confirmed by expunging."""

    def __init__(self, box: dict[str, bytes], refuse: Sequence[str] = ()) -> None:
        self.box = box
        self.refuse = set(refuse)
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.marked: set[str] = set()

    @property
    def tls(self) -> TLSInfo | None:
        return None

    @property
    def capabilities(self) -> dict[str, list[str]]:
        return {"IMAP4rev1": []}

    @property
    def login_interval(self) -> float | None:
        return None

    async def list_mailbox(self) -> Listing:
        self.calls.append(("list", ()))
        return Listing(len(self.box), sum(map(len, self.box.values())), self.box.keys())

    async def describe(
        self, keys: Sequence[str], *, identify: bool = False, verify: bool = False
    ) -> list[ListedMessage]:
        self.calls.append(("describe", tuple(keys)))
        return [ListedMessage(k, len(self.box[k]), identity=f"id-{k}") for k in sorted(keys)]

    async def retrieve(self, keys: Sequence[str]) -> AsyncIterator[tuple[str, SpooledMessage]]:
        self.calls.append(("retrieve", tuple(keys)))
        for key in keys:
            writer = SpoolWriter()
            writer.write(self.box[key])
            yield key, writer.finish()

    async def delete(self, keys: Sequence[str]) -> list[str]:
        self.calls.append(("delete", tuple(keys)))
        self.marked.update(k for k in keys if k not in self.refuse)
        return [k for k in keys if k in self.refuse]

    async def commit(self) -> bool:
        self.calls.append(("commit", ()))
        for key in self.marked:
            del self.box[key]
        self.marked.clear()
        return True

    async def close(self) -> None:
        self.marked.clear()


def _message(n: int) -> bytes:
    return f"Message-ID: <{n}@example>\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()


def _pass(tmp_path: Path, source: FolderSource, policy: RetentionPolicy) -> AccountJob:
    async def connect() -> SourceSession:
        return source

    sink = MaildirSink.from_config(MaildirSinkConfig("home", tmp_path / "Maildir"))
    return AccountJob("folder", connect, [sink], policy)


def test_the_collector_drives_a_source_of_opaque_keys(tmp_path: Path) -> None:
    box = {f"7/{n}": _message(n) for n in (3, 10, 200)}
    source = FolderSource(box, refuse=["7/10"])
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        collector = Collector(AsyncStore(store), SystemClock())
        job = _pass(tmp_path, source, RetentionPolicy(delete_after=timedelta(0)))
        result = asyncio.run(collector.run(job))
        assert result.error is None, result.error
        assert result.summary.delivered == 3
        assert result.summary.deleted == 2  # 7/10 refused: kept, rechecked next run
        keys = ("7/10", "7/200", "7/3")
        (described,) = [c[1] for c in source.calls if c[0] == "describe"]
        assert sorted(described) == list(keys)
        assert ("retrieve", keys) in source.calls  # in the order the source described
        assert source.calls[-1] == ("commit", ())
        assert set(box) == {"7/10"}
        states = store.uids_by_state("folder")
        assert sorted(states[MessageState.DELETED]) == ["7/200", "7/3"]
        assert states[MessageState.DELIVERED] == ["7/10"]
        stored = [p.read_bytes() for p in (tmp_path / "Maildir" / "new").iterdir()]
        assert sorted(stored) == sorted(_message(n).replace(b"\r\n", b"\n") for n in (3, 10, 200))

        # Nothing new: listed, compared, committed; nothing described or retrieved.
        source.calls.clear()
        again = asyncio.run(collector.run(_pass(tmp_path, source, RetentionPolicy())))
        assert again.error is None and again.summary.delivered == 0
        assert source.calls == [("list", ()), ("commit", ())]
    finally:
        store.close()


def test_a_refused_retrieval_names_keys_not_numbers(tmp_path: Path) -> None:
    class Refusing(FolderSource):
        async def retrieve(
            self, keys: Sequence[str]
        ) -> AsyncIterator[tuple[str, SpooledMessage]]:
            async for key, message in super().retrieve(keys[1:]):
                yield key, message
            raise MessageError(f"refused {keys[0]}")

    source = Refusing({"a": _message(1), "b": _message(2)})
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        result = asyncio.run(Collector(AsyncStore(store), SystemClock()).run(
            _pass(tmp_path, source, RetentionPolicy())))
        assert isinstance(result.error, MessageError)
        assert store.uids_by_state("folder")[MessageState.DELIVERED] == ["b"]
    finally:
        store.close()


def test_every_account_type_has_a_source() -> None:
    assert set(ACCOUNT_TYPES) == set(app.SOURCE_BUILDERS)


def test_the_account_type_picks_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path, port=110, user="taro", password="pw",
                                      tls="none"))
    account = config.accounts["isp"]
    assert account.type == "pop3"
    real = app.SOURCE_BUILDERS["pop3"]
    built: list[object] = []

    def fake(
        account: AccountConfig, spool: SpoolFactory, opener: StreamOpener | None
    ) -> SessionFactory:
        built.append(spool)
        return real(account, spool, opener)

    monkeypatch.setitem(app.SOURCE_BUILDERS, "pop3", fake)
    the_app = app.App(config)
    the_app.job(account)
    assert built == [the_app.spool("isp")]  # built with the app's spool factory for it
    with pytest.raises(ConfigError, match=r'account "isp": unknown type .*known: pop3'):
        app.build_source(account._replace(type="imap"), SpoolWriter)  # type: ignore[arg-type]
