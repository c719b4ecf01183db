"""The system keyring: passwords (``password = { keyring = "popkeep/isp" }``) and
OAuth tokens (:mod:`popkeep.oauth.store`).

Owns: the only import of the ``keyring`` package (an optional dependency, extra
``keyring``: Secret Service on Linux, the macOS Keychain, the Windows Credential
Locker, or whatever backend ``PYTHON_KEYRING_BACKEND`` names), imported when a
secret is read or stored, and the translation of its errors into ConfigError.
A password entry is named ``SERVICE/NAME``; a name without ``/`` is under
service ``popkeep``. Must not: log or show a secret, or choose a backend itself.
"""

from __future__ import annotations

from typing import Any

from popkeep.errors import ConfigError

__all__ = [
    "DEFAULT_SERVICE", "available", "get_password", "read", "set_password", "split_entry", "write",
]

DEFAULT_SERVICE = "popkeep"
INSTALL = "pip install 'popkeep[keyring]'"


def split_entry(entry: str) -> tuple[str, str]:
    """``"popkeep/isp"`` → ``("popkeep", "isp")``; ``"isp"`` → ``("popkeep", "isp")``."""
    service, slash, name = entry.partition("/")
    return (service, name) if slash else (DEFAULT_SERVICE, entry)


def _keyring() -> Any:
    try:
        import keyring
    except ImportError as exc:
        raise ConfigError(f"the system keyring needs the keyring package: {INSTALL}") from exc
    return keyring


def available() -> bool:
    """Whether a usable keyring backend is there (the package installed, and a
    backend other than keyring's "fail" one, which refuses everything)."""
    try:
        backend = _keyring().get_keyring()
    except Exception:  # not installed (ConfigError), or a backend that fails to load
        return False
    priority: float = getattr(backend, "priority", 1)
    return not type(backend).__module__.startswith("keyring.backends.fail") and priority > 0


def read(service: str, name: str, where: str) -> str | None:
    """What is stored under ``service``/``name``, or None; ConfigError naming
    ``where`` when the keyring cannot be read."""
    keyring = _keyring()
    try:
        text: str | None = keyring.get_password(service, name)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(f"{where}: cannot read the keyring: {exc}") from exc
    return text


def write(service: str, name: str, secret: str, where: str) -> None:
    """Store ``secret`` under ``service``/``name``, replacing what was there."""
    keyring = _keyring()
    try:
        keyring.set_password(service, name, secret)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(f"{where}: cannot write to the keyring: {exc}") from exc


def get_password(entry: str, where: str) -> str:
    """The password stored under ``entry``; ConfigError naming ``where`` when
    there is none or the keyring cannot be read (the message says how to store one)."""
    secret = read(*split_entry(entry), where)
    if not secret:
        raise ConfigError(f'{where}: the keyring has no password for "{entry}" '
                          "(store one with popkeep set-password)")
    return secret


def set_password(entry: str, secret: str) -> None:
    """Store ``secret`` under ``entry``, replacing what was there."""
    write(*split_entry(entry), secret, f'the keyring entry "{entry}"')
