"""A kill duplicates at most the message in flight on a sink that cannot look back
(issue 16 item 1; docs/guarantees.md, "mda" and "lmtp").

Nothing can ask an MDA what it delivered, so the collector records each message's
receipts before it hands the next one to such a sink. Here the MDA itself
SIGKILLs ``popkeep fetch`` (its parent) right after storing the 3rd message; the
next fetch runs to completion. Messages 1–2 and 4–6 must be stored exactly once,
message 3 at most twice. Before, the six were one batch whose receipts were never
committed: the rerun delivered 1–3 again. The same with an LMTP sink, whose
server (a small one in this test) SIGKILLs popkeep after accepting the 3rd message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..fixtures.lmtp import LmtpSession, serving
from .helpers import account_toml, save_config

#: A tiny MDA (argv: out dir): stores stdin as out/msgN; on its 3rd call, the first
#: time, it SIGKILLs its parent (popkeep) after storing.
MDA = """
import os, signal, sys
out = sys.argv[1]
data = sys.stdin.buffer.read()
n = len([f for f in os.listdir(out) if f.startswith("msg")]) + 1
with open(os.path.join(out, f"msg{n}"), "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
marker = os.path.join(out, "killed")
if n == 3 and not os.path.exists(marker):
    open(marker, "w").close()
    os.kill(os.getppid(), signal.SIGKILL)
"""


def _message(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: message {n}\r\nMessage-ID: <m{n}@example.org>"
            f"\r\n\r\nbody {n}\r\n").encode()


def _server(certs: TestCerts) -> ScriptedPOP3Server:
    return ScriptedPOP3Server(
        Mailbox.from_messages(_message(n) for n in range(1, 7)), user="taro",
        password="s3cret-pass", tls_context=certs.server_context(),
    )


def _config(base: Path, pop: ScriptedPOP3Server, certs: TestCerts, sink: str) -> Path:
    return save_config(
        base,
        f'[state]\npath = "{base / "state.db"}"\n\n{sink}'
        + account_toml(port=pop.port, user=pop.user, password=pop.password,
                       ca_file=certs.ca_file),
    )


def _copies(stored: list[bytes]) -> dict[int, int]:
    """How many of ``stored`` (CRLF or LF) are each of the six messages."""
    lf = [m.replace(b"\r\n", b"\n") for m in stored]
    return {n: sum(f"Subject: message {n}\n".encode() in m for m in lf) for n in range(1, 7)}


def _at_most_the_one_in_flight(copies: dict[int, int]) -> None:
    assert copies[3] in (1, 2)
    assert {n: c for n, c in copies.items() if n != 3} == dict.fromkeys((1, 2, 4, 5, 6), 1)


def _fetch(config: Path) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60, check=False,
    )
    return proc.returncode


def test_kill_duplicates_at_most_the_message_in_flight(
    tmp_path: Path, certs: TestCerts
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "mda.py"
    script.write_text(MDA)
    command = [sys.executable, str(script), str(out)]
    sink = f'[[sink]]\nname = "lda"\ntype = "mda"\ncommand = {command!r}\n'.replace("'", '"')
    with ServerThread(pop := _server(certs)):
        config = _config(tmp_path, pop, certs, sink)
        assert _fetch(config) == -signal.SIGKILL
        assert (out / "killed").exists()
        assert _fetch(config) == 0
    _at_most_the_one_in_flight(_copies([p.read_bytes() for p in out.glob("msg*")]))


class _Lmtp(LmtpSession):
    """Accepts everything; after its 3rd message, the first time, SIGKILLs the pid
    in ``victim``."""

    victim: Path

    def stored(self) -> None:
        if len(self.received) == 3 and self.victim.exists():
            os.kill(int(self.victim.read_text()), signal.SIGKILL)
            self.victim.unlink()


@pytest.fixture
def lmtp(tmp_path: Path) -> Iterator[int]:
    _Lmtp.received, _Lmtp.victim = [], tmp_path / "victim"
    with serving(_Lmtp) as port:
        yield port


def test_lmtp_kill_duplicates_at_most_the_message_in_flight(
    tmp_path: Path, certs: TestCerts, lmtp: int
) -> None:
    sink = (f'[[sink]]\nname = "lmtp"\ntype = "lmtp"\nhost = "127.0.0.1"\nport = {lmtp}\n'
            'tls = "none"\nrecipients = ["taro@example.org"]\n')
    with ServerThread(pop := _server(certs)):
        config = _config(tmp_path, pop, certs, sink)
        proc = subprocess.Popen(
            [sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _Lmtp.victim.write_text(str(proc.pid))
        assert proc.wait(60) == -signal.SIGKILL
        assert _fetch(config) == 0
    _at_most_the_one_in_flight(_copies(_Lmtp.received))
