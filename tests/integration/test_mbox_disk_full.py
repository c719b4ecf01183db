"""A full disk under an mbox sink, from the kernel (issue 16's first reproduction).

``popkeep fetch`` runs with RLIMIT_FSIZE set so that the mbox can take all of the
message but its last ~100 octets: the kernel writes part of the last block (a
short write) and refuses the rest with EFBIG, as a filling disk or quota does.
The old sink ignored the short count, fsynced, issued a receipt and the message
was deleted at the provider with its end missing. Now: exit 75, one line, the
mbox as it was, nothing deleted; and the next run, with room, delivers it once.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..sinks.contract.local import read_mboxrd
from .helpers import account_toml, save_config

MESSAGE = b"From: a@example.org\r\nSubject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1000


def _fetch(config: Path, limit: int | None) -> subprocess.CompletedProcess[str]:
    def restrict() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
        capture_output=True, text=True, timeout=120, preexec_fn=restrict, check=False,
    )


def test_a_short_write_then_efbig_on_the_last_block_deletes_nothing(
    tmp_path: Path, certs: TestCerts
) -> None:
    pop = ScriptedPOP3Server(Mailbox.from_messages([MESSAGE]), user="taro",
                             password="s3cret-pass", tls_context=certs.server_context())
    mbox = tmp_path / "mbox"
    stored = len(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n") + len(
        MESSAGE.replace(b"\r\n", b"\n")) + 1  # + the separator line
    with ServerThread(pop):
        config = save_config(tmp_path, (
            f'[state]\npath = "{tmp_path / "state.db"}"\n[[sink]]\nname = "home"\n'
            f'type = "mbox"\npath = "{mbox}"\n'
        ) + account_toml(port=pop.port, user=pop.user, password=pop.password,
                         ca_file=certs.ca_file, delete_after="0s"))
        full = _fetch(config, limit=stored - 100)
        assert full.returncode == 75, full.stderr
        assert "Traceback" not in full.stderr
        failed = [line for line in full.stderr.splitlines() if "FAILED" in line]
        assert len(failed) == 1 and "File too large" in failed[0], full.stderr
        assert len(pop.mailbox.uids) == 1, "deleted at the provider, not stored whole"
        assert mbox.read_bytes() == b""  # the partial append was taken back out

        room = _fetch(config, limit=None)
        assert room.returncode == 0, room.stderr
        assert read_mboxrd(mbox.read_bytes()) == [MESSAGE.replace(b"\r\n", b"\n")]
        assert len(pop.mailbox.uids) == 0
    assert os.path.getsize(mbox) == stored
