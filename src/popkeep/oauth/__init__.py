"""OAuth 2.0 access tokens for signing in to mail servers (XOAUTH2 / OAUTHBEARER).

Owns: the :class:`TokenProvider` seam, the choice of its implementation by the
configured provider word (each imported only when configured: msal only in
:mod:`.microsoft`, the Google libraries only in :mod:`.google`), and where the
tokens are kept (:mod:`.store`: a 0600 file or the system keyring).

A provider is synchronous (the libraries are); callers on an event loop run it in
a worker thread. Must not: log or put a token into an error message, or print
anything except through the ``say`` callback of :meth:`TokenProvider.sign_in`
(``popkeep auth`` passes its output; google-auth-oauthlib's browser flow prints
the address to open itself).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from popkeep.config.schema import OAuthConfig
from popkeep.errors import AuthError, SignInRequired

__all__ = ["Flow", "TokenProvider", "provider", "renewing", "sign_in_required"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``browser``: sign in with a browser on this machine (a local redirect to
#: 127.0.0.1, RFC 8252 §7.3); ``device``: show a code to enter on any other
#: device (RFC 8628 device authorization grant).
Flow = Literal["browser", "device"]


class TokenProvider(Protocol):
    """Access tokens for one account or sink."""

    def access_token(self, renew: bool = False) -> str:
        """A valid access token, refreshed (and the new tokens stored) when needed, or
        with ``renew`` always (the server refused the one that looked valid here).

        Raises SignInRequired when there is no token yet or the provider refused the
        refresh token; TransportError when its server cannot be reached."""
        ...

    def sign_in(self, flow: Flow, say: Callable[[str], None]) -> str:
        """Run the interactive ``flow``, store the tokens; who signed in, in words.

        ``say`` shows the user what to do (the device code and where to enter it).
        Raises AuthError when the sign-in was refused or the code expired,
        ConfigError when the provider does not offer ``flow``."""
        ...


#: provider word → the module whose ``tokens(config)`` builds its TokenProvider
_ADAPTERS = {"google": "popkeep.oauth.google", "microsoft": "popkeep.oauth.microsoft"}


def provider(config: OAuthConfig) -> TokenProvider:
    """The token provider for ``config`` (its library imported now, not before)."""
    module = importlib.import_module(_ADAPTERS[config.provider])
    built: TokenProvider = module.tokens(config)
    return built


def sign_in_required(config: OAuthConfig, why: str) -> SignInRequired:
    """The one-line error telling the user to sign in again, naming the command:
    ``account "outlook": no sign-in yet; run: popkeep auth outlook``. ``why`` (the
    provider's words, untrusted) is cut to one short line."""
    name = config.owner.partition('"')[2].rstrip('"') or config.owner
    why = " ".join(why.split())[:200]
    return SignInRequired(f"{config.owner}: {why}; run: popkeep auth {name}", name)


async def renewing(who: str, login: Callable[[bool], Awaitable[T]], hint: str) -> T:
    """``login(renew=False)``; when the server refuses an access token that looked valid
    here (revoked before it expired), once more with a fresh one (``login(True)``), and
    the server's answer then stands: its AuthError carries ``hint``. SignInRequired
    (no token, or the refresh token refused) is raised at once."""
    try:
        return await login(False)
    except AuthError as exc:
        if isinstance(exc, SignInRequired):
            raise
    logger.info("%s: access token refused; renewing it once", who)
    try:
        return await login(True)
    except AuthError as exc:
        if not isinstance(exc, SignInRequired):
            exc.hint = hint
        raise
