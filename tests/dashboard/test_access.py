"""Who may reach the dashboard: a ``listen`` address beyond loopback needs a
``[service]`` password (checked when the config loads, and again at start); with
a password every request needs it (or the API's token, which ``popkeep status``
and ``check-now`` send), on a running ``popkeep serve`` too."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from popkeep.config import load_config
from popkeep.errors import ConfigError
from popkeep.service.web import loopback_address
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import save_config, server_config
from .conftest import start_serve
from .test_pages import ask

ACCOUNT = """
[[sink]]
name = "home"
type = "maildir"
path = "/srv/mail/taro"

[[account]]
name = "isp"
host = "pop.example.ne.jp"
user = "taro"
password_env = "ISP_PASS"
"""


def _load(tmp_path: Path, service: str, mode: int = 0o600) -> object:
    path = tmp_path / "config.toml"
    path.write_text("[service]\n" + service + ACCOUNT, encoding="utf-8")
    path.chmod(mode)
    return load_config(path, env={"HOME": "/home/taro", "XDG_DATA_HOME": "/data"})


@pytest.mark.parametrize("listen", ["0.0.0.0:8025", "192.0.2.7:8025", "[::]:8025"])
def test_a_listen_address_beyond_loopback_without_a_password_does_not_load(
    tmp_path: Path, listen: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, f'listen = "{listen}"\n')
    message = str(refused.value)
    assert f"service.listen: {listen!r} is not a loopback address" in message
    assert "set a password first" in message and "\n" not in message


def test_with_a_password_any_address_loads(tmp_path: Path) -> None:
    config = _load(tmp_path, 'listen = "0.0.0.0:8025"\npassword_env = "POPKEEP_DASHBOARD"\n')
    secret = config.service.password  # type: ignore[attr-defined]
    assert secret is not None and secret.kind == "env"
    assert secret.value == "POPKEEP_DASHBOARD"  # the variable's name, read at start


def test_an_inline_password_needs_a_private_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, 'password = "pa55word"\n', mode=0o644)
    assert "service.password: the file holds a password" in str(refused.value)
    assert "pa55word" not in str(refused.value)


def test_the_start_up_check_lets_a_password_protected_service_listen_anywhere() -> None:
    with pytest.raises(ConfigError):
        loopback_address("0.0.0.0:8025")
    assert loopback_address("0.0.0.0:8025", remote_ok=True) == ("0.0.0.0", 8025)
    with pytest.raises(ConfigError):
        loopback_address("pop.example:8025", remote_ok=True)  # an address, not a name


@pytest.fixture
def protected(tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts
              ) -> Iterator[tuple[str, Path]]:  # fmt: skip
    """``popkeep serve`` with a password, on a free loopback port: (its URL, the config)."""
    text = server_config(tmp_path, server, certs).read_text()
    config = save_config(tmp_path, '[service]\ninterval = "1h"\nlisten = "127.0.0.1:0"\n'
                                   'password = "dash-pa55"\n\n' + text)
    proc, handle = start_serve(config, tmp_path)
    try:
        yield handle.url, config
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert "dash-pa55" not in err


def test_a_running_service_with_a_password_asks_everyone_but_its_own_cli(
    protected: tuple[str, Path]
) -> None:
    url, config = protected
    for path in ("/", "/api/status", "/metrics"):
        assert ask(url + path).status == 401, path
    basic = base64.b64encode(b"anyone:dash-pa55").decode()
    page = ask(url + "/", headers={"Authorization": f"Basic {basic}"})
    assert page.status == 200 and 'data-account="isp"' in page.body
    status = subprocess.run([sys.executable, "-m", "popkeep", "-c", str(config), "status",
                             "--json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["service"]["accounts"][0]["account"] == "isp"
