"""Where the tokens are kept: a 0600 file, or the keyring (a test backend in memory,
never the user's real keyring)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

from popkeep.config.schema import OAuthConfig
from popkeep.errors import CannotCreate
from popkeep.oauth.store import FileStore, KeyringStore, store_for, write_private


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend holding its passwords in a dict."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.saved: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.saved.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.saved[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.saved.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_file_store_writes_0600_in_a_0700_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "oauth" / "account-isp.json")
    assert store.load() is None
    store.save('{"refresh_token": "rt"}')
    assert store.load() == '{"refresh_token": "rt"}'
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir()] == ["account-isp.json"]


def test_token_written_private(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    old = os.umask(0)
    try:
        write_private(path, b'{"token": "x"}')
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b'{"token": "x"}'


def test_file_store_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "oauth").write_text("a file where the directory should be")
    with pytest.raises(CannotCreate, match="cannot write"):
        FileStore(tmp_path / "oauth" / "account-isp.json").save("x")


def test_keyring_store_round_trip(memory_keyring: MemoryKeyring) -> None:
    config = OAuthConfig(provider="microsoft", client_id="c", scopes=("s",),
                         token_store="keyring", owner='account "isp"')
    store = store_for(config)
    assert isinstance(store, KeyringStore) and store.load() is None
    store.save("cache")
    assert memory_keyring.saved == {("popkeep-oauth", 'account "isp"'): "cache"}
    assert store_for(config).load() == "cache"
