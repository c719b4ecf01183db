"""The collector with staging sinks: messages are staged as they arrive and committed in
groups; an account may mix staging (Maildir) and non-staging (mbox) sinks; a big
message's spool is released before the commit flushes the disk."""

from __future__ import annotations

import asyncio
import hashlib
import mailbox
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from popkeep.app import App
from popkeep.clock import SystemClock
from popkeep.collector import AccountJob, AccountResult, Collector
from popkeep.config.load import load_config
from popkeep.config.sink_types import MboxSinkConfig
from popkeep.errors import DeliveryError
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery, Staged
from popkeep.sinks.maildir import MaildirSink
from popkeep.sinks.mbox import MboxSink
from popkeep.spool import Spool
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import big_message, realistic_mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..integration.helpers import account_toml, save_config, write_config

PASSWORD = "staging-pw-7"
BIG = 20_000_000


def _digest(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Mailbox], tuple[ScriptedPOP3Server, Path]]]:
    threads: list[ServerThread] = []

    def make(box: Mailbox) -> tuple[ScriptedPOP3Server, Path]:
        server = ScriptedPOP3Server(box, user="taro", password=PASSWORD)
        thread = ServerThread(server)
        thread.start()
        threads.append(thread)
        return server, write_config(tmp_path, port=server.port, user="taro",
                                    password=PASSWORD, tls="none", delete_after="0s")

    yield make
    for thread in threads:
        thread.stop()


def _run(config: Path, tune: Callable[[AccountJob], AccountJob],
         progress: list[int] | None = None,
         spool: Callable[[Spool, AccountJob], None] | None = None) -> AccountResult:
    """One pass; ``spool`` is shown the account's spool factory and its job first."""
    cfg = load_config(config)
    store = SQLiteStore.open(cfg.state.path or config.parent / "state.db")
    try:
        app = App(cfg, store=store)
        job = app.job(cfg.accounts["isp"])
        if spool is not None:
            spool(app.spool("isp"), job)
        job = tune(job)
        report = None if progress is None else (lambda _a, done, _t, _b: progress.append(done))
        return asyncio.run(Collector(AsyncStore(store), SystemClock(), report).run(job))
    finally:
        store.close()


def _maildir(config: Path) -> Counter[str]:
    root = config.parent / "Maildir"
    return Counter(_digest(p.read_bytes()) for d in ("new", "cur") if (root / d).is_dir()
                   for p in (root / d).iterdir())


def _mbox_ids(path: Path) -> Counter[str]:
    box = mailbox.mbox(path, create=False)
    try:
        return Counter(str(m["Message-ID"]) for m in box)
    finally:
        box.close()


def _ids(box: Mailbox) -> Counter[str]:
    found = Counter[str]()
    for uid in box.uids:
        header = box.message(uid).split(b"\r\n\r\n", 1)[0]
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                found[line.split(b":", 1)[1].strip().decode()] += 1
    return found


class FailingStage:
    """A Maildir sink whose ``stage`` fails (a full disk, say): a failing staging sink."""

    def __init__(self, real: MaildirSink) -> None:
        self._real = real
        self.name, self.exactly_once = real.name, real.exactly_once

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def stage(self, batch: Sequence[Delivery]) -> list[Staged]:
        raise DeliveryError("maildir: cannot store in tmp: No space left on device")


def test_mixed_account_gets_every_message_exactly_once_in_both(
    serve: Callable[[Mailbox], tuple[ScriptedPOP3Server, Path]], tmp_path: Path,
) -> None:
    messages = list(realistic_mailbox(23, seed=21, size_profile="small"))
    box = Mailbox.from_messages([*messages, messages[4]])  # one content listed twice
    expected_ids = _ids(Mailbox.from_messages(messages))
    server, config = serve(box)
    digests = {_digest(m) for m in messages}
    mbox_path = tmp_path / "all.mbox"

    def mixed(job: AccountJob) -> AccountJob:
        # batch_messages: with a non-staging sink, the commit group (≈ 5 commits here)
        return job._replace(batch_messages=5, stage_messages=2, sinks=[
            *job.sinks, MboxSink(MboxSinkConfig("archive", mbox_path))])

    progress: list[int] = []
    result = _run(config, mixed, progress)
    assert result.error is None, result.error
    assert result.summary.delivered == 23 and result.summary.adopted == 1
    assert len(progress) >= 4 and progress[-1] == 24  # several commits, all counted
    assert _maildir(config) == Counter(digests)  # exactly once each
    assert _mbox_ids(mbox_path) == expected_ids
    assert len(server.mailbox) == 0  # both sinks hold everything: deleted
    box.add(b"Message-ID: <late@example.jp>\r\nSubject: late\r\n\r\nlate\r\n", "late")
    assert _run(config, mixed).error is None
    assert sum(_maildir(config).values()) == 24
    assert _mbox_ids(mbox_path)["<late@example.jp>"] == 1
    assert sum(_mbox_ids(mbox_path).values()) == 24


