"""TLS mistakes explained (issue 15 item 6) against the test Dovecot on 127.0.0.1:
the account's ``tls`` does not match the port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from popkeep.cli.quick.poll import drive
from popkeep.errors import NetworkTimeout, TLSMismatch
from popkeep.sources.pop3 import POP3Session, SessionSettings
from popkeep.transport.base import TLSSettings
from popkeep.transport.loopless import open_stream  # on the loop: transport.tcp's

from ..fixtures.dovecot import Dovecot

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["loop", "blocking"])
def run(request: pytest.FixtureRequest) -> Run:
    """On an event loop, and without one (the stream's blocking mode, as ``fetch`` polls)."""
    return asyncio.run if request.param == "loop" else drive


def _settings(dovecot: Dovecot, user: str, port: int, tls: str, **kw: float) -> SessionSettings:
    return SessionSettings(
        host=dovecot.host, port=port, tls=tls,  # type: ignore[arg-type]
        tls_settings=TLSSettings("localhost", ca_file=dovecot.ca_file),
        user=user, password=dovecot.password, connect_timeout=10, response_timeout=60, **kw,
    )


def test_implicit_tls_on_the_plain_port_says_use_starttls(
    dovecot: Dovecot, dovecot_user: str, run: Run
) -> None:
    settings = _settings(dovecot, dovecot_user, dovecot.pop3_port, "implicit")
    with pytest.raises(TLSMismatch) as caught:
        run(POP3Session.connect(settings, open_stream))
    assert "answered in plain text" in str(caught.value)
    assert "+OK" in str(caught.value)
    assert 'tls = "starttls"' in caught.value.hint


@pytest.mark.parametrize("tls", ["starttls", "none"])
def test_no_tls_at_once_on_the_implicit_port_fails_within_the_greeting_deadline(
    dovecot: Dovecot, dovecot_user: str, tls: str, run: Run
) -> None:
    """The implicit-TLS port waits for our ClientHello and never greets: the session
    gives up after greeting_timeout (not the 60 s response timeout) and names implicit TLS."""
    settings = _settings(dovecot, dovecot_user, dovecot.pop3s_port, tls, greeting_timeout=1)
    began = time.monotonic()
    with pytest.raises(NetworkTimeout) as caught:
        run(POP3Session.connect(settings, open_stream))
    assert time.monotonic() - began < 30
    assert "no POP3 greeting within 1 s (nothing arrived)" in str(caught.value)
    assert 'tls = "implicit"' in caught.value.hint

