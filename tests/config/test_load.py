"""TOML → Config: good and bad files, error text naming file and key path, defaults, rules."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from popkeep.config import (
    Config,
    MaildirSinkConfig,
    default_config_path,
    default_state_path,
    load_config,
    parse_config,
)
from popkeep.config.load import SINK_TYPES
from popkeep.config.schema import Connection, ServiceConfig
from popkeep.config.sink_types import (
    CONVERTERS,
    GmailSinkConfig,
    ImapSinkConfig,
    LmtpSinkConfig,
    MboxSinkConfig,
    MdaSinkConfig,
)
from popkeep.errors import ConfigError
from popkeep.model import RetentionPolicy

SINK = """
[[sink]]
name = "home"
type = "maildir"
path = "/srv/mail/taro"
"""

ACCOUNT = """
[[account]]
name = "isp"
host = "pop.example.ne.jp"
user = "taro"
password_env = "ISP_PASS"
"""

BASE = SINK + ACCOUNT
DURATION = 'expected a duration like 14d, 36h, 90s, "0s" or "never"'
SIZE = "expected a size above zero like 2GB, 100MB, 80KB or 1.5GiB"
ENV = {"HOME": "/home/taro", "XDG_DATA_HOME": "/data"}


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load(tmp_path: Path, text: str, mode: int = 0o600) -> Config:
    return load_config(write(tmp_path, text, mode), env=ENV)


def error(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    """The message of the ConfigError, with the file name replaced by ``FILE``."""
    path = write(tmp_path, text, mode)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    return str(info.value).replace(str(path), "FILE")


# --------------------------------------------------------------------------- good files


def test_the_documented_example(tmp_path: Path) -> None:
    text = """
[state]
path = "~/.local/share/popkeep/state.db"

[[sink]]
name = "home"
type = "maildir"
path = "~/Mail"
folder = "Provider"

