"""Exactly-once under SIGKILL with an IMAP sink: `popkeep fetch` killed at random moments.

As ``test_kill.py`` does for Maildir: the real CLI runs as a subprocess, POP3
from the test Dovecot into an IMAP folder of the same Dovecot, and is SIGKILLed
at delays drawn uniformly over an unkilled run, so kills land in every phase
(login, listing, RETR, APPEND before and after the tagged OK, the state
transaction, DELE, QUIT). After every kill and every completed run:

- no message is twice in the IMAP folder (sha256 of the LF bytes);
- nothing was deleted from the POP3 server that is not in the folder.

A run that completes before the kill budget is spent gets new mail. At the end
one run completes with exit 0, and every message is in the folder exactly once.

Environment: ``POPKEEP_IMAP_KILLS`` (default 100), ``POPKEEP_KILL_SEED``.
"""

from __future__ import annotations

import hashlib
import imaplib
import os
import random
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from popkeep.testing.mailgen import realistic_mailbox

from ..fixtures.dovecot import Dovecot
from .helpers import account_toml, save_config

pytestmark = [pytest.mark.dovecot, pytest.mark.slow]

KILLS = int(os.environ.get("POPKEEP_IMAP_KILLS", "100"))
SEED = int(os.environ.get("POPKEEP_KILL_SEED", "20260101"))
MESSAGES = 60  #: first fill; each refill after an unkilled run adds as many
RUN_TIMEOUT = 60.0
BUDGET = 200.0  #: seconds for all the kills


def _digest(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


class _World:
    """What was sent, what the POP3 server still holds, what the IMAP folder holds."""

    def __init__(self, dovecot: Dovecot, source: str, target: str) -> None:
        self.dovecot, self.source, self.target = dovecot, source, target
        self.sent: set[str] = set()
        self.refills = 0

    def add(self, count: int) -> None:
        batch = list(realistic_mailbox(count, seed=SEED + 1000 * self.refills,
                                       size_profile="small"))
        digests = {_digest(m) for m in batch}
        assert len(digests) == count and not digests & self.sent, "messages must be distinct"
        self.dovecot.add_messages(self.source, batch)
        self.sent |= digests
        self.refills += 1

    def stored(self) -> Counter[str]:
        context = ssl.create_default_context(cafile=str(self.dovecot.ca_file))
        with imaplib.IMAP4_SSL(self.dovecot.host, self.dovecot.imaps_port,
                               ssl_context=context) as client:
            client.login(self.target, self.dovecot.password)
            typ, exists = client.select("INBOX", readonly=True)
            assert typ == "OK"
            if exists == [b"0"]:  # killed before the first APPEND: "1:*" would be BAD
                return Counter()
            typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        if typ != "OK" or data == [None]:
            return Counter()
        return Counter(_digest(part[1]) for part in data if isinstance(part, tuple))

    def on_server(self) -> set[str]:
        """The POP3 mailbox, read until no file moves under a killed client's server
        process (bounded, no sleep), as test_kill does."""
        deadline = time.monotonic() + 10
        while True:
            try:
                return {_digest(p.read_bytes()) for p in self.dovecot.message_files(self.source)}
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise

    def check(self, when: str) -> Counter[str]:
        stored = self.stored()
        twice = [d for d, n in stored.items() if n > 1]
        assert not twice, f"{when}: {len(twice)} messages appended twice"
        assert set(stored) <= self.sent, f"{when}: the folder holds a message never sent"
        lost = self.sent - self.on_server() - set(stored)
        assert not lost, f"{when}: {len(lost)} messages deleted from the server, not stored"
        return stored


def _config(dovecot: Dovecot, base: Path, source: str, target: str) -> Path:
    sink = f"""
[[sink]]
name = "central"
type = "imap"
host = "{dovecot.host}"
port = {dovecot.imaps_port}
tls = "implicit"
ca_file = "{dovecot.ca_file}"
user = "{target}"
password = "{dovecot.password}"
folder = "INBOX"
"""
    account = account_toml(port=dovecot.pop3s_port, tls="implicit", ca_file=dovecot.ca_file,
                           user=source, password=dovecot.password, delete_after="0s")
    return save_config(base, f'[state]\npath = "{base / "state.db"}"\n' + sink + account)


def _popkeep(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _complete_run(config: Path) -> float:
    started = time.monotonic()
    proc = _popkeep(config)
    _, err = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, err.decode(errors="replace")
    return time.monotonic() - started


def _kill_at(config: Path, delay: float) -> bool:
    """Start popkeep, SIGKILL it ``delay`` seconds later; False if it finished first."""
    proc = _popkeep(config)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=RUN_TIMEOUT)
        return True
    _, err = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, f"an unkilled run failed: {err.decode(errors='replace')}"
    return False


def test_imap_sink_killed_at_random_moments_never_loses_or_duplicates(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-imap")
    target = dovecot_user + "x"
    dovecot.add_user(target)
    # Calibrate on twin mailboxes: how long does one unkilled run take?
    twin = dovecot_user + "c"
    dovecot.add_user(twin)
    dovecot.add_user(twin + "x")
    twin_world = _World(dovecot, twin, twin + "x")
    twin_world.add(MESSAGES)
    (tmp_path / "cal").mkdir()
    full = _complete_run(_config(dovecot, tmp_path / "cal", twin, twin + "x"))

    world = _World(dovecot, dovecot_user, target)
    world.add(MESSAGES)
    config = _config(dovecot, tmp_path, dovecot_user, target)
    kills = completed = 0
    deadline = time.monotonic() + BUDGET
    while kills < KILLS and time.monotonic() < deadline:
        delay = rng.uniform(0.0, full)
        killed = _kill_at(config, delay)
        world.check(f"seed {SEED}, kill {kills} at {delay:.3f}s")
        if killed:
            kills += 1
        else:
            completed += 1
            world.add(MESSAGES)
    _complete_run(config)
    stored = world.check(f"seed {SEED}, final run")
    assert set(stored) == world.sent, f"seed {SEED}: {len(world.sent - set(stored))} missing"
    assert dovecot.message_count(dovecot_user) == 0  # delete_after = 0s: all deleted
    print(f"\nimap: {kills} kills, {completed} completed runs, {len(world.sent)} messages, "
          f"full run {full:.2f}s")
    assert kills >= min(KILLS, 10), f"only {kills} kills within {BUDGET}s"
