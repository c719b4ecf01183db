"""OAuth 2.0 sign-in (XOAUTH2, OAUTHBEARER) over TCP against the scripted POP3 server,
checked byte for byte on the server's side, the refused token's error exchange included."""

from __future__ import annotations

import asyncio
import base64

import pytest

from popkeep.errors import AuthError
from popkeep.sources.pop3 import POP3Session, SessionSettings
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server
from popkeep.transport.base import Stream, TLSSettings
from popkeep.transport.tcp import open_tcp

TOKEN = "ya29.a0-" + "x" * 400  # the server's one valid access token
USER = "me@example.com"


async def _open(host: str, port: int, tls: TLSSettings | None, ct: float, rt: float) -> Stream:
    return await open_tcp(host, port, tls=tls, connect_timeout=ct, read_timeout=rt)


async def _sign_in(server: ScriptedPOP3Server, auth: str, token: str) -> int:
    """Connect, authenticate with ``token``, STAT, QUIT; the message count."""
    settings = SessionSettings(
        host="127.0.0.1", port=server.port, tls="none", tls_settings=TLSSettings("127.0.0.1"),
        user=USER, password=token, auth=auth,  # type: ignore[arg-type]
        connect_timeout=5, response_timeout=5)
    session = await POP3Session.connect(settings, _open)
    try:
        return (await session.stat()).messages
    finally:
        await session.quit()


def _scripted(sasl: tuple[str, ...]) -> ScriptedPOP3Server:
    box = Mailbox.from_messages([b"Subject: 1\r\n\r\nbody\r\n"])
    return ScriptedPOP3Server(box, user=USER, password=TOKEN, sasl=sasl)


@pytest.mark.parametrize(("sasl", "mechanism", "raw"), [
    (("PLAIN", "XOAUTH2"), b"XOAUTH2",
     b"user=me@example.com\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"),
    (("PLAIN", "OAUTHBEARER"), b"OAUTHBEARER",
     b"n,a=me@example.com,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer "
     + TOKEN.encode() + b"\x01\x01"),
])
def test_signs_in_with_the_advertised_mechanism(
    sasl: tuple[str, ...], mechanism: bytes, raw: bytes
) -> None:
    async def main() -> tuple[int, list[bytes], int]:
        async with _scripted(sasl) as server:
            count = await _sign_in(server, "oauth2", TOKEN)
            return count, server.sessions[0].lines, server.port

    count, lines, port = asyncio.run(main())
    assert count == 1
    if b"%d" in raw:
        raw = raw.replace(b"%d", str(port).encode())
    # RFC 5034 §4: the token does not fit a 255-octet command, so no initial response.
    assert lines[:3] == [b"CAPA", b"AUTH " + mechanism, base64.b64encode(raw)]


@pytest.mark.parametrize(("mechanism", "answer"), [("XOAUTH2", b""), ("OAUTHBEARER", b"AQ==")])
def test_refused_token_gets_the_error_challenge_answered_then_err(
    mechanism: str, answer: bytes
) -> None:
    async def main() -> list[bytes]:
        async with _scripted(("PLAIN", mechanism)) as server:
            with pytest.raises(AuthError, match="access token was refused: status 401"):
                await _sign_in(server, mechanism.lower(), "ya29.expired-" + "y" * 300)
            return server.sessions[0].lines

    lines = asyncio.run(main())
    assert lines[1] == b"AUTH " + mechanism.encode()
    assert lines[3] == answer  # after the "+ <base64 JSON error>" challenge
    assert b"STAT" not in lines
