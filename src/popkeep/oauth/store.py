"""Where OAuth tokens are kept between runs: a file with mode 0600, or the keyring.

Owns: :class:`TokenStore` (load / save one text: the provider's serialised tokens)
and its two implementations. A file is written atomically (a temporary file with
mode 0600, fsynced, renamed over the old one) in a directory created with mode
0700. The keyring (through :mod:`popkeep.config.keystore`, the one module that
imports the ``keyring`` package, only when configured) keeps the text under
service ``popkeep-oauth`` and the owner's name.
Must not: log the text (it holds a refresh token).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from popkeep.config.schema import OAuthConfig
from popkeep.errors import CannotCreate, ConfigError

__all__ = ["FileStore", "KeyringStore", "TokenStore", "store_for", "write_private"]

KEYRING_SERVICE = "popkeep-oauth"


class TokenStore(Protocol):
    """One saved text: the tokens of one account or sink."""

    where: str  #: in words, for ``popkeep auth``'s report ("/path/file.json", "the keyring")

    def load(self) -> str | None:
        """The saved text, or None when nothing was saved yet."""
        ...

    def save(self, text: str) -> None:
        """Replace the saved text."""
        ...


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (the token is a credential)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class FileStore:
    """The tokens in ``path`` (mode 0600; its directory is made with mode 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def load(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"token file {self.path}: unreadable: {exc}") from exc

    def save(self, text: str) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise CannotCreate(f"token file {self.path}: cannot write: {exc.strerror}") from exc


class KeyringStore:
    """The tokens in the system keyring (Secret Service, macOS Keychain, Windows
    Credential Locker) under service ``popkeep-oauth`` and user ``owner``."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.where = f"the system keyring ({KEYRING_SERVICE} / {owner})"

    def load(self) -> str | None:
        from popkeep.config import keystore  # keyring loads only when configured

        return keystore.read(KEYRING_SERVICE, self.owner, self.where)

    def save(self, text: str) -> None:
        from popkeep.config import keystore

        keystore.write(KEYRING_SERVICE, self.owner, text, self.where)


def store_for(config: OAuthConfig) -> TokenStore:
    """The store ``config`` names (``token_store``; the file defaults in ``load``)."""
    if config.token_store == "keyring":  # noqa: S105 (a word, not a secret)
        return KeyringStore(config.owner)
    if config.token_file is None:
        raise ConfigError(f"{config.owner}: oauth has no token_file")
    return FileStore(config.token_file)
