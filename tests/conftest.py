"""Shared pytest fixtures. Keep this file to fixtures; helpers live in ``popkeep.testing``."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from popkeep.testing.certs import TestCerts, make_test_certs
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import demo_mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from .fixtures.dovecot import INSTALL_HINT, Dovecot, find_binary

_dovecot_users = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot (POP3, POP3S, IMAP, IMAPS, LMTP on 127.0.0.1) for the whole session.

    Missing Dovecot fails the run when ``CI=true`` and skips the test otherwise.
    Tests should take a mailbox from :func:`dovecot_user`, not use fixed users.
    Its files live in a fresh directory under /tmp, removed at the end: not in
    pytest's tmp_path, which Dovecot's mail processes cannot reach as root.
    """
    if find_binary() is None:
        message = f"Dovecot is not installed: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = Dovecot.start()
    yield server
    server.stop()


@pytest.fixture
def dovecot_user(dovecot: Dovecot) -> str:
    """A user never used before in this session: empty mailbox, no auth attempts logged.

    Its password is ``dovecot.password``; Dovecot sees the new user at once.
    """
    user = f"t{next(_dovecot_users):04d}"
    dovecot.add_user(user)
    return user


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCerts:
    """A test CA and a certificate it signed for localhost and 127.0.0.1."""
    return make_test_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server(certs: TestCerts, request: pytest.FixtureRequest) -> Iterator[ScriptedPOP3Server]:
    """The scripted POP3 server on a thread, serving the demo mailbox (12 messages) to
    user "taro" (password ``server.password``, which differs from the user name so a
    leak can be searched for), with STLS and the :func:`certs` certificate.

    Indirect parametrisation passes keyword options, e.g. ``{"stls": False}``.
    """
    pop = ScriptedPOP3Server(
        Mailbox.from_messages(demo_mailbox()), user="taro", password="s3cret-pass",
        tls_context=certs.server_context(), **getattr(request, "param", {}),
    )
    with ServerThread(pop):
        yield pop


@pytest.fixture(autouse=True)
def _popkeep_logging() -> Iterator[None]:
    """Each test starts and ends without the log handler a command line installs."""
    import logging

    from popkeep.cli import runner

    level = logging.getLogger().level
    yield
    runner.reset_logging()
    logging.getLogger().setLevel(level)
