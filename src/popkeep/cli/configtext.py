"""The commented config file ``popkeep init`` writes, from the wizard's answers.

Owns: :class:`Answers` (everything the wizard found out) and :func:`render`,
which turns them into TOML text with a comment on each choice, so a user can
read and change the file later without the docs at hand. Pure: no prompts,
no files; ``init`` parses the text with the config's own validator before
writing it, so what is written always loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from popkeep.config.presets import Preset

__all__ = ["Answers", "SinkAnswer", "render"]

#: where a password comes from: ("keyring", entry) | ("env", VAR) | ("command", line)
#: | ("literal", the password itself, only when no keyring is available)
Secret = tuple[str, str]


class SinkAnswer(NamedTuple):
    """Where mail goes: ``kind`` is "maildir" (``path``), "imap" (``host``,
    ``port``, ``user``, ``secret``, ``folder``, ``ca_file``) or "gmail" (``token_file``,
    ``client_secret_file``)."""

    kind: str
    name: str
    path: Path | None = None
    host: str = ""
    port: int | None = None
    user: str = ""
    secret: Secret | None = None
    folder: str = ""
    token_file: Path | None = None
    client_secret_file: Path | None = None
    ca_file: Path | None = None  #: an imap sink's private CA


class Answers(NamedTuple):
    email: str
    account: str  #: the account's name in the config
    host: str
    port: int
    tls: str
    user: str
    secret: Secret | None  #: None: OAuth 2.0 sign-in (``oauth``)
    sink: SinkAnswer
    keep: str  #: delete_after
    preset: Preset | None = None
    ca_file: Path | None = None
    state: Path | None = None
    why_keep: tuple[str, ...] = ()  #: the planner's reasons, as comment lines
    #: the ``oauth`` table (provider, client_id, …) when signing in with OAuth 2.0
    oauth: tuple[tuple[str, str], ...] = ()


def q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _secret_lines(secret: Secret) -> list[str]:
    kind, value = secret
    if kind == "keyring":
        return [f"password = {{ keyring = {q(value)} }}   # popkeep set-password changes it"]
    if kind == "env":
        return [f"password_env = {q(value)}   # the password is in this environment variable"]
    if kind == "command":
        return [f"password_command = {q(value)}   # prints the password"]
    return ["# no keyring was available: the password is in this file, which is why its",
            "# mode is 0600; password_command or password_env keep it out of the file",
            f"password = {q(value)}"]


def _sign_in(a: Answers) -> list[str]:
    if a.secret is not None:
        return _secret_lines(a.secret)
    table = ", ".join(f"{key} = {q(value)}" for key, value in a.oauth)
    return [f'auth = "oauth2"   # sign in once with: popkeep auth {a.account} (docs/oauth.md)',
            f"oauth = {{ {table} }}"]


def _header(a: Answers) -> list[str]:
    lines = ["# popkeep configuration, written by `popkeep init`.",
             "# Reference: README.md and docs/ (cli.md, guarantees.md, providers.md).", ""]
    if a.state is not None:
        lines += ["[state]", f"path = {q(str(a.state))}", ""]
    return lines


def _sink(s: SinkAnswer) -> list[str]:
    lines = ["# Where collected mail goes (the central mailbox).", "[[sink]]",
             f"name = {q(s.name)}"]
    if s.kind == "maildir":
        lines += ['type = "maildir"', f"path = {q(str(s.path))}   # created if missing"]
    elif s.kind == "imap":
        lines += ['type = "imap"', f"host = {q(s.host)}"]
        lines += [f"port = {s.port}"] if s.port is not None else []
        lines += [f"ca_file = {q(str(s.ca_file))}"] if s.ca_file is not None else []
        lines += [f"user = {q(s.user)}"]
        lines += _secret_lines(s.secret) if s.secret is not None else []
        lines += [f"folder = {q(s.folder or 'INBOX')}   # with Gmail a folder is a label"]
    else:
        lines += ['type = "gmail"   # the Gmail API: run `popkeep auth ' + s.name + "` once",
                  f"token_file = {q(str(s.token_file))}"]
        if s.client_secret_file is not None:
            lines += [f"client_secret_file = {q(str(s.client_secret_file))}"]
    return [*lines, ""]


def _account(a: Answers) -> list[str]:
    p = a.preset
    lines = [f"# {a.email}" + (f" at {p.name} (preset {p.id!r})" if p else "")]
    if p is not None:
        lines += [f"# {quirk}" for quirk in p.quirks]
        if not p.verified:
            lines += [f"# preset note: {p.note}"]
    lines += ["[[account]]", f"name = {q(a.account)}", f"host = {q(a.host)}",
              f"port = {a.port}", f"tls = {q(a.tls)}"]
    lines += [f"ca_file = {q(str(a.ca_file))}"] if a.ca_file is not None else []
    lines += [f"user = {q(a.user)}", *_sign_in(a), f"sinks = [{q(a.sink.name)}]"]
    lines += [f"# {why}" for why in a.why_keep]
    lines += [f"delete_after = {q(a.keep)}   # \"never\" keeps all; \"0s\" deletes at once"]
    if p is not None and p.server_quota is not None:
        lines += [f"server_quota = {p.server_quota}   # octets: the provider's mailbox size"]
    return [*lines, ""]


def render(a: Answers) -> str:
    """The config file for ``a``."""
    return "\n".join([*_header(a), *_sink(a.sink), *_account(a)])
