"""A kill duplicates at most the message in flight on a sink that cannot look back
(issue 16 item 1; docs/guarantees.md, "mda").

Nothing can ask an MDA what it delivered, so the collector records each message's
receipts before it hands the next one to such a sink. Here the MDA itself
SIGKILLs ``popkeep fetch`` (its parent) right after storing the 3rd message; the
next fetch runs to completion. Messages 1–2 and 4–6 must be stored exactly once,
message 3 at most twice. Before, the six were one batch whose receipts were never
committed: the rerun delivered 1–3 again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

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
    pop = ScriptedPOP3Server(
        Mailbox.from_messages(_message(n) for n in range(1, 7)), user="taro",
        password="s3cret-pass", tls_context=certs.server_context(),
    )
    command = [sys.executable, str(script), str(out)]
    sink = f'[[sink]]\nname = "lda"\ntype = "mda"\ncommand = {command!r}\n'.replace("'", '"')
    with ServerThread(pop):
        config = save_config(
            tmp_path,
            f'[state]\npath = "{tmp_path / "state.db"}"\n\n{sink}'
            + account_toml(port=pop.port, user=pop.user, password=pop.password,
                           ca_file=certs.ca_file),
        )
        assert _fetch(config) == -signal.SIGKILL
        assert (out / "killed").exists()
        assert _fetch(config) == 0
    stored = [p.read_bytes() for p in out.glob("msg*")]
    copies = {n: sum(f"Subject: message {n}\n".encode() in m for m in stored)
              for n in range(1, 7)}
    assert copies[3] in (1, 2)
    assert {n: c for n, c in copies.items() if n != 3} == dict.fromkeys((1, 2, 4, 5, 6), 1)
