"""The one converter of a server connection: host, port, TLS, trust, user, secret.

Owns: turning the connection keys of an ``[[account]]``, an ``imap`` sink or an
``lmtp`` sink into a :class:`~popkeep.config.schema.Connection`, with the same
words, defaults and errors everywhere: ``tls`` (``implicit`` / ``starttls`` /
``none``), the port defaulting from ``tls``, ``ca_file`` (an existing file),
``tls_fingerprint`` (a SHA-256 pin), ``user`` and exactly one secret source
(``password_command``, ``password_env`` or ``password``, a string or
``{ keyring = "SERVICE/NAME" }``; for OAuth 2.0 sign-in, an ``oauth`` table or
``oauth_token_command``). Must not: resolve a
secret, read a file other than checking that ``ca_file`` exists, or know the
rules that depend on the config file itself (its mode: ``load`` applies those).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from popkeep.config import convert as cv
from popkeep.config.convert import Keys, Where
from popkeep.config.schema import Connection, OAuthConfig, OAuthProvider, TLSMode, TokenStore
from popkeep.config.secrets import SecretSource

__all__ = [
    "CONNECTION_KEYS",
    "OAUTH_KEYS",
    "PASSWORD_KEYS",
    "TLS_MODES",
    "TLS_PORTS",
    "connection",
    "password",
]

TLS_MODES: tuple[TLSMode, ...] = ("implicit", "starttls", "none")
PASSWORD_KEYS = ("password", "password_command", "password_env")
#: Where an OAuth 2.0 access token comes from: a provider (``oauth``) or a command.
OAUTH_KEYS = ("oauth", "oauth_token_command")
#: Every key :func:`connection` may read (a table's own keys come on top).
CONNECTION_KEYS = (
    "host", "port", "tls", "ca_file", "tls_fingerprint", "user", *PASSWORD_KEYS, *OAUTH_KEYS,
)

_PROVIDERS: tuple[OAuthProvider, ...] = ("google", "microsoft")
_TOKEN_STORES: tuple[TokenStore, ...] = ("file", "keyring")
_OAUTH_TABLE_KEYS = ("provider", "client_id", "client_secret", "tenant", "token_store",
                     "token_file", "authority")
#: The scopes each provider documents for mail, by protocol. Microsoft's
#: offline_access (for the refresh token) is added by msal itself.
SCOPES: Mapping[OAuthProvider, Mapping[str, tuple[str, ...]]] = {
    "google": {"pop3": ("https://mail.google.com/",), "imap": ("https://mail.google.com/",)},
    "microsoft": {"pop3": ("https://outlook.office.com/POP.AccessAsUser.All",),
                  "imap": ("https://outlook.office.com/IMAP.AccessAsUser.All",)},
}

#: The default port of each protocol by ``tls``: RFC 8314 §7.1 (995 POP3S, 993 IMAPS),
#: RFC 1939 §3 (110, STLS per RFC 2595 §4), RFC 3501 §2.1 (143), RFC 2033 §1 (LMTP
#: has no assigned port; 24 is the usual one).
TLS_PORTS: Mapping[str, Mapping[TLSMode, int]] = {
    "pop3": {"implicit": 995, "starttls": 110, "none": 110},
    "imap": {"implicit": 993, "starttls": 143, "none": 143},
    "lmtp": {"implicit": 24, "starttls": 24, "none": 24},
}


def connection(
    keys: Keys,
    protocol: str,
    *,
    modes: tuple[TLSMode, ...] = TLS_MODES,
    default_tls: TLSMode = "implicit",
    login: bool = True,
    oauth: str | None = None,
) -> Connection:
    """The connection keys of ``keys`` → :class:`Connection`.

    ``modes`` are the ``tls`` words this protocol supports, ``default_tls`` the
    one used when ``tls`` is absent. With ``login``, ``user`` is required, and
    so is exactly one of the password keys; or, when ``oauth`` names the table's
    OAuth ``auth`` word, exactly one of ``oauth`` (a table, :func:`oauth_config`)
    and ``oauth_token_command`` instead (the other kind of key is refused
    either way). ``ca_file`` and ``tls_fingerprint`` have no effect, and are
    refused, with ``tls = "none"``.
    """
    tls = keys.get("tls", cv.choice(modes), default_tls)
    if tls == "none":
        for key in ("ca_file", "tls_fingerprint"):
            if keys.has(key):
                keys.where.key(key).fail('has no effect with tls = "none"')
    return Connection(
        host=keys.need("host", cv.to_host),
        port=keys.get("port", cv.int_between(1, 65535), TLS_PORTS[protocol][tls]),
        tls=tls,
        ca_file=keys.get("ca_file", cv.existing_file, None),
        tls_fingerprint=keys.get("tls_fingerprint", cv.fingerprint, None),
        user=keys.need("user", cv.to_string) if login else None,
        secret=_secret(keys, oauth) if login else None,
        oauth=oauth_config(keys, protocol) if login and oauth else None,
    )


def _secret(keys: Keys, oauth: str | None) -> SecretSource | None:
    """The password (no OAuth), or the ``oauth_token_command`` (OAuth without a table)."""
    if oauth is None:
        for key in OAUTH_KEYS:
            if keys.has(key):
                keys.where.key(key).fail(
                    f'has no effect with auth = "{keys.table.get("auth", "")}"'
                    if "auth" in keys.table else 'needs an OAuth auth, e.g. auth = "oauth2"')
        return password(keys, required=True)
    for key in PASSWORD_KEYS:
        if keys.has(key):
            keys.where.key(key).fail(f'has no effect with auth = "{oauth}"')
    if keys.has("oauth") == keys.has("oauth_token_command"):
        keys.where.fail(f'auth = "{oauth}" needs exactly one of oauth, oauth_token_command')
    return command_secret(keys, "oauth_token_command")


def oauth_config(keys: Keys, protocol: str) -> OAuthConfig | None:
    """The ``oauth`` table → :class:`OAuthConfig` (None when absent). ``token_file``
    stays None unless given, and ``owner`` empty: ``load`` fills both in once the
    state dir and the table's name are known."""
    if not keys.has("oauth"):
        return None
    table = Keys(keys.table["oauth"], keys.where.key("oauth"), _OAUTH_TABLE_KEYS)
    provider = table.need("provider", cv.choice(_PROVIDERS))
    if provider == "google" and table.has("tenant"):
        table.where.key("tenant").fail('is Microsoft\'s: it has no effect with provider = "google"')
    store: TokenStore = table.get("token_store", cv.choice(_TOKEN_STORES), "file")
    if store != "file" and table.has("token_file"):
        table.where.key("token_file").fail(f'has no effect with token_store = "{store}"')
    return OAuthConfig(
        provider=provider,
        client_id=table.need("client_id", cv.to_string),
        scopes=SCOPES[provider][protocol],
        token_file=table.get("token_file", cv.absolute_path, None),
        client_secret=table.get("client_secret", cv.to_string, None),
        tenant=table.get("tenant", _tenant, "consumers"),
        token_store=store,
        authority=table.get("authority", cv.endpoint, None),
    )


