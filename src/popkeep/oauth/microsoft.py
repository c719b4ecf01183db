"""Microsoft Entra ID (Outlook.com, Microsoft 365) tokens through msal.

Owns: one msal ``PublicClientApplication`` per account or sink, its serialisable
token cache kept in the configured :mod:`~popkeep.oauth.store`, the device-code
flow (RFC 8628, for machines without a browser), the interactive flow (a browser
on this machine, redirected to http://localhost), and silent refresh. msal is
imported only here. Scopes come from the config (``…/POP.AccessAsUser.All`` or
``…/IMAP.AccessAsUser.All``); msal adds ``offline_access`` (the refresh token)
and ``openid profile`` itself.

With ``authority`` set (the tests' fake server) msal skips Microsoft's instance
discovery and reads ``<authority>/<tenant>/v2.0/.well-known/openid-configuration``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import msal  # type: ignore[import-untyped]
import requests

from popkeep.config.schema import OAuthConfig
from popkeep.errors import AuthError, ConnectError, SignInRequired
from popkeep.oauth import Flow, sign_in_required
from popkeep.oauth.store import TokenStore, store_for

logger = logging.getLogger(__name__)

AUTHORITY = "https://login.microsoftonline.com"
TIMEOUT = 30.0  #: seconds for each request to the sign-in server (msal sets none)
_PENDING = ("authorization_pending", "slow_down")  # RFC 8628 §3.5: poll again


@contextmanager
def _network(config: OAuthConfig) -> Iterator[None]:
    """msal's HTTP errors (requests) → ConnectError; its ValueError on a broken
    authority (the discovery document did not load) → ConnectError too."""
    try:
        yield
    except (requests.RequestException, ValueError) as exc:
        raise ConnectError(f"{config.owner}: Microsoft sign-in server: {exc}") from exc


class MicrosoftTokens:
    """:class:`~popkeep.oauth.TokenProvider` for ``provider = "microsoft"``.

    ``sleep`` waits between device-flow polls (the tests pass one that only records);
    ``timeout`` bounds each request to the sign-in server."""

    def __init__(self, config: OAuthConfig, store: TokenStore,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = TIMEOUT) -> None:
        self.config = config
        self._store = store
        self._sleep = sleep
        self._timeout = timeout
        self._cache = msal.SerializableTokenCache()
        saved = store.load()
        if saved:
            self._cache.deserialize(saved)
        self._app_: Any = None

    @property
    def _app(self) -> Any:
        """The msal application, built on first use (its discovery is a request)."""
        if self._app_ is None:
            custom = self.config.authority is not None
            base = self.config.authority or AUTHORITY
            with _network(self.config):
                self._app_ = msal.PublicClientApplication(
                    self.config.client_id, authority=f"{base}/{self.config.tenant}",
                    token_cache=self._cache, validate_authority=not custom,
                    instance_discovery=not custom, timeout=self._timeout,
                )
        return self._app_

    def _save(self) -> None:
        if self._cache.has_state_changed:
            self._store.save(self._cache.serialize())

    def _refused(self, result: Mapping[str, Any] | None) -> SignInRequired:
        if not result:
            return sign_in_required(self.config, "no sign-in yet")
        return sign_in_required(self.config, "Microsoft refused to renew the sign-in: "
                                f"{result.get('error')}: {result.get('error_description', '')}")

    def access_token(self, renew: bool = False) -> str:
        """The cached access token, or a new one from the refresh token (msal decides;
        ``renew``: always a new one)."""
        with _network(self.config):
            accounts = self._app.get_accounts()
            if not accounts:
                raise self._refused(None)
            result = self._app.acquire_token_silent_with_error(
                list(self.config.scopes), account=accounts[0], force_refresh=renew)
        if not result or "access_token" not in result:
            raise self._refused(result)
        self._save()
        return str(result["access_token"])

    def sign_in(self, flow: Flow, say: Callable[[str], None]) -> str:
        with _network(self.config):
            if flow == "device":
                result = self._device_flow(say)
            else:  # a browser on this machine, redirected to http://localhost
                result = self._app.acquire_token_interactive(
                    list(self.config.scopes), prompt="select_account")
        if "access_token" not in result:
            raise AuthError(f"{self.config.owner}: sign-in failed: {result.get('error')}: "
                            f"{str(result.get('error_description', ''))[:200]}")
        self._save()
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("name") or "signed in")

    def _device_flow(self, say: Callable[[str], None]) -> dict[str, Any]:
        """RFC 8628: show the code, then poll the token endpoint every ``interval``
        seconds (msal adds 5 after ``slow_down``, §3.5) until the user has entered it,
        refused, or the code expired (``expired_token``)."""
        flow = self._app.initiate_device_flow(scopes=list(self.config.scopes))
        if "user_code" not in flow:
            raise AuthError(f"{self.config.owner}: device sign-in refused: "
                            f"{flow.get('error')}: {flow.get('error_description', '')}")
        say(str(flow["message"]))
        while True:
            # One request per call: msal's own loop would sleep in one-second steps.
            result: dict[str, Any] = self._app.acquire_token_by_device_flow(
                flow, exit_condition=lambda _flow: True)
            if result.get("error") not in _PENDING:
                return result
            if flow["expires_at"] < time.time():
                return {"error": "expired_token", "error_description": "the code expired"}
            self._sleep(float(flow["interval"]))


def tokens(config: OAuthConfig) -> MicrosoftTokens:
    """The provider :func:`popkeep.oauth.provider` builds."""
    return MicrosoftTokens(config, store_for(config))
