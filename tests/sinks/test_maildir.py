"""The Maildir sink: stored bytes, file names, idempotency, folders, failure cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import mailbox
import os
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from popkeep.clock import FakeClock
from popkeep.config.schema import MaildirSinkConfig
from popkeep.errors import CannotCreate, ConfigError, DeliveryError, DeliveryRefused
from popkeep.model import Receipt
from popkeep.sinks import maildir as maildir_module
from popkeep.sinks.base import Delivery, Sink, Staged, delivery_key, staging
from popkeep.sinks.maildir import MaildirSink, folder_dirname
from popkeep.spool import LfCopy, SpooledMessage, SpoolWriter

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def make(data: bytes, account: str = "isp", uid: str = "uid") -> Delivery:
    message = SpooledMessage.from_bytes(data)
    return Delivery(account, uid, delivery_key(account, message.sha256), message)


def sink(path: Path, folder: str | None = None, fsync: bool = True) -> MaildirSink:
    return MaildirSink("md", path, folder=folder, fsync=fsync, clock=FakeClock(T0))


def deliver(s: Sink, batch: list[Delivery]) -> list[Receipt]:
    async def go() -> list[Receipt]:
        await s.open()
        try:
            return await s.deliver(batch)
        finally:
            await s.close()

    return asyncio.run(go())


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_open_creates_private_maildir(tmp_path: Path) -> None:
    root = tmp_path / "Mail"
    asyncio.run(sink(root).open())
    for sub in ("cur", "new", "tmp"):
        assert (root / sub).is_dir()
        assert stat.S_IMODE((root / sub).stat().st_mode) == 0o700


def test_open_while_another_sink_creates_the_same_maildir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two accounts delivering into one Maildir open their sinks at once: a
    subdirectory made by the other between our check and our mkdir is no error."""
    root = tmp_path / "Mail"
    asyncio.run(sink(root).open())  # "the other sink" made everything already
    real_is_dir, looked = Path.is_dir, set()

    def is_dir(path: Path) -> bool:  # the first look at each subdirectory: "not yet there"
        if path.name in ("cur", "new", "tmp") and path.name not in looked:
            looked.add(path.name)
            return False
        return real_is_dir(path)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    asyncio.run(sink(root).open())
    monkeypatch.undo()
    assert all((root / sub).is_dir() for sub in ("cur", "new", "tmp"))


def test_bytes_stored_are_crlf_to_lf_only(tmp_path: Path) -> None:
    data = b"Subject: x\r\n\r\nline\r\nbare\rcr and bare\nlf\r\n\r\n.dots\r\nno newline\r"
    receipts = deliver(sink(tmp_path), [make(data)])
    stored = (tmp_path / "new" / receipts[0].ref).read_bytes()
    assert stored == data.replace(b"\r\n", b"\n")
    assert stored.endswith(b"no newline\r")  # a trailing lone CR is kept


def test_file_name_is_time_key_host_and_size(tmp_path: Path) -> None:
    d = make(b"A: b\r\n\r\nbody\r\n")
    (receipt,) = deliver(sink(tmp_path), [d])
    assert receipt.sink == "md"
    assert receipt.ref.startswith(f"{int(T0.timestamp())}.{d.key}.")
    assert receipt.ref.endswith(",S=11")  # size on disk, after CRLF -> LF
    assert files(tmp_path / "new") == [receipt.ref]
    assert files(tmp_path / "tmp") == []
    assert "uid" not in receipt.ref.split(".", 2)[2]
    assert stat.S_IMODE((tmp_path / "new" / receipt.ref).stat().st_mode) == 0o600


def test_open_on_a_file_is_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a maildir")
    with pytest.raises(CannotCreate, match="cannot create"):  # exit 73: no retry fixes it
        asyncio.run(sink(tmp_path / "file").open())


def test_python_mailbox_reads_what_we_wrote(tmp_path: Path) -> None:
    batch = [make(f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode(), uid=f"u{i}") for i in range(5)]
    deliver(sink(tmp_path), batch)
    box = mailbox.Maildir(tmp_path, create=False)
    assert sorted(m["Subject"] for m in box) == [f"m{i}" for i in range(5)]


