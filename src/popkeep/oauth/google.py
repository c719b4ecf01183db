"""Google tokens through google-auth (refresh) and google-auth-oauthlib (sign-in).

Owns: the authorized-user JSON (client id and secret, refresh token, access token
and its expiry) kept in the configured :mod:`~popkeep.oauth.store`, refreshing it
with google-auth, and signing in with the installed-app flow: a browser goes to
Google, which redirects to a one-shot server on http://localhost (RFC 8252 §7.3).
The Google libraries are imported only here (the Gmail API sink's token file
comes here too).

Google does not offer its device flow ("TV and limited-input devices") for the
mail scope, so ``flow = "device"`` is refused with what to do instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials

from popkeep.config.schema import OAuthConfig
from popkeep.errors import AuthError, ConfigError, ConnectError
from popkeep.oauth import Flow, sign_in_required
from popkeep.oauth.store import TokenStore, store_for

TOKEN_HOST = "https://oauth2.googleapis.com"  # noqa: S105 (a URL: its token endpoint is <host>/token)
AUTH_URI = "https://accounts.google.com/o/oauth2/auth"


@contextmanager
def _network(config: OAuthConfig) -> Iterator[None]:
    try:
        yield
    except RefreshError as exc:  # invalid_grant: revoked, expired, or a 7-day test app
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        raise sign_in_required(config, f"Google refused to renew the sign-in: {said}") from exc
    except TransportError as exc:
        raise ConnectError(f"{config.owner}: Google sign-in server: {exc}") from exc


class GoogleTokens:
    """:class:`~popkeep.oauth.TokenProvider` for ``provider = "google"``."""

    def __init__(self, config: OAuthConfig, store: TokenStore) -> None:
        self.config = config
        self._store = store
        self._token_uri = f"{config.authority or TOKEN_HOST}/token"

    def _client_config(self) -> dict[str, dict[str, object]]:
        """The "installed" client secrets document the installed-app flow reads."""
        return {"installed": {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret or "",
            "auth_uri": AUTH_URI if self.config.authority is None
            else f"{self.config.authority}/auth",
            "token_uri": self._token_uri,
            "redirect_uris": ["http://localhost"],
        }}

    def access_token(self, renew: bool = False) -> str:
        saved = self._store.load()
        if not saved:
            raise sign_in_required(self.config, "no sign-in yet")
        try:
            creds = Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                json.loads(saved), list(self.config.scopes))
            if self.config.authority is not None:  # it always sets Google's own endpoint
                expiry, creds = creds.expiry, creds.with_token_uri(self._token_uri)
                creds.expiry = expiry  # (the copy drops it)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self.config.owner}: saved Google token unreadable "
                              f"({self._store.where}): {exc}") from exc
        if renew or not creds.valid:
            with _network(self.config):
                creds.refresh(Request())
            self._store.save(creds.to_json())
        return str(creds.token)

    def sign_in(self, flow: Flow, say: Callable[[str], None]) -> str:
        """The installed-app flow only (needs a browser that reaches this machine)."""
        if flow == "device":
            raise ConfigError(
                f"{self.config.owner}: Google offers no device-code sign-in for mail; "
                "run popkeep auth --browser on a machine with a browser (over ssh, "
                "forward the port of the address it prints: ssh -L PORT:localhost:PORT)")
        if not self.config.client_secret:
            raise ConfigError(f"{self.config.owner}: oauth.client_secret is needed for Google "
                              "(from the OAuth client's JSON; Google does not treat it as secret "
                              "for desktop apps)")
        return self._installed_app(say)

    def _installed_app(self, say: Callable[[str], None]) -> str:
        """google-auth-oauthlib's local-redirect flow; it prints the address itself."""
        try:
            from google_auth_oauthlib.flow import InstalledAppFlow  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigError("popkeep auth needs: pip install 'popkeep[oauth]'") from exc

        say("a browser opens for Google's sign-in; if none does, open the address below")
        app = InstalledAppFlow.from_client_config(self._client_config(),
                                                  list(self.config.scopes))
        try:
            creds = app.run_local_server(host="localhost", port=0, open_browser=True,
                                         authorization_prompt_message="Open: {url}",
                                         access_type="offline", prompt="consent")
        except Exception as exc:
            raise AuthError(f"{self.config.owner}: Google sign-in failed: {exc}") from exc
        self._store.save(creds.to_json())
        return "signed in"


def tokens(config: OAuthConfig) -> GoogleTokens:
    """The provider :func:`popkeep.oauth.provider` builds."""
    return GoogleTokens(config, store_for(config))
