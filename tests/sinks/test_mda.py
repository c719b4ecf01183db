"""The MDA sink: stdin in LF form, exit 0 / 75 / other, timeout kill, no shell."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from popkeep.config.sink_types import MdaSinkConfig, mda_sink
from popkeep.errors import ConfigError, DeliveryError, DeliveryRefused
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.mda import MdaSink
from popkeep.spool import SpooledMessage

# A tiny "MDA": stores stdin under $1/<n> and exits with the status in $1/status.
SCRIPT = """
import os, sys, time
out = sys.argv[1]
status = int(open(os.path.join(out, "status")).read())
data = sys.stdin.buffer.read()
if status == -1:
    time.sleep(60)
n = len([f for f in os.listdir(out) if f.startswith("msg")])
with open(os.path.join(out, f"msg{n}"), "wb") as f:
    f.write(data)
if status:
    sys.stderr.write("no such user\\n")
sys.exit(status)
"""

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nline 1\r\nline\r2\r\n" + b"x" * 200_000


def make(data: bytes = MESSAGE) -> Delivery:
    message = SpooledMessage.from_bytes(data)
    return Delivery("isp", "u1", delivery_key("isp", message.sha256), message)


def mda(tmp_path: Path, status: int, timeout: float = 20.0, **kw: object) -> MdaSink:
    script = tmp_path / "mda.py"
    script.write_text(SCRIPT)
    (tmp_path / "status").write_text(str(status))
    command = (sys.executable, str(script), str(tmp_path))
    return MdaSink(MdaSinkConfig(name="lda", command=command, timeout=timeout, **kw))  # type: ignore[arg-type]


def stored(tmp_path: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(tmp_path.glob("msg*"))]


def test_exit_0_delivers_with_lf_endings(tmp_path: Path) -> None:
    sink = mda(tmp_path, 0)
    deliveries = [make(), make(b"Subject: 2\r\n\r\nb\r\n")]
    receipts = asyncio.run(sink.deliver(deliveries))
    assert [r.ref for r in receipts] == [d.key for d in deliveries]
    # CRLF → LF; the lone CR inside "line\r2" is left alone.
    assert stored(tmp_path) == [
        MESSAGE.replace(b"\r\n", b"\n"),
        b"Subject: 2\n\nb\n",
    ]
    assert sink.exactly_once is False
    assert asyncio.run(sink.find(deliveries[0].key)) is None


def test_exit_75_is_temporary(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="status 75: no such user") as info:
        asyncio.run(mda(tmp_path, 75).deliver([make()]))
    assert type(info.value) is DeliveryError and info.value.retry


def test_other_exit_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(DeliveryRefused, match="status 1") as info:
        asyncio.run(mda(tmp_path, 1).deliver([make(), make()]))
    assert not info.value.retry
    assert len(stored(tmp_path)) == 1  # stopped at the first failure


def test_timeout_kills_and_retries_later(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match=r"did not finish within 0\.5 s") as info:
        asyncio.run(mda(tmp_path, -1, timeout=0.5).deliver([make()]))
    assert type(info.value) is DeliveryError
    assert stored(tmp_path) == []


def test_missing_command_is_refused(tmp_path: Path) -> None:
    sink = MdaSink(MdaSinkConfig(name="lda", command=(str(tmp_path / "nope"),)))
    with pytest.raises(DeliveryRefused, match="command not found"):
        asyncio.run(sink.deliver([make()]))


def test_trace_headers_only_when_configured(tmp_path: Path) -> None:
    asyncio.run(mda(tmp_path, 0, trace_headers=True).deliver([make()]))
    (data,) = stored(tmp_path)
    assert data.startswith(b"X-Popkeep-Account: isp\nReceived: by popkeep (sink lda) id ")
    assert data.endswith(MESSAGE.replace(b"\r\n", b"\n"))


def test_config_splits_string_without_shell() -> None:
    config = mda_sink({"name": "d", "type": "mda", "command": "dovecot-lda -d 'a b'"}, "c: sink")
    assert config.command == ("dovecot-lda", "-d", "a b")
    with pytest.raises(ConfigError, match=r"c: sink.shell: unknown key"):
        mda_sink({"name": "d", "command": ["x"], "shell": True}, "c: sink")
    with pytest.raises(ConfigError, match=r'c: sink: missing required key "command"'):
        mda_sink({"name": "d"}, "c: sink")


def test_exit_0_without_reading_the_whole_message_is_not_a_delivery(tmp_path: Path) -> None:
    """Issue 16: ``head -c 1000`` as the command: BrokenPipe swallowed, exit 0 trusted."""
    head = MdaSink(MdaSinkConfig(name="lda", command=("head", "-c", "1000")))
    with pytest.raises(DeliveryRefused, match=r"exited 0 after reading only \d+ of 200"):
        asyncio.run(head.deliver([make()]))
    # Even a message that would fit a pipe's buffer: a command that reads nothing.
    true = MdaSink(MdaSinkConfig(name="lda", command=("true",)))
    with pytest.raises(DeliveryRefused, match="after reading only 0 of 12 octets"):
        asyncio.run(true.deliver([make(b"Subject: x\r\n\r\n")]))


def test_stdin_is_the_whole_message_even_if_popkeep_dies(tmp_path: Path) -> None:
    """The command reads a complete file, never a pipe a dying popkeep would cut short."""
    script = tmp_path / "probe.py"
    script.write_text("import os, stat, sys\n"
                      "mode = os.fstat(0).st_mode\n"
                      "sys.stdin.buffer.read()\n"
                      "sys.exit(0 if stat.S_ISREG(mode) else 1)\n")
    sink = MdaSink(MdaSinkConfig(name="lda", command=(sys.executable, str(script))))
    assert len(asyncio.run(sink.deliver([make()]))) == 1