def _spilled(data: bytes, lf_copy: LfCopy | None = None) -> SpooledMessage:
    writer = SpoolWriter(spill_at=1024, lf_copy=lf_copy)
    for start in range(0, len(data), 7000):
        writer.write(data[start : start + 7000])
    message = writer.finish()
    assert not message.in_memory
    return message


@pytest.mark.parametrize(
    "lf_copy", ["none", "elsewhere", "in-tmp"], ids=["converted-by-sink", "lf-copy", "linked"]
)
def test_spilled_message_with_crlf_split_across_chunks(tmp_path: Path, lf_copy: str) -> None:
    # spool.CHUNK is 1 MiB: put a CR as the last byte of the first chunk.
    head = b"Subject: big\r\n\r\n"
    line = b"x" * 98 + b"\r\n"
    prefix = (head + line * ((1 << 20) // len(line) + 1))[: (1 << 20) - 1]
    body = prefix + b"\r\n" + line * 25_000
    target = sink(tmp_path)
    (tmp_path / "tmp").mkdir(parents=True)
    (tmp_path / "spool").mkdir()
    spool = {"none": None, "elsewhere": LfCopy(tmp_path / "spool"), "in-tmp": target.lf_copy}
    message = _spilled(body, spool[lf_copy])
    try:
        first = next(message.chunks())
        assert first.endswith(b"\r")  # the pair really is split
        assert len(body) > 3 << 20
        d = Delivery("isp", "u", delivery_key("isp", message.sha256), message)
        (receipt,) = deliver(target, [d])
    finally:
        message.close()
    stored = (tmp_path / "new" / receipt.ref).read_bytes()
    assert stored == body.replace(b"\r\n", b"\n")
    assert b"\r" not in stored
    assert receipt.ref.endswith(f",S={len(stored)}")


@pytest.mark.parametrize("fsync", [True, False], ids=["syncfs", "fsync-each"])
def test_a_spilled_message_is_named_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    target = sink(tmp_path)
    if not fsync:  # no syncfs(2): the linked file is fsync-ed by itself
        monkeypatch.setattr(maildir_module, "_load_syncfs", lambda: None)
    asyncio.run(target.open())
    body = b"Subject: big\r\n\r\n" + b"line\r\n" * 10_000
    message = _spilled(body, target.lf_copy)
    assert list((tmp_path / "tmp").iterdir()) == []  # unnamed until staged

    def no_copy(self: SpooledMessage, size: int = 0) -> None:
        raise AssertionError("the LF copy was copied, not linked")

    monkeypatch.setattr(SpooledMessage, "lf_chunks", no_copy)
    d = Delivery("isp", "u", delivery_key("isp", message.sha256), message)
    try:
        (receipt,) = deliver(target, [d])
    finally:
        message.close()
    stored, lf = tmp_path / "new" / receipt.ref, body.replace(b"\r\n", b"\n")
    assert stored.read_bytes() == lf
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert receipt.ref.endswith(f",S={len(lf)}")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_lf_copy_is_named_once_and_only_where_it_can_be(tmp_path: Path) -> None:
    body = b"Subject: big\r\n\r\n" + b"line\r\n" * 10_000
    lf = body.replace(b"\r\n", b"\n")
    (tmp_path / "tmp").mkdir()
    message = _spilled(body, LfCopy(tmp_path / "tmp"))
    (tmp_path / "taken").write_bytes(b"x")
    try:
        assert message.link_lf(str(tmp_path / "taken")) is None  # exists: not named, still usable
        assert b"".join(message.lf_chunks()) == lf
        other = _spilled(body, LfCopy(tmp_path / "tmp"))
        assert other.link_lf(str(tmp_path / "again")) == len(lf)
        other.close()
        assert (tmp_path / "again").read_bytes() == lf
        # a second Maildir gets its own file, never a second name of the same one
        assert message.link_lf(str(tmp_path / "later")) is None
        assert SpooledMessage.from_bytes(body).link_lf(str(tmp_path / "small")) is None
        assert (tmp_path / "taken").read_bytes() == b"x"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "taken", "tmp"]
    finally:
        message.close()


def test_trace_headers_write_the_lf_copy_instead_of_naming_it(tmp_path: Path) -> None:
    target = MaildirSink("md", tmp_path, clock=FakeClock(T0), trace_headers=True)
    asyncio.run(target.open())
    body = b"Subject: big\r\n\r\n" + b"line\r\n" * 10_000
    message = _spilled(body, target.lf_copy)
    d = Delivery("isp", "u", delivery_key("isp", message.sha256), message)
    try:
        (receipt,) = deliver(target, [d])
        assert message.link_lf(str(tmp_path / "x")) is not None  # still unnamed: it was copied
    finally:
        message.close()
    stored = (tmp_path / "new" / receipt.ref).read_bytes()
    assert stored.startswith(b"X-Popkeep-Account: isp\n")
    assert stored.endswith(body.replace(b"\r\n", b"\n"))


def test_redelivery_of_same_key_is_idempotent(tmp_path: Path) -> None:
    d = make(b"A: b\r\n\r\nsame\r\n")
    s = sink(tmp_path)
    first = deliver(s, [d])
    again = deliver(s, [d, make(b"A: b\r\n\r\nsame\r\n", uid="other-uid")])
    assert again == [first[0], first[0]]
    assert files(tmp_path / "new") == [first[0].ref]


def test_find_after_reader_moved_file_to_cur_with_flags(tmp_path: Path) -> None:
    d = make(b"A: b\r\n\r\nread me\r\n")
    s = sink(tmp_path)
    (receipt,) = deliver(s, [d])
    moved = f"{receipt.ref}:2,S"
    os.rename(tmp_path / "new" / receipt.ref, tmp_path / "cur" / moved)
    assert asyncio.run(s.find(d.key)) == Receipt("md", moved)
    assert asyncio.run(s.find(make(b"other").key)) is None
    # Delivering it again writes nothing new.
    assert deliver(s, [d]) == [Receipt("md", moved)]
    assert files(tmp_path / "new") == []


def test_find_in_unopened_missing_maildir_is_none(tmp_path: Path) -> None:
    assert asyncio.run(sink(tmp_path / "nothing").find("ab" * 28)) is None


def test_maildir_plus_plus_folder(tmp_path: Path) -> None:
    d = make(b"A: b\r\n\r\nfoldered\r\n")
    (receipt,) = deliver(sink(tmp_path, folder="Provider/Sub"), [d])
    folder = tmp_path / ".Provider.Sub"
    assert (folder / "maildirfolder").is_file()
    assert files(folder / "new") == [receipt.ref]
    assert files(tmp_path / "new") == []
    for sub in ("cur", "new", "tmp"):
        assert (tmp_path / sub).is_dir()
    assert "Provider.Sub" in mailbox.Maildir(tmp_path, create=False).list_folders()


@pytest.mark.parametrize(
    ("folder", "dirname"),
    [
        ("Provider", ".Provider"),
        ("A/B", ".A.B"),
        ("A.B", ".A.B"),
        ("Tom & Jerry", ".Tom &- Jerry"),
        ("Entwürfe", ".Entw&APw-rfe"),
        ("台北", ".&U,BTFw-"),
    ],
)
def test_folder_dirname(folder: str, dirname: str) -> None:
    assert folder_dirname(folder) == dirname


@pytest.mark.parametrize(
    "folder", ["", ".hidden", "/abs", "..", "../x", "a/../b", "a//b", "a..b", "a/", "a.", "a\x00b"]
)
def test_invalid_folder_names_rejected(folder: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="maildir folder"):
        MaildirSink("md", tmp_path, folder=folder)


def test_inbox_folder_is_the_root(tmp_path: Path) -> None:
    assert MaildirSink("md", tmp_path, folder="INBOX").directory == tmp_path


def test_unsafe_key_refused(tmp_path: Path) -> None:
    message = SpooledMessage.from_bytes(b"x")
    with pytest.raises(DeliveryRefused, match="unsafe"):
        deliver(sink(tmp_path), [Delivery("isp", "u", "../../etc/passwd", message)])
    assert files(tmp_path / "new") == []


def test_enospc_mid_batch_leaves_nothing_in_new_or_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = maildir_module._write_all
    calls = {"n": 0}

    def full_disk(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(maildir_module, "_write_all", full_disk)
    batch = [make(f"A: b\r\n\r\n{i}\r\n".encode(), uid=f"u{i}") for i in range(5)]
    with pytest.raises(DeliveryError, match=r"tmp.*No space left on device") as info:
        deliver(sink(tmp_path), batch)
    assert info.value.retry
    assert files(tmp_path / "new") == []
    assert files(tmp_path / "tmp") == []


def test_short_writes_still_store_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.write may write less than asked (a signal, a pipe-like file system): the
    # rest goes after it, whatever the first write took.
    real_write = os.write

    def seven_at_a_time(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(maildir_module.os, "write", seven_at_a_time)
    body = b"Subject: short\r\n\r\n" + b"0123456789\r\n" * 30
    deliver(sink(tmp_path), [make(body)])
    (name,) = files(tmp_path / "new")
    assert (tmp_path / "new" / name).read_bytes() == body.replace(b"\r\n", b"\n")


def test_rename_failure_keeps_only_complete_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rename = os.rename
    calls = {"n": 0}

    def flaky(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky)
    batch = [make(f"A: b\r\n\r\n{i}\r\n".encode(), uid=f"u{i}") for i in range(3)]
    s = sink(tmp_path)
    with pytest.raises(DeliveryError, match="Input/output error"):
        deliver(s, batch)
    (left,) = files(tmp_path / "new")
    assert (tmp_path / "new" / left).read_bytes() == b"A: b\n\n0\n"
    assert files(tmp_path / "tmp") == []
    monkeypatch.setattr(os, "rename", real_rename)
    receipts = deliver(s, batch)  # recovery: the first is found, the others written
    assert receipts[0].ref == left
    assert len(files(tmp_path / "new")) == 3


def test_fallback_without_syncfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildir_module, "_load_syncfs", lambda: None)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    batch = [make(f"A: {i}\r\n\r\n".encode(), uid=f"u{i}") for i in range(4)]
    receipts = deliver(sink(tmp_path), batch)
    assert len(receipts) == 4
    assert len(synced) >= 4 + 2  # every file, then new/ and tmp/


class SyncfsCalls(NamedTuple):
    """The fd of every syncfs(2) call: the commits', and the background flush's."""

    commits: list[int]
    early: list[int]


@pytest.fixture
def syncfs_calls(monkeypatch: pytest.MonkeyPatch) -> SyncfsCalls:
    """The real syncfs(2), counted."""
    real = maildir_module._load_syncfs()
    if real is None:
        pytest.skip("no syncfs on this platform")
    calls = SyncfsCalls([], [])

    def counting_syncfs(fd: int) -> int:
        early = threading.current_thread().name == "maildir-flush"  # _EarlyFlush
        (calls.early if early else calls.commits).append(fd)
        return real(fd)

    monkeypatch.setattr(maildir_module, "_load_syncfs", lambda: counting_syncfs)
    return calls


def test_group_commit_uses_one_syncfs(tmp_path: Path, syncfs_calls: SyncfsCalls) -> None:
    calls = syncfs_calls.commits
    batch = [make(f"A: {i}\r\n\r\n".encode(), uid=f"u{i}") for i in range(50)]
    deliver(sink(tmp_path), batch)
    assert len(calls) == 1
    assert len(files(tmp_path / "new")) == 50


def _handles_on(directory: Path) -> set[int]:
    """This process's open file descriptors that refer to ``directory``."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # one closed meanwhile (listdir's own, say)
            if os.readlink(f"/proc/self/fd/{fd}") == str(directory):
                found.add(int(fd))
    return found


def test_staging_starts_the_flush_and_commits_keep_one_handle(
    tmp_path: Path, syncfs_calls: SyncfsCalls
) -> None:
    commits, early = syncfs_calls
    target = sink(tmp_path)
    tmp = tmp_path / "tmp"

    async def go() -> None:
        await target.open()
        opened = _handles_on(tmp)  # before anything is written
        assert opened
        for round_ in range(2):
            staged = await target.stage(
                [make(f"A: {round_}.{i}\r\n\r\n".encode(), uid=f"u{round_}.{i}") for i in range(5)]
            )
            deadline = time.monotonic() + 10
            while not early and time.monotonic() < deadline:  # the flush runs beside us
                await asyncio.sleep(0.005)
            assert early, "staging did not start a background syncfs"  # (round 0 decides)
            assert len(commits) == round_  # the commit's own syncfs is still to come
            await target.commit(staged)
            # flushed through the handle open() opened, before the first file was
            # written: a writeback error since then is reported (module docstring)
            assert commits[-1] in opened & _handles_on(tmp)
        await target.close()
        assert commits[-1] not in _handles_on(tmp)

    asyncio.run(go())
    assert len(files(tmp_path / "new")) == 10


def test_from_config_is_a_sink(tmp_path: Path) -> None:
    config = MaildirSinkConfig("central", tmp_path / "M", folder="Provider.Sub")
    s: Sink = MaildirSink.from_config(config)
    assert s.name == "central"
    assert s.exactly_once
    deliver(s, [make(b"A: b\r\n\r\nx\r\n")])
    assert len(files(tmp_path / "M" / ".Provider.Sub" / "new")) == 1


def test_empty_batch(tmp_path: Path) -> None:
    assert deliver(sink(tmp_path), []) == []


def test_trace_headers_only_when_configured(tmp_path: Path) -> None:
    body = b"Subject: hi\r\n\r\nbody\r\n"
    plain = sink(tmp_path / "plain")
    (receipt,) = deliver(plain, [make(body)])
    assert (tmp_path / "plain" / "new" / receipt.ref).read_bytes() == body.replace(b"\r\n", b"\n")
    traced = MaildirSink("md", tmp_path / "t", clock=FakeClock(T0), trace_headers=True)
    d = make(body)
    (receipt,) = deliver(traced, [d])
    stored = (tmp_path / "t" / "new" / receipt.ref).read_bytes()
    head, rest = stored.split(b"\n", 2)[:2], stored.split(b"\n", 2)[2]
    assert head[0] == b"X-Popkeep-Account: isp"
    assert head[1].startswith(b"Received: by popkeep (sink md) id " + d.key.encode())
    assert rest == body.replace(b"\r\n", b"\n")
    assert b"\r" not in stored
    assert asyncio.run(traced.find(d.key)) == receipt


# -- staging (StagingSink) --------------------------------------------------------------


def test_maildir_is_a_staging_sink(tmp_path: Path) -> None:
    assert staging(sink(tmp_path)) is not None


def test_stage_then_commit(tmp_path: Path) -> None:
    s = sink(tmp_path)
    batch = [make(f"A: b\r\n\r\n{i}\r\n".encode(), uid=f"u{i}") for i in range(3)]

    async def go() -> list[Receipt]:
        await s.open()
        handles = await s.stage(batch)
        assert [h.delivery for h in handles] == batch
        assert not any(h.done for h in handles)
        # staged: in tmp/, invisible to readers and to find()
        assert len(files(tmp_path / "tmp")) == 3
        assert files(tmp_path / "new") == []
        assert all([await s.find(d.key) is None for d in batch])
        receipts = await s.commit(handles)
        assert [await s.find(d.key) for d in batch] == receipts
        return receipts

    receipts = asyncio.run(go())
    assert files(tmp_path / "tmp") == []
    assert files(tmp_path / "new") == sorted(r.ref for r in receipts)
    assert (tmp_path / "new" / receipts[2].ref).read_bytes() == b"A: b\n\n2\n"


def test_stage_then_discard_leaves_nothing(tmp_path: Path) -> None:
    s = sink(tmp_path)
    batch = [make(f"A: b\r\n\r\n{i}\r\n".encode(), uid=f"u{i}") for i in range(3)]

    async def go() -> None:
        await s.open()
        handles = await s.stage(batch)
        assert len(files(tmp_path / "tmp")) == 3
        await s.discard(handles)
        await s.discard(handles)  # twice is harmless
        assert await s.find(batch[0].key) is None
        # discarded keys can be staged and committed again
        assert len(await s.commit(await s.stage(batch[:1]))) == 1

    asyncio.run(go())
    assert files(tmp_path / "tmp") == []
    assert len(files(tmp_path / "new")) == 1


def test_stage_of_a_held_key_writes_nothing(tmp_path: Path) -> None:
    s = sink(tmp_path)
    d = make(b"A: b\r\n\r\nheld\r\n")
    (first,) = deliver(s, [d])

    async def go() -> list[Receipt]:
        await s.open()
        handles = await s.stage([d, d])
        assert all(h.done for h in handles)
        assert files(tmp_path / "tmp") == []
        return await s.commit(handles)

    assert asyncio.run(go()) == [first, first]
    assert files(tmp_path / "new") == [first.ref]


def test_the_same_key_twice_in_staging_is_written_once(tmp_path: Path) -> None:
    s = sink(tmp_path)
    d = make(b"A: b\r\n\r\ntwice\r\n")

    async def go() -> list[Receipt]:
        await s.open()
        first = await s.stage([d])
        second = await s.stage([d])
        assert second[0].done and len(files(tmp_path / "tmp")) == 1
        return await s.commit([*first, *second])

    one, two = asyncio.run(go())
    assert one == two and files(tmp_path / "new") == [one.ref]


def test_commit_of_several_stage_calls_uses_one_syncfs(
    tmp_path: Path, syncfs_calls: SyncfsCalls
) -> None:
    calls = syncfs_calls.commits
    s = sink(tmp_path)

    async def go() -> None:
        await s.open()
        handles = []
        for i in range(5):
            handles += await s.stage([make(f"A: {i}\r\n\r\n".encode(), uid=f"u{i}")])
        assert calls == []  # staging alone commits nothing
        await s.commit(handles)

    asyncio.run(go())
    assert len(calls) == 1
    assert len(files(tmp_path / "new")) == 5


def test_open_removes_tmp_files_older_than_36_hours(tmp_path: Path) -> None:
    asyncio.run(sink(tmp_path).open())
    old, young = tmp_path / "tmp" / "old.killed", tmp_path / "tmp" / "young.writing"
    old.write_bytes(b"left by a killed run")
    young.write_bytes(b"another process is writing this")
    stale = time.time() - maildir_module.TMP_MAX_AGE - 60
    os.utime(old, (stale, stale))
    recent = time.time() - 3600
    os.utime(young, (recent, recent))
    asyncio.run(sink(tmp_path).open())
    assert files(tmp_path / "tmp") == ["young.writing"]


def test_open_is_quiet_about_a_tmp_file_another_pass_commits_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Accounts sharing a Maildir (popkeep serve's central mailbox) stage and commit
    while another pass opens it: a file listed in tmp/ and renamed into new/ before
    it is looked at is no longer this cleaning's business, not a warning."""
    asyncio.run(sink(tmp_path).open())
    staged = tmp_path / "tmp" / "being.committed"
    staged.write_bytes(b"another pass's message")
    real_scandir = os.scandir

    @contextlib.contextmanager
    def scandir_then_commit(path: str) -> Iterator[list[os.DirEntry[str]]]:
        with real_scandir(path) as listing:
            entries = list(listing)
        staged.rename(tmp_path / "new" / staged.name)  # after listing, before stat
        yield entries

    monkeypatch.setattr(maildir_module.os, "scandir", scandir_then_commit)
    asyncio.run(sink(tmp_path).open())
    assert "cannot remove" not in caplog.text
    assert files(tmp_path / "new") == ["being.committed"]


def test_a_sink_that_delivered_is_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    """Its index of the folder goes with the last reference, not at the next full
    garbage collection (popkeep serve builds a sink for every pass)."""
    gc.disable()
    try:
        gc.collect()
        s = sink(tmp_path)

        async def go(one: MaildirSink) -> None:
            await one.open()
            await one.deliver([make(b"Subject: x\r\n\r\nbody\r\n")])
            await one.close()

        asyncio.run(go(s))
        freed = weakref.ref(s)
        del s
        assert freed() is None
    finally:
        gc.enable()


def test_commit_rejects_a_foreign_handle(tmp_path: Path) -> None:
    s = sink(tmp_path)
    with pytest.raises(DeliveryRefused, match="not a handle"):
        asyncio.run(s.commit([Staged(make(b"x"))]))
