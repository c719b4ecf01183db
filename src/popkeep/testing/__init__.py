"""The demo/test POP3 server and deterministic mailbox generators (shipped: the demo uses them).

Only ``popkeep demo`` (:mod:`popkeep.cli.demo`) imports this package (an
import-linter contract keeps it so); test-only
fixtures (the private Dovecot) live under tests/ and are not installed. It depends
only on the standard library, :mod:`popkeep.errors`, and the ``openssl`` command
for test certificates.
"""

from popkeep.testing.mailbox import Mailbox, MailboxEntry
from popkeep.testing.mailgen import big_message, crlf, demo_mailbox, lf, realistic_mailbox
from popkeep.testing.misbehaviour import Misbehaviour
from popkeep.testing.server import ScriptedPOP3Server, ServerThread
from popkeep.testing.session import SessionLog

__all__ = [
    "Mailbox",
    "MailboxEntry",
    "Misbehaviour",
    "ScriptedPOP3Server",
    "ServerThread",
    "SessionLog",
    "big_message",
    "crlf",
    "demo_mailbox",
    "lf",
    "realistic_mailbox",
]