[[account]]
name = "isp"
host = "pop.example.ne.jp"
port = 995
tls = "implicit"
user = "taro"
password_command = "pass show isp"
auth = "auto"
sinks = ["home"]
delete_after = "14d"
server_quota = "2GB"
high_water = 0.8
low_water = 0.5
max_message_size = "100MB"
timeout = "60s"
connect_timeout = "30s"
session_timeout = "1h"
pipeline = 64
enabled = true
"""
    config = load(tmp_path, text)
    home = Path("~").expanduser()
    assert config.path == tmp_path / "config.toml"
    assert config.state.path == home / ".local/share/popkeep/state.db"
    assert config.sinks == {"home": MaildirSinkConfig("home", home / "Mail", "Provider")}
    account = config.accounts["isp"]
    server = account.server
    assert (server.host, server.port, server.tls, server.user) == (
        "pop.example.ne.jp", 995, "implicit", "taro",
    )  # fmt: skip
    assert server.secret is not None
    assert server.secret.kind == "command"
    assert server.secret.argv == ("pass", "show", "isp")
    assert account.retention == RetentionPolicy(timedelta(days=14), 2_000_000_000, 0.8, 0.5)
    assert account.max_message_size == 100_000_000
    assert (account.timeout, account.connect_timeout, account.session_timeout) == (60, 30, 3600)
    assert (account.pipeline, account.enabled, account.sinks) == (64, True, ("home",))
    assert config.warnings == ()


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)
    assert config.state.path == Path("/data/popkeep/state.db")
    assert config.state.url is None
    account = config.accounts["isp"]
    assert (account.server.tls, account.server.port, account.auth) == ("implicit", 995, "auto")
    assert account.sinks == ("home",)  # the only sink
    assert account.retention == RetentionPolicy(delete_after=None)  # never delete
    assert account.max_message_size == 256_000_000
    assert (account.timeout, account.connect_timeout, account.session_timeout) == (60, 30, 3600)
    assert (account.pipeline, account.enabled) == (64, True)
    assert (account.server.ca_file, account.server.tls_fingerprint) == (None, None)
    assert account.type == "pop3"
    assert account.interval is None  # the [service] interval
    assert config.service == ServiceConfig(
        interval=300, jitter=0.1, concurrency=4, backoff_cap=3600, alert_after=43200,
        language="en", listen="127.0.0.1:8025",
    )


def test_service_table_and_an_accounts_own_interval(tmp_path: Path) -> None:
    config = load(tmp_path, '[service]\ninterval = "10m"\njitter = 0\nconcurrency = 20\n'
                  'backoff_cap = "2h"\nalert_after = "1d"\nlanguage = "ja"\n'
                  'listen = "127.0.0.1:0"\n' + BASE + 'interval = "1m"\n')
    assert config.service == ServiceConfig(
        interval=600, jitter=0.0, concurrency=20, backoff_cap=7200, alert_after=86400,
        language="ja", listen="127.0.0.1:0",
    )
    assert config.accounts["isp"].interval == 60


def test_account_type_pop3_explicit(tmp_path: Path) -> None:
    assert load(tmp_path, BASE + 'type = "pop3"\n').accounts["isp"].type == "pop3"


@pytest.mark.parametrize(
    ("extra", "port"),
    [('tls = "implicit"', 995), ('tls = "starttls"', 110), ('tls = "none"', 110),
     ('tls = "starttls"\nport = 1110', 1110)],
)  # fmt: skip
def test_port_defaults_from_tls(tmp_path: Path, extra: str, port: int) -> None:
    assert load(tmp_path, BASE + extra).accounts["isp"].server.port == port


def test_tls_none_is_accepted_with_a_warning(tmp_path: Path) -> None:
    config = load(tmp_path, BASE + 'tls = "none"')
    assert config.accounts["isp"].server.tls == "none"
    assert config.warnings == (
        f'{tmp_path / "config.toml"}: account "isp".tls: '
        '"none" sends the password and all mail unencrypted',
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"0s"', timedelta(0)), ('"never"', None), ('"90s"', timedelta(seconds=90)),
     ('"36h"', timedelta(hours=36)), ('"2w"', timedelta(weeks=2))],
)  # fmt: skip
def test_delete_after(tmp_path: Path, value: str, expected: timedelta | None) -> None:
    config = load(tmp_path, BASE + f"delete_after = {value}")
    assert config.accounts["isp"].retention.delete_after == expected


def test_ca_file_and_fingerprint(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    pin = ":".join(["AB"] * 32)
    config = load(tmp_path, BASE + f'ca_file = "{ca}"\ntls_fingerprint = "sha256:{pin}"')
    server = config.accounts["isp"].server
    assert server.ca_file == ca
    assert server.tls_fingerprint == "ab" * 32


def test_password_command_as_array(tmp_path: Path) -> None:
    text = BASE.replace('password_env = "ISP_PASS"', 'password_command = ["pass", "show", "a b"]')
    assert load(tmp_path, text).accounts["isp"].server.secret.argv == ("pass", "show", "a b")


def test_state_url(tmp_path: Path) -> None:
    config = load(tmp_path, '[state]\nurl = "postgresql://popkeep@db/popkeep"\n' + BASE)
    assert config.state.path is None
    assert config.state.url == "postgresql://popkeep@db/popkeep"


def test_several_sinks_and_accounts(tmp_path: Path) -> None:
    second_sink = SINK.replace('"home"', '"backup"').replace("taro", "backup")
    second_account = ACCOUNT.replace('"isp"', '"work"') + 'sinks = ["backup", "home"]\n'
    text = SINK + second_sink + ACCOUNT + 'sinks = ["home"]\n' + second_account
    config = load(tmp_path, text)
    assert list(config.sinks) == ["home", "backup"]
    assert config.accounts["work"].sinks == ("backup", "home")
    assert config.warnings == ()


def test_unused_sink_and_no_account_are_warnings(tmp_path: Path) -> None:
    config = load(tmp_path, SINK)
    assert config.accounts == {}
    assert config.warnings == (
        f"{tmp_path / 'config.toml'}: no [[account]] is defined; there is nothing to collect",
    )
    extra = SINK.replace('"home"', '"spare"')
    config = load(tmp_path, SINK + extra + ACCOUNT + 'sinks = ["home"]')
    file = tmp_path / "config.toml"
    assert config.warnings == (f'{file}: sink "spare": no account delivers to it',)


def test_every_sink_type_is_registered() -> None:
    assert set(SINK_TYPES) == {"maildir", *CONVERTERS}


@pytest.mark.parametrize(
    ("table", "expected"),
    [('type = "imap"\nhost = "imap.example.org"\nuser = "u"\npassword_env = "P"',
      ImapSinkConfig("home", Connection("imap.example.org", 993, "implicit", user="u"))),
     ('type = "lmtp"\nhost = "127.0.0.1"\nrecipients = ["taro"]',
      LmtpSinkConfig("home", ("taro",), server=Connection("127.0.0.1", 24, "none"))),
     ('type = "mda"\ncommand = "dovecot-lda -d taro"',
      MdaSinkConfig("home", ("dovecot-lda", "-d", "taro"))),
     ('type = "mbox"\npath = "/srv/mbox"', MboxSinkConfig("home", Path("/srv/mbox"))),
     ('type = "gmail"\ntoken_file = "/srv/token.json"',
      GmailSinkConfig("home", token_file=Path("/srv/token.json")))],
)  # fmt: skip
def test_other_sink_types_go_through_the_registry(
    tmp_path: Path, table: str, expected: object
) -> None:
    config = load(tmp_path, f'[[sink]]\nname = "home"\n{table}\n' + ACCOUNT)
    sink = config.sinks["home"]
    assert type(sink) is type(expected)
    assert sink.name == "home"
    for attribute in ("recipients", "command", "path", "token_file"):
        assert getattr(sink, attribute, None) == getattr(expected, attribute, None)
    server, expected_server = getattr(sink, "server", None), getattr(expected, "server", None)
    assert (server and server._replace(secret=None)) == expected_server


def test_importing_config_stays_cheap() -> None:
    code = (
        "import sys, popkeep.config; "
        "print(sorted(m for m in ('subprocess', 'difflib', 'popkeep.config.sink_types') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_parse_config_without_a_file() -> None:
    data = {
        "sink": [{"name": "home", "type": "maildir", "path": "/m"}],
        "account": [{"name": "isp", "host": "h", "user": "u", "password": "inline"}],
    }
    config = parse_config(data, "test", env=ENV)
    assert config.accounts["isp"].server.secret.resolve() == "inline"
    with pytest.raises(ConfigError, match=r'^test: account "isp".password: the file holds'):
        parse_config(data, "test", file_mode=0o100644, env=ENV)


# --------------------------------------------------------------------------- bad files

ACCOUNT_ERRORS = [
    ('delete_after = "2 weeks"', f'account "isp".delete_after: {DURATION}, got "2 weeks"'),
    ("delete_after = 14", f'account "isp".delete_after: {DURATION}, got 14'),
    ('delet_after = "14d"',
     'account "isp".delet_after: unknown key (did you mean "delete_after"?)'),
    ("port = 0", 'account "isp".port: expected a whole number from 1 to 65535, got 0'),
    ('port = "995"', 'account "isp".port: expected a whole number from 1 to 65535, got "995"'),
    ('tls = "tsl"', 'account "isp".tls: expected one of "implicit", "starttls", "none", got "tsl"'),
    ('tls = "startls"',
     'account "isp".tls: expected one of "implicit", "starttls", "none", got "startls"'
     ' (did you mean "starttls"?)'),
    ('auth = "cram"',
     'account "isp".auth: expected one of "auto", "user", "apop", "plain", "oauth2", '
     '"xoauth2", "oauthbearer", got "cram"'),
    ('sinks = ["hom"]', 'account "isp".sinks: unknown sink "hom" (did you mean "home"?)'),
    ('sinks = ["zzz"]', 'account "isp".sinks: unknown sink "zzz" (defined sinks: home)'),
    ("sinks = []", 'account "isp".sinks: expected at least one sink name'),
    ('sinks = "home"', 'account "isp".sinks: expected an array of strings, got "home"'),
    ('sinks = ["home", "home"]', 'account "isp".sinks: names a sink twice'),
    ('password = "x"', 'account "isp": expected one of password_command, password_env or password, '
     "got password and password_env"),
    ('server_quota = "2GB"\nlow_water = 0.9',
     'account "isp".low_water: must be below high_water (0.9), got 0.9'),
    ('server_quota = "2GB"\nhigh_water = 1.5',
     'account "isp".high_water: expected a number above 0 and at most 1 (like 0.9), got 1.5'),
    ("high_water = 0.9", 'account "isp".high_water: only has an effect with server_quota'),
    ('server_quota = "2 gigs"', f'account "isp".server_quota: {SIZE}, got "2 gigs"'),
    ('max_message_size = "0MB"', f'account "isp".max_message_size: {SIZE}, got "0MB"'),
    ('timeout = "never"',
     'account "isp".timeout: expected a duration above zero like 30s, 5m or 1h '
     '(or a number of seconds), got "never"'),
    ('session_timeout = "0s"',
     'account "isp".session_timeout: expected a duration above zero like 30s, 5m or 1h '
     '(or a number of seconds), got "0s"'),
    ("pipeline = 0", 'account "isp".pipeline: expected a whole number from 1 to 1024, got 0'),
    ('enabled = "yes"', 'account "isp".enabled: expected true or false, got "yes"'),
    ('tls = "none"\ntls_fingerprint = "sha256:00"',
     'account "isp".tls_fingerprint: has no effect with tls = "none"'),
    ('tls_fingerprint = "sha1:abcd"',
     'account "isp".tls_fingerprint: expected "sha256:" and 64 hex digits (colons allowed), '
     'got "sha1:abcd"'),
    ('ca_file = "/nonexistent/ca.pem"', 'account "isp".ca_file: no such file: /nonexistent/ca.pem'),
    ('ca_file = "ca.pem"',
     'account "isp".ca_file: expected an absolute path or one starting with ~, got "ca.pem"'),
    ("[account.extra]", 'account "isp".extra: unknown key (known keys: ' + ", ".join(sorted([
        "auth", "ca_file", "connect_timeout", "delete_after", "enabled", "high_water", "host",
        "interval", "low_water", "max_message_size", "name", "oauth", "oauth_token_command",
        "password", "password_command",
        "password_env", "pipeline", "port", "server_quota", "session_timeout", "sinks", "timeout",
        "tls", "tls_fingerprint", "type", "user"])) + ")"),
    ('interval = "30s"',
     'account "isp".interval: must be at least 1m (popkeep serve polls no more often), '
     'got "30s"'),
    ('type = "imap"', 'account "isp".type: expected one of "pop3", got "imap"'),
    ('type = "POP3"', 'account "isp".type: expected one of "pop3", got "POP3"'),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "message"), ACCOUNT_ERRORS)
def test_account_errors(tmp_path: Path, extra: str, message: str) -> None:
    assert error(tmp_path, BASE + extra) == f"FILE: {message}"


REPLACED_ERRORS = [
    ('host = "pop.example.ne.jp"', "", 'account "isp": missing required key "host"'),
    ('host = "pop.example.ne.jp"', 'host = "pop example"',
     'account "isp".host: expected a host name or IP address, got "pop example"'),
    ('user = "taro"', 'user = ""', 'account "isp".user: must not be empty'),
    ('user = "taro"', 'user = "taro\\r\\nDELE 1"',
     'account "isp".user: must not contain control characters or line breaks'),
    ('password_env = "ISP_PASS"', "",
     'account "isp": expected one of password_command, password_env or password, got none'),
    ('password_env = "ISP_PASS"', 'password_env = "ISP PASS"',
     'account "isp".password_env: expected an environment variable name like ISP_PASS, '
     'got "ISP PASS"'),
    ('password_env = "ISP_PASS"', 'password_command = "pass \'show"',
     'account "isp".password_command: cannot split the command: No closing quotation'),
    ('password_env = "ISP_PASS"', 'password = 12345',
     'account "isp".password: expected a non-empty string '
     "without control characters or line breaks"),
    ('name = "isp"', 'name = "my isp"',
     "account #1.name: expected a name of letters, digits and . _ - @ + (at most 64), "
     'got "my isp"'),
    ('name = "isp"', "", 'account #1: missing required key "name"'),
    ('path = "/srv/mail/taro"', 'path = "Mail"',
     'sink "home".path: expected an absolute path or one starting with ~, got "Mail"'),
    ('type = "maildir"', 'type = "maildri"',
     'sink "home".type: unknown sink type "maildri" (did you mean "maildir"?)'),
    ('type = "maildir"', 'type = "pigeon"',
     'sink "home".type: unknown sink type "pigeon" '
     "(known types: gmail, imap, lmtp, maildir, mbox, mda)"),
    ('type = "maildir"', "",
     'sink "home": missing required key "type" (one of: gmail, imap, lmtp, maildir, mbox, mda)'),
    ('path = "/srv/mail/taro"', 'path = "/srv/mail/taro"\nfolder = "../x"',
     'sink "home".folder: expected a folder name like "Provider" or "Provider.Sub", got "../x"'),
    ('path = "/srv/mail/taro"', 'path = "/srv/mail/taro"\nfoldr = "x"',
     'sink "home".foldr: unknown key (did you mean "folder"?)'),
    ("[[account]]", "[account]", "account: expected [[account]] tables, got a table"),
    ("[[sink]]", "[[sinks]]", 'sinks: unknown key (did you mean "sink"?)'),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), REPLACED_ERRORS)
def test_errors_in_edited_files(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BASE
    assert error(tmp_path, BASE.replace(old, new)) == f"FILE: {message}"


def test_duplicate_account_name(tmp_path: Path) -> None:
    message = error(tmp_path, BASE + ACCOUNT)
    assert message == 'FILE: account "isp": duplicate name (another account has it)'


def test_duplicate_sink_name(tmp_path: Path) -> None:
    message = error(tmp_path, SINK + SINK + ACCOUNT)
    assert message == 'FILE: sink "home": duplicate name (another sink has it)'


def test_no_sink(tmp_path: Path) -> None:
    message = error(tmp_path, ACCOUNT)
    assert message == 'FILE: account "isp": no sink is defined; add a [[sink]] table'


def test_several_sinks_need_an_explicit_choice(tmp_path: Path) -> None:
    second = SINK.replace('"home"', '"backup"')
    message = error(tmp_path, SINK + second + ACCOUNT)
    assert message == (
        'FILE: account "isp": missing required key "sinks" (defined sinks: home, backup)'
    )


@pytest.mark.parametrize(
    ("state", "message"),
    [('path = "/a"\nurl = "postgresql://x/y"',
      'state: expected "path" (SQLite) or "url" (PostgreSQL), not both'),
     ('url = "mysql://x/y"', 'state.url: expected a URL starting with "postgresql://"'),
     ('pth = "/a"', 'state.pth: unknown key (did you mean "path"?)')],
)  # fmt: skip
def test_state_errors(tmp_path: Path, state: str, message: str) -> None:
    assert error(tmp_path, f"[state]\n{state}\n" + BASE) == f"FILE: {message}"


@pytest.mark.parametrize(
    ("service", "message"),
    [('interval = "59s"',
      'service.interval: must be at least 1m (popkeep serve polls no more often), got "59s"'),
     ("jitter = 0.9", "service.jitter: expected a number from 0 to 0.5 (like 0.1), got 0.9"),
     ("concurrency = 0", "service.concurrency: expected a whole number from 1 to 1000, got 0"),
     ('listen = "8025"', 'service.listen: expected HOST:PORT like "127.0.0.1:8025", got "8025"'),
     ('intervall = "5m"', 'service.intervall: unknown key (did you mean "interval"?)')],
)  # fmt: skip
def test_service_errors(tmp_path: Path, service: str, message: str) -> None:
    assert error(tmp_path, f"[service]\n{service}\n" + BASE) == f"FILE: {message}"


# --------------------------------------------------------------------------- passwords in the file

INLINE = BASE.replace('password_env = "ISP_PASS"', 'password = "hunter2"')


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_inline_password_needs_a_private_file(tmp_path: Path, mode: int) -> None:
    message = error(tmp_path, INLINE, mode)
    assert message == (
        f'FILE: account "isp".password: the file holds a password but its mode is {mode:04o}; '
        "run chmod 600 FILE, or use password_command / password_env"
    )
    assert "hunter2" not in message


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_inline_password_in_a_private_file(tmp_path: Path, mode: int) -> None:
    config = load(tmp_path, INLINE, mode)
    assert config.accounts["isp"].server.secret.resolve() == "hunter2"
    assert "hunter2" not in repr(config)


def test_world_readable_file_without_inline_password_is_fine(tmp_path: Path) -> None:
    assert load(tmp_path, BASE, 0o644).accounts["isp"].server.secret.kind == "env"


IMAP_SINK = """
[[sink]]
name = "central"
type = "imap"
host = "imap.example.org"
user = "taro"
password = "hunter2"
"""


def test_inline_password_of_an_imap_sink_needs_a_private_file(tmp_path: Path) -> None:
    message = error(tmp_path, IMAP_SINK + ACCOUNT, 0o644)
    assert message.startswith('FILE: sink "central".password: the file holds a password')
    assert load(tmp_path, IMAP_SINK + ACCOUNT, 0o600).accounts["isp"].sinks == ("central",)


def test_imap_sink_without_tls_warns(tmp_path: Path) -> None:
    config = load(tmp_path, IMAP_SINK + 'tls = "none"\n' + ACCOUNT)
    assert config.warnings == (
        f'{tmp_path / "config.toml"}: sink "central".tls: '
        '"none" sends the password and all mail unencrypted',
    )


# --------------------------------------------------------------------------- the file itself


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: no such file (create it, or pass -c/--config)"


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, BASE + "delete_after = 14d\n")
    assert message.startswith("FILE: not valid TOML: ")
    assert "line 12" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'# \xff\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


# --------------------------------------------------------------------------- default paths


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"HOME": "/home/t"}, "/home/t/.config/popkeep/config.toml"),
     ({"HOME": "/home/t", "XDG_CONFIG_HOME": "/cfg"}, "/cfg/popkeep/config.toml"),
     ({"HOME": "/home/t", "XDG_CONFIG_HOME": "relative"}, "/home/t/.config/popkeep/config.toml"),
     ({"HOME": "/home/t", "POPKEEP_CONFIG": "/etc/pk.toml", "XDG_CONFIG_HOME": "/cfg"},
      "/etc/pk.toml")],
)  # fmt: skip
def test_default_config_path(env: dict[str, str], expected: str) -> None:
    assert default_config_path(env) == Path(expected)


def test_default_state_path() -> None:
    assert default_state_path({"HOME": "/home/t"}) == Path("/home/t/.local/share/popkeep/state.db")
    assert default_state_path({"XDG_DATA_HOME": "/d", "HOME": "/h"}) == Path("/d/popkeep/state.db")


def test_environment_is_not_required_to_be_os_environ(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), env={"HOME": "/elsewhere"})
    assert config.state.path == Path("/elsewhere/.local/share/popkeep/state.db")
    assert os.environ.get("HOME") != "/elsewhere"


# --------------------------------------------------------------------------- one validator


@pytest.mark.parametrize(
    ("table", "message"),
    [('type = "mbox"\npath = "mail.mbox"',
      'sink "home".path: expected an absolute path or one starting with ~, got "mail.mbox"'),
     ('type = "lmtp"\nsocket = "run/lmtp"\nrecipients = ["me"]',
      'sink "home".socket: expected an absolute path or one starting with ~, got "run/lmtp"'),
     ('type = "gmail"\ntoken_file = "token.json"',
      'sink "home".token_file: expected an absolute path or one starting with ~, '
      'got "token.json"'),
     ('type = "imap"\nhost = "h"\nuser = "u"\npassword_env = "P"\nca_file = "ca.pem"',
      'sink "home".ca_file: expected an absolute path or one starting with ~, got "ca.pem"'),
     ('type = "imap"\nhost = "h"\nuser = "u"\npassword_env = "P"\nca_file = "/nonexistent/ca"',
      'sink "home".ca_file: no such file: /nonexistent/ca'),
     ('type = "imap"\nhost = "h"\nuser = "u"\npassword_env = "P"\nport = 0',
      'sink "home".port: expected a whole number from 1 to 65535, got 0'),
     ('type = "imap"\nhost = "h"\nuser = "u\\r\\nx"\npassword_env = "P"',
      'sink "home".user: must not contain control characters or line breaks'),
     ('type = "imap"\nhost = "h"\nuser = "u"\npassword_env = "P"\ntls = "none"\n'
      'tls_fingerprint = "sha256:00"',
      'sink "home".tls_fingerprint: has no effect with tls = "none"'),
     ('type = "mda"\ncommand = "x"\ntimeout = "soon"',
      'sink "home".timeout: expected a duration above zero like 30s, 5m or 1h '
      '(or a number of seconds), got "soon"'),
     ('type = "mbox"\npath = "/m"\npth = "/n"',
      'sink "home".pth: unknown key (did you mean "path"?)')],
)  # fmt: skip
def test_every_sink_type_has_the_accounts_rules(tmp_path: Path, table: str, message: str) -> None:
    """One validator: relative paths, a missing ca_file, ports, control characters, unknown
    keys and durations are refused in a sink exactly as in an account."""
    assert error(tmp_path, f'[[sink]]\nname = "home"\n{table}\n' + ACCOUNT) == f"FILE: {message}"


def test_accounts_and_imap_sinks_share_one_connection_record(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    keys = f'host = "h"\nuser = "u"\npassword_env = "P"\ntls = "starttls"\nca_file = "{ca}"\n'
    text = f'[[sink]]\nname = "home"\ntype = "imap"\n{keys}' + '[[account]]\nname = "isp"\n' + keys
    config = load(tmp_path, text)
    sink = config.sinks["home"]
    assert isinstance(sink, ImapSinkConfig)
    account = config.accounts["isp"].server
    assert sink.server == account._replace(port=143, secret=sink.server.secret)
    assert (account.port, sink.server.port) == (110, 143)  # each protocol's own default


def test_sink_timeouts_take_durations_or_seconds(tmp_path: Path) -> None:
    for value, seconds in (("60", 60.0), ('"2m"', 120.0), ("1.5", 1.5)):
        text = f'[[sink]]\nname = "home"\ntype = "mda"\ncommand = "x"\ntimeout = {value}\n'
        sink = load(tmp_path, text + ACCOUNT).sinks["home"]
        assert isinstance(sink, MdaSinkConfig) and sink.timeout == seconds


# --------------------------------------------------------------------------- LMTP over a network

LMTP = '[[sink]]\nname = "home"\ntype = "lmtp"\nrecipients = ["me"]\n'


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST."])
def test_lmtp_to_this_machine_needs_no_tls_key(tmp_path: Path, host: str) -> None:
    sink = load(tmp_path, LMTP + f'host = "{host}"\n' + ACCOUNT).sinks["home"]
    assert isinstance(sink, LmtpSinkConfig) and sink.server is not None
    assert (sink.server.host, sink.server.port, sink.server.tls) == (host, 24, "none")


@pytest.mark.parametrize("host", ["mail.example.org", "192.0.2.7", "10.0.0.1", "::ffff:1.2.3.4"])
def test_lmtp_to_another_host_without_tls_is_refused(tmp_path: Path, host: str) -> None:
    message = error(tmp_path, LMTP + f'host = "{host}"\n' + ACCOUNT)
    assert message == (
        f'FILE: sink "home".host: {host} is not this machine, and LMTP sends every message '
        'unencrypted; write tls = "none" to accept that'
    )
    sink = load(tmp_path, LMTP + f'host = "{host}"\ntls = "none"\n' + ACCOUNT).sinks["home"]
    assert isinstance(sink, LmtpSinkConfig) and sink.server is not None
    assert sink.server.tls == "none"


def test_lmtp_socket_takes_no_port(tmp_path: Path) -> None:
    message = error(tmp_path, LMTP + 'socket = "/run/lmtp"\nport = 24\n' + ACCOUNT)
    assert message == 'FILE: sink "home".port: has no effect with socket'


# --------------------------------------------------------------------------- optional extras


@pytest.mark.parametrize(
    ("table", "module", "extra"),
    [('type = "imap"\nhost = "h"\nuser = "u"\npassword_env = "P"', "imapclient", "imap"),
     ('type = "gmail"\ntoken_file = "/srv/token.json"', "google.auth", "gmail")],
)  # fmt: skip
def test_a_sink_whose_extra_is_missing_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, module: str, extra: str
) -> None:
    text = f'[[sink]]\nname = "home"\n{table}\n' + ACCOUNT
    load(tmp_path, text)  # installed here (the test extra)
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 78
    assert str(info.value) == (
        f'{tmp_path / "config.toml"}: sink "home": needs the Python package '
        f"{module.split('.')[0]}, which is not installed: pip install 'popkeep[{extra}]'"
    )


def test_a_gmail_sink_with_a_token_command_needs_no_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)
    text = '[[sink]]\nname = "home"\ntype = "gmail"\noauth_token_command = "tok"\n' + ACCOUNT
    assert isinstance(load(tmp_path, text).sinks["home"], GmailSinkConfig)


# --------------------------------------------------------------------------- writable by others

GUARDED = [
    ("", 'account "isp".password_env', "where a secret comes from"),
    ('[[sink]]\nname = "d"\ntype = "mda"\ncommand = "deliver"\n',
     'sink "d".command', "a command popkeep runs"),
    ('[[sink]]\nname = "d"\ntype = "gmail"\ntoken_file = "/t.json"\n',
     'sink "d".token_file', "where a secret comes from"),
    ('[[sink]]\nname = "d"\ntype = "gmail"\noauth_token_command = "tok"\n',
     'sink "d".oauth_token_command', "where a secret comes from"),
    ('[[sink]]\nname = "d"\ntype = "imap"\nhost = "h"\nuser = "u"\npassword_command = "p"\n',
     'sink "d".password_command', "where a secret comes from"),
]  # fmt: skip


@pytest.mark.parametrize(("sink", "key", "what"), GUARDED)
@pytest.mark.parametrize("mode", [0o664, 0o646, 0o624, 0o666])
def test_a_file_others_may_write_must_not_name_secrets_or_commands(
    tmp_path: Path, sink: str, key: str, what: str, mode: int
) -> None:
    text = SINK + sink + ACCOUNT + 'sinks = ["home"]\n'
    message = error(tmp_path, text, mode)
    assert message == (
        f"FILE: {key}: the file says {what} but group or others may write it "
        f"(mode {mode:04o}); run chmod go-w FILE"
    )
    load(tmp_path, text, 0o644)  # readable by others is fine: nothing secret in it


def test_a_writable_file_without_secrets_or_commands_loads(tmp_path: Path) -> None:
    assert load(tmp_path, SINK, 0o666).sinks["home"].name == "home"


def test_service_alerts_keys(tmp_path: Path) -> None:
    assert load(tmp_path, BASE).service == ServiceConfig()  # every key optional
    assert ServiceConfig() == ServiceConfig(True, 12 * 3600.0, "en", "popkeep <popkeep@localhost>")
    config = load(tmp_path, """
[service]
alerts = false
alert_after = "2h"
language = "ja"
alert_from = "メール係 <popkeep@example.org>"
""" + BASE)
    assert config.service == ServiceConfig(False, 7200.0, "ja", "メール係 <popkeep@example.org>")


@pytest.mark.parametrize(("extra", "message"), [
    ('language = "fr"', 'service.language: expected one of "en", "ja", got "fr"'),
    ('alert_after = "0s"', "service.alert_after: expected a duration above zero"),
    ('alert_from = "popkeep"', 'service.alert_from: expected a mailbox like'),
    ("alerts = 1", "service.alerts: expected true or false, got 1"),
    ("alert_every = 1", "service.alert_every: unknown key"),
])  # fmt: skip
def test_service_alerts_errors(tmp_path: Path, extra: str, message: str) -> None:
    assert message in error(tmp_path, "[service]\n" + extra + "\n" + BASE)
