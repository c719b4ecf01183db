"""Provider presets: the POP3 server of an email address's provider, from data.

Owns: reading ``presets.toml`` (shipped beside this module; one ``[[preset]]``
table per provider, documented at the top of that file) into frozen
:class:`Preset` records through the config's one validator (:class:`Keys`:
unknown keys, wrong types and a TLS mode that contradicts the port are errors
naming the preset), and finding the preset of an address (:func:`find`).
Must not: touch the network (``popkeep init`` probes and logs in), or hold any
provider's settings in code: they are data, so users can contribute one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from popkeep.config import convert as cv
from popkeep.config.connection import TLS_PORTS
from popkeep.config.convert import Keys, Where
from popkeep.config.schema import TLSMode
from popkeep.errors import ConfigError

__all__ = ["PRESETS_FILE", "Preset", "find", "load_presets", "split_address"]

PRESETS_FILE = Path(__file__).with_name("presets.toml")

PresetAuth = Literal["password", "oauth2"]
OAuthProvider = Literal["google", "microsoft"]
LoginName = Literal["address", "local"]

_KEYS = (
    "id", "name", "domains", "host", "port", "tls", "user", "auth", "oauth_provider", "pop",
    "server_deletes_after", "server_quota", "quirks", "verified", "note", "sources",
)
_POP_KEYS = ("host", "port", "tls", "user", "auth", "oauth_provider")
#: a preset's TLS is implicit or STLS: a provider without TLS gets no preset
_TLS: tuple[TLSMode, ...] = ("implicit", "starttls")
_AUTHS: tuple[PresetAuth, ...] = ("password", "oauth2")
_PROVIDERS: tuple[OAuthProvider, ...] = ("google", "microsoft")
_LOGINS: tuple[LoginName, ...] = ("address", "local")


class Preset(NamedTuple):
    """One provider. ``pop`` False: the provider has no POP3 (no server fields)."""

    id: str
    name: str
    domains: tuple[str, ...]
    host: str
    port: int
    tls: TLSMode
    user: LoginName
    auth: PresetAuth
    oauth_provider: OAuthProvider | None
    pop: bool
    server_deletes_after: timedelta | None
    server_quota: int | None
    quirks: tuple[str, ...]
    verified: bool
    note: str
    sources: tuple[str, ...]

    def matches(self, domain: str) -> bool:
        """Whether this preset serves addresses at ``domain`` (lower case)."""
        for pattern in self.domains:
            if pattern.startswith("*."):
                if domain.endswith(pattern[1:]) and domain != pattern[2:]:
                    return True
            elif domain == pattern:
                return True
        return False

    def server(self, domain: str) -> str:
        """The POP3 host for an address at ``domain``."""
        return self.host.replace("{domain}", domain)

    def login(self, address: str) -> str:
        """The login name for ``address``."""
        return address if self.user == "address" else split_address(address)[0]


def split_address(address: str) -> tuple[str, str]:
    """``taro@Example.JP`` → ``("taro", "example.jp")``; ConfigError if it is none."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address.strip()):
        raise ConfigError(f"not an email address: {cv.show(address)}")
    return local, domain.lower()


def load_presets(path: Path = PRESETS_FILE) -> tuple[Preset, ...]:
    """Every preset in ``path`` (default: the shipped file), checked."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the presets: {exc}") from exc
    top = Keys(data, Where(str(path)), ("preset",))
    tables = top.need("preset", _tables)
    presets = [_preset(table, str(path), n + 1) for n, table in enumerate(tables)]
    seen: set[str] = set()
    for preset in presets:
        if preset.id in seen:
            raise ConfigError(f"{path}: preset {preset.id!r} appears twice")
        seen.add(preset.id)
    return tuple(presets)


def find(address: str, presets: Sequence[Preset] | None = None) -> Preset | None:
    """The preset serving ``address``'s domain, or None."""
    _, domain = split_address(address)
    for preset in load_presets() if presets is None else presets:
        if preset.matches(domain):
            return preset
    return None


def _tables(value: object, where: Where) -> list[object]:
    if not isinstance(value, list) or not value:
        where.fail("expected one or more [[preset]] tables")
    return value


def _preset(table: object, source: str, number: int) -> Preset:
    """The ``number``-th ``[[preset]]`` table; errors name it by its id once known."""
    keys = Keys(table, Where.at(source, f"preset {number}"), _KEYS)
    ident = keys.need("id", cv.to_name)
    where = keys.where = Where.at(source, f'preset "{ident}"')
    pop = keys.get("pop", cv.to_bool, True)
    if not pop:
        for key in _POP_KEYS:
            if keys.has(key):
                where.key(key).fail("has no meaning with pop = false")
    tls = keys.need("tls", cv.choice(_TLS)) if pop else "implicit"
    port = keys.need("port", cv.int_between(1, 65535)) if pop else 0
    if pop:
        _check_port(tls, port, where.key("port"))
    auth: PresetAuth = keys.need("auth", cv.choice(_AUTHS)) if pop else "password"
    oauth = keys.get("oauth_provider", cv.choice(_PROVIDERS), None)
    if (auth == "oauth2") != (oauth is not None):
        where.fail('oauth_provider is needed with auth = "oauth2", and only then')
    return Preset(
        id=ident,
        name=keys.need("name", cv.to_string),
        domains=keys.need("domains", _domains),
        host=keys.need("host", cv.to_host) if pop else "",
        port=port,
        tls=tls,
        user=keys.need("user", cv.choice(_LOGINS)) if pop else "address",
        auth=auth,
        oauth_provider=oauth,
        pop=pop,
        server_deletes_after=keys.get("server_deletes_after", cv.retention_duration, None),
        server_quota=keys.get("server_quota", cv.positive_size, None),
        quirks=keys.need("quirks", _strings),
        verified=keys.need("verified", cv.to_bool),
        note=keys.need("note", cv.to_string),
        sources=keys.need("sources", _strings),
    )


def _check_port(tls: TLSMode, port: int, where: Where) -> None:
    """Implicit TLS on the plaintext port, or STLS on the POP3S port, is a
    contradiction (RFC 8314 §3.3: 995 is TLS from the first byte; RFC 2595 §4:
    STLS is sent on the plaintext port, 110)."""
    other: TLSMode = "starttls" if tls == "implicit" else "implicit"
    if port == TLS_PORTS["pop3"][other]:
        where.fail(f'port {port} is for tls = "{other}", not "{tls}"')


def _domains(value: object, where: Where) -> tuple[str, ...]:
    domains = _strings(value, where)
    if not domains:
        where.fail("expected at least one domain")
    for domain in domains:
        bare = domain.removeprefix("*.")
        if domain != domain.lower() or "." not in bare or "*" in bare or "@" in bare:
            where.fail(f'expected lower-case domains like "example.jp" or "*.example.jp", '
                       f"got {cv.show(domain)}")
    return domains


def _strings(value: object, where: Where) -> tuple[str, ...]:
    if isinstance(value, list) and not value:
        return ()
    return cv.string_list(value, where)
