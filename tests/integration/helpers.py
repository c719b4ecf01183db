"""Writing configs and running the CLI in-process against the test Dovecot."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli import main
from popkeep.testing.dovecot import Dovecot


def write_config(
    base: Path,
    *,
    host: str = "127.0.0.1",
    port: int,
    user: str,
    password: str,
    tls: str = "starttls",
    ca_file: Path | None = None,
    delete_after: str = "never",
    extra: str = "",
) -> Path:
    """A one-account, one-Maildir config under ``base``; returns its path (mode 0600)."""
    ca = f'ca_file = "{ca_file}"\n' if ca_file else ""
    text = f"""
[state]
path = "{base / 'state.db'}"

[[sink]]
name = "home"
type = "maildir"
path = "{base / 'Maildir'}"

[[account]]
name = "isp"
host = "{host}"
port = {port}
tls = "{tls}"
{ca}user = "{user}"
password = "{password}"
delete_after = "{delete_after}"
{extra}
"""
    path = base / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def dovecot_config(
    dovecot: Dovecot, base: Path, user: str, *, implicit: bool = False, **kw: Any
) -> Path:
    kw.setdefault("ca_file", dovecot.ca_file)
    return write_config(
        base,
        port=dovecot.pop3s_port if implicit else dovecot.pop3_port,
        tls="implicit" if implicit else "starttls",
        user=user,
        password=kw.pop("password", dovecot.password),
        **kw,
    )


def fetch(
    config: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    """``popkeep -c CONFIG fetch --json``; returns (exit code, the account's JSON object)."""
    capsys.readouterr()
    code = main(["-c", str(config), "fetch", "--json", *args])
    out = capsys.readouterr().out
    data = json.loads(out)["accounts"][0]
    return code, data


def maildir_messages(maildir: Path) -> list[bytes]:
    files = [p for d in ("new", "cur") for p in (maildir / d).iterdir()]
    return [p.read_bytes() for p in files]


def digests(messages: list[bytes]) -> list[str]:
    return sorted(hashlib.sha256(m.replace(b"\r\n", b"\n")).hexdigest() for m in messages)
