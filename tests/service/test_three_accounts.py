"""Issue 17's test config: three accounts in one service, against the test Dovecot and
the scripted server, on a fake clock: each polled on its own rhythm side by side, the
mail that reaches Dovecot in the middle delivered at the next poll, and the account
whose server says "[LOGIN-DELAY 600]" not logged in to sooner, while the others go on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from popkeep.testing import misbehaviour as mb
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..fixtures.dovecot import Dovecot
from ..integration.helpers import account_toml, maildir_messages
from .test_loop import T0, Seen, config_text, run, start

ARRIVING = b"From: a@example.org\r\nSubject: arriving\r\nMessage-ID: <arr@x>\r\n\r\nhello\r\n"


@pytest.mark.dovecot
def test_three_accounts_on_dovecot_and_the_scripted_server_each_on_its_rhythm(
    tmp_path: Path, server: ScriptedPOP3Server, dovecot: Dovecot, dovecot_user: str
) -> None:
    busy = ScriptedPOP3Server(Mailbox(), user="hanako", password="hanako-pass",
                              misbehave=mb.Misbehaviour(auth_error=mb.LOGIN_DELAY))  # fmt: skip
    with ServerThread(busy):
        text = config_text(tmp_path, server, 'interval = "1h"\n') + account_toml(
            name="dovecot", port=dovecot.pop3_port, user=dovecot_user,
            password=dovecot.password, ca_file=dovecot.ca_file, extra='interval = "30m"',
        ) + account_toml(
            name="busy", port=busy.port, user="hanako", password="hanako-pass", tls="none",
            extra='interval = "1m"',
        )  # fmt: skip
        app, service, recorder = start(tmp_path, text, days=0.5)
        arrived: list[Seen] = []

        def mail_at_six(seen: Seen) -> None:
            if not arrived and seen.ended - T0 >= timedelta(hours=6):
                dovecot.add_messages(dovecot_user, [ARRIVING])
                arrived.append(seen)

        recorder.then = mail_at_six
        run(app, service)

    def starts(name: str) -> list[timedelta]:
        return [p.started - T0 for p in recorder.passes if p.state.name == name]

    hours = timedelta(hours=12)
    assert starts("isp") == [n * timedelta(hours=1) for n in range(len(starts("isp")))]
    assert starts("dovecot") == [n * timedelta(minutes=30)
                                 for n in range(len(starts("dovecot")))]  # fmt: skip
    assert starts("busy") == [n * timedelta(minutes=10) for n in range(len(starts("busy")))]
    assert starts("isp")[-1] >= hours - timedelta(hours=1)
    assert starts("dovecot")[-1] >= hours - timedelta(minutes=30)
    assert starts("busy")[-1] >= hours - timedelta(minutes=10)
    outcomes = {(p.state.name, p.outcome) for p in recorder.passes}
    assert outcomes == {("isp", "ok"), ("dovecot", "ok"), ("busy", "ServerBusy")}
    # the poll after the mail arrived (at most 30 minutes later) delivered it, once
    delivered = [p for p in recorder.passes if p.state.name == "dovecot"
                 and p.started > arrived[0].ended and p.state.server_count == 1]  # fmt: skip
    assert delivered[0].started - arrived[0].ended <= timedelta(minutes=30)
    assert maildir_messages(tmp_path / "Maildir").count(ARRIVING.replace(b"\r\n", b"\n")) == 1