def test_staging_only_account_commits_in_groups(
    serve: Callable[[Mailbox], tuple[ScriptedPOP3Server, Path]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = list(realistic_mailbox(10, seed=22, size_profile="small"))
    _, config = serve(Mailbox.from_messages(messages))
    progress: list[int] = []
    commits: list[int] = []
    record = SQLiteStore.record_delivered

    def recording(self: SQLiteStore, account: str, delivered: Sequence[Any],
                  *args: Any) -> None:
        commits.append(len(delivered))
        record(self, account, delivered, *args)

    monkeypatch.setattr(SQLiteStore, "record_delivered", recording)
    # batch_messages (the non-staging commit group) must not matter here
    result = _run(config, lambda job: job._replace(
        batch_messages=1, commit_messages=4, stage_messages=1), progress)
    assert result.error is None, result.error
    assert commits == [4, 4, 2]  # one durable commit per 4 messages, and the rest
    # progress follows every staged message, not only the commits
    assert progress == sorted(progress) and progress[-1] == 10 and len(progress) > 3
    assert _maildir(config) == Counter(_digest(m) for m in messages)
    assert list((config.parent / "Maildir" / "tmp").iterdir()) == []


def test_a_failing_staging_sink_does_not_stop_the_other_sink(
    serve: Callable[[Mailbox], tuple[ScriptedPOP3Server, Path]], tmp_path: Path,
) -> None:
    messages = list(realistic_mailbox(6, seed=23, size_profile="small"))
    box = Mailbox.from_messages(messages)
    server, config = serve(box)
    mbox_path = tmp_path / "all.mbox"

    def with_mbox(failing: bool) -> Callable[[AccountJob], AccountJob]:
        def tune(job: AccountJob) -> AccountJob:
            maildir = job.sinks[0]
            assert isinstance(maildir, MaildirSink)
            first = FailingStage(maildir) if failing else maildir
            return job._replace(batch_messages=2, sinks=[
                first, MboxSink(MboxSinkConfig("archive", mbox_path))])
        return tune

    result = _run(config, with_mbox(failing=True))
    assert isinstance(result.error, DeliveryError) and "No space left" in str(result.error)
    assert sum(_maildir(config).values()) == 0
    assert list((config.parent / "Maildir" / "tmp").iterdir()) == []
    assert sum(_mbox_ids(mbox_path).values()) == 6  # the other sink still delivered
    assert len(server.mailbox) == 6  # not in every sink: nothing deleted
    result = _run(config, with_mbox(failing=False))  # the disk is fixed
    assert result.error is None, result.error
    assert _maildir(config) == Counter(_digest(m) for m in messages)
    assert sum(_mbox_ids(mbox_path).values()) == 6  # not delivered to the mbox again
    assert len(server.mailbox) == 0


class WatchCommit:
    """A Maildir sink that records, at each commit, whether the staged messages'
    spools were already released."""

    def __init__(self, real: MaildirSink) -> None:
        self._real = real
        self.name, self.exactly_once = real.name, real.exactly_once
        self.at_commit: list[tuple[int, bool]] = []  #: (size, spool closed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def commit(self, staged: Sequence[Staged]) -> list[Receipt]:
        self.at_commit += [(h.delivery.message.size, h.delivery.message.closed) for h in staged]
        return await self._real.commit(staged)


@pytest.mark.slow
def test_a_big_message_spool_is_released_before_the_commit(
    serve: Callable[[Mailbox], tuple[ScriptedPOP3Server, Path]],
) -> None:
    box = Mailbox()
    box.add_stream(lambda: big_message(BIG, seed=5), BIG, "big")
    box.add(b"Subject: small\r\n\r\nsmall\r\n", "small")
    _, config = serve(box)
    watched: list[WatchCommit] = []

    def check(spool: Spool, job: AccountJob) -> None:
        maildir = job.sinks[0]
        assert isinstance(maildir, MaildirSink)
        # spilled messages get their LF copy in its tmp/, and (only sink) nothing else
        assert spool.lf_copy == maildir.lf_copy._replace(only=True)

    def watch(job: AccountJob) -> AccountJob:
        assert isinstance(job.sinks[0], MaildirSink)
        watched.append(WatchCommit(job.sinks[0]))
        return job._replace(sinks=watched)

    result = _run(config, watch, spool=check)
    assert result.error is None, result.error
    # the 20 MB message spilled to a spool file (> 4 MB); closed before the flush
    assert sorted(watched[0].at_commit) == [(25, True), (BIG, True)]
    stored = sorted((config.parent / "Maildir" / "new").iterdir(), key=lambda p: p.stat().st_size)
    assert stored[1].stat().st_size > BIG * 0.95
    original = b"".join(big_message(BIG, seed=5))
    assert _digest(stored[1].read_bytes()) == _digest(original)  # CRLF → LF, nothing else


@pytest.mark.slow
def test_a_big_message_reaches_a_maildir_and_an_mbox(tmp_path: Path) -> None:
    # Not every sink stores LF: the spool keeps the network form too (LfCopy.only off).
    box = Mailbox()
    box.add_stream(lambda: big_message(BIG, seed=6), BIG, "big")
    server = ScriptedPOP3Server(box, user="taro", password=PASSWORD)
    thread = ServerThread(server)
    thread.start()
    try:
        config = save_config(
            tmp_path,
            f'[state]\npath = "{tmp_path / "state.db"}"\n\n'
            f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{tmp_path / "Maildir"}"\n\n'
            f'[[sink]]\nname = "archive"\ntype = "mbox"\npath = "{tmp_path / "all.mbox"}"\n'
            + account_toml(
                port=server.port, user="taro", password=PASSWORD, tls="none",
                sinks=["home", "archive"],
            ),
        )

        def check(spool: Spool, _job: AccountJob) -> None:
            assert spool.lf_copy is not None and not spool.lf_copy.only

        result = _run(config, lambda job: job, spool=check)
    finally:
        thread.stop()
    assert result.error is None, result.error
    original = b"".join(big_message(BIG, seed=6))
    (stored,) = (tmp_path / "Maildir" / "new").iterdir()
    assert _digest(stored.read_bytes()) == _digest(original)
    archived = (tmp_path / "all.mbox").read_bytes()
    assert len(archived) > len(original) * 0.95
    first_line = original.split(b"\r\n", 1)[0].decode()
    assert first_line.encode() in archived