def _tenant(value: object, where: Where) -> str:
    """``consumers``, ``organizations``, ``common``, or a tenant id / domain name."""
    text = cv.to_string(value, where)
    if not all(c.isalnum() or c in ".-" for c in text) or not text.isascii():
        where.fail(f"expected consumers, organizations or a tenant id, got {cv.show(text)}")
    return text


def password(keys: Keys, *, required: bool) -> SecretSource | None:
    """At most one (with ``required``: exactly one) of the password keys → SecretSource."""
    given = [key for key in PASSWORD_KEYS if keys.has(key)]
    if len(given) > 1 or (required and not given):
        got = " and ".join(given) if given else "none"
        keys.where.fail(f"expected one of password_command, password_env or password, got {got}")
    if not given:
        return None
    key = given[0]
    where = keys.where.key(key)
    value = keys.table[key]
    if key == "password_command":
        argv = cv.command(value, where)
        return SecretSource("command", shlex.join(argv), str(where), argv=argv)
    if key == "password_env":
        return SecretSource("env", _env_name(value, where), str(where))
    if isinstance(value, dict):
        entry = Keys(value, where, ("keyring",)).need("keyring", _keyring_entry)
        return SecretSource("keyring", entry, str(where.key("keyring")))
    if not isinstance(value, str) or not value or cv.CONTROL.search(value):
        # Never show() a password: say what is wrong with it, not what it is.
        where.fail("expected a non-empty string without control characters or line breaks")
    return SecretSource("literal", value, str(where))


def command_secret(keys: Keys, key: str) -> SecretSource | None:
    """A token command (``oauth_token_command``) → SecretSource, or None when absent."""
    if not keys.has(key):
        return None
    where = keys.where.key(key)
    argv = cv.command(keys.table[key], where)
    return SecretSource("command", shlex.join(argv), str(where), argv=argv)


def _keyring_entry(value: object, where: Where) -> str:
    """A keyring entry, ``SERVICE/NAME`` (or ``NAME``, under service ``popkeep``)."""
    text = cv.to_string(value, where)
    if text.startswith("/") or text.endswith("/"):
        where.fail(f'expected a keyring entry like "popkeep/isp", got {cv.show(text)}')
    return text


def _env_name(value: object, where: Where) -> str:
    text = cv.to_string(value, where)
    if not (text.replace("_", "a").isalnum() and text.isascii() and not text[0].isdigit()):
        where.fail(f"expected an environment variable name like ISP_PASS, got {cv.show(text)}")
    return text
