"""``popkeep init``: from an email address to a working config, by questions or flags.

Asks for the address; finds the provider's POP3 server in the presets
(:mod:`popkeep.config.presets`), else probes ``pop.``, ``pop3.`` and ``mail.``
of its domain on 995 (implicit TLS) and 110 (STLS) itself; logs in with the
password before saving anything; keeps the password in the system keyring when
there is one (never in the file then); asks where mail goes and how long to
keep it at the provider, with the planner's advice for the devices named; writes
a commented config with mode 0600 (never over an existing one without
``--force``); and offers ``popkeep baseline`` for mail an old client already has.

Every question has a flag, and ``--yes`` takes the defaults for the rest, so it
runs unattended. TLS is always verified (``--ca-file`` for a private CA).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from popkeep.cli.common import config_option, handles_errors, resolve_config_path, run_async
from popkeep.cli.configtext import Answers, Secret, SinkAnswer, render
from popkeep.config import keystore
from popkeep.config.presets import Preset, find, load_presets, split_address
from popkeep.errors import AuthError, ConfigError, ProtocolError, SecurityError, TransportError

if TYPE_CHECKING:
    from popkeep.config.schema import TLSMode

DAY = 86400.0
_TRIES = 3  #: passwords asked before giving up


class Server(NamedTuple):
    host: str
    port: int
    tls: TLSMode


class Wizard:
    """The questions, answered by flags first, else by the user (``yes``: the defaults)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.o = options
        self.yes: bool = options["yes"]

    def ask(self, text: str, given: Any = None, default: Any = None, **kw: Any) -> Any:
        """``given`` (a flag), else the user's answer, else (``--yes``) ``default``."""
        if given is not None:
            return given
        if self.yes:
            if default is None:
                raise ConfigError(f"--yes needs an answer to: {text}")
            return default
        return click.prompt(text, default=default, **kw)

    def confirm(self, text: str, given: bool | None, default: bool) -> bool:
        if given is not None:
            return given
        return default if self.yes else click.confirm(text, default=default)


# -- the server -------------------------------------------------------------------------


def _preset_server(w: Wizard, preset: Preset, domain: str) -> Server:
    if not preset.pop:
        raise ConfigError(f"{preset.name} offers no POP3, so popkeep cannot collect it: "
                          + " ".join(preset.quirks))
    click.echo(f"Provider: {preset.name} (preset {preset.id!r})")
    for quirk in preset.quirks:
        click.echo(f"  note: {quirk}")
    if not preset.verified:
        click.echo(f"  (this preset is not fully checked: {preset.note})")
    return Server(preset.server(domain), w.o["port"] or preset.port, w.o["tls"] or preset.tls)


def _oauth(w: Wizard, preset: Preset | None) -> tuple[tuple[str, str], ...]:
    """OAuth 2.0 sign-in instead of a password (``auth = "oauth2"``, docs/oauth.md):
    offered for a preset that wants it, or chosen with ``--oauth-client-id``. It
    needs the id of the app the user registered; the sign-in itself is ``popkeep
    auth NAME`` afterwards, so no login is tried here. The ``oauth`` table's
    entries; empty: a password it is."""
    provider = w.o["oauth_provider"] or (preset.oauth_provider if preset else None)
    given = w.o["oauth_client_id"]
    if provider is None or (given is None and (preset is None or preset.auth != "oauth2")):
        return ()
    if given is None and not w.confirm(
            f"{preset.name if preset else provider} wants OAuth 2.0 sign-in. Use it? (it needs "
            "the client id of an app you registered, docs/oauth.md; no: a password or an "
            "app password)", None, not w.yes):
        return ()
    client = w.ask("The app's client id", given)
    secret = w.o["oauth_client_secret"]
    if provider == "google" and secret is None:
        secret = w.ask("The app's client secret", None)
    store = "keyring" if keystore.available() else "file"
    table = [("provider", provider), ("client_id", client), ("token_store", store)]
    return (*table, *([("client_secret", secret)] if secret else []))


def _candidates(
    w: Wizard, domain: str, also: Server | None
) -> list[tuple[str, int, TLSMode]]:
    """Where to look: ``--host`` or the usual names (after ``also``'s host, a
    preset's server that did not answer as the preset says), on ``--port`` or
    995/110 (after ``also``'s port), with ``--tls`` or both modes."""
    hosts = [w.o["host"]] if w.o["host"] else [f"{p}.{domain}" for p in ("pop", "pop3", "mail")]
    ports = [w.o["port"]] if w.o["port"] else [995, 110]
    if also is not None:
        hosts = [also.host, *(h for h in hosts if h != also.host)]
        ports = [also.port, *(p for p in ports if p != also.port)]
    modes: list[TLSMode] = [w.o["tls"]] if w.o["tls"] else ["implicit", "starttls"]
    if not w.o["port"] and also is None and not w.o["tls"]:
        usual: tuple[tuple[int, TLSMode], ...] = ((995, "implicit"), (110, "starttls"))
        return [(h, p, t) for h in hosts for p, t in usual]
    return [(h, p, t) for h in hosts for p in ports for t in modes]


def _probed_server(w: Wizard, domain: str, also: Server | None = None) -> Server:
    from popkeep.app import probe_pop3

    candidates = _candidates(w, domain, also)
    click.echo(f"Looking for the POP3 server of {domain} "
               f"({len(candidates)} places, TLS verified) …")
    probes = run_async(probe_pop3(candidates, w.o["ca_file"]))
    for probe in probes:
        if probe.capabilities is not None:
            click.echo(f"Found {probe.host}:{probe.port} ({probe.tls} TLS)")
            return Server(probe.host, probe.port, probe.tls)
    tried = "; ".join(f"{p.host}:{p.port} {p.tls}: {p.error}" for p in probes)
    raise ConfigError(f"no POP3 server with TLS found for {domain} ({tried}); "
                      "name it with --host, --port and --tls")


# -- the password -----------------------------------------------------------------------


def _password(w: Wizard, *, first: bool) -> str:
    var = w.o["password_env"]
    if var:
        secret = os.environ.get(var)
        if not secret:
            raise ConfigError(f"--password-from-env {var}: the variable is not set or empty")
        return secret
    if w.yes:
        raise ConfigError("--yes needs --password-from-env VAR (passwords are not flags)")
    return str(click.prompt("Password" if first else "Password again", hide_input=True))


def _logged_in(w: Wizard, server: Server, user: str, password: str) -> str:
    """The password the server accepted: ``password``, else one asked again after
    a refusal (at a terminal, up to three tries)."""
    from popkeep.app import try_login
    from popkeep.config.schema import Connection

    conn = Connection(server.host, server.port, server.tls, ca_file=w.o["ca_file"], user=user)
    for attempt in range(_TRIES):
        try:
            stat = run_async(try_login(conn, password))
        except AuthError as exc:
            if w.o["password_env"] or w.yes or attempt == _TRIES - 1:
                raise
            click.echo(f"The server refused it: {exc}")
            password = _password(w, first=False)
            continue
        click.echo(f"Logged in: {stat.messages} message(s), {stat.octets / 1e6:.1f} MB "
                   "on the server.")
        return password
    raise AssertionError("unreachable")


def _login(w: Wizard, server: Server, user: str, preset: Preset | None,
           domain: str) -> tuple[Server, str]:
    """Log in at ``server``; when it is an unchecked preset's and does not answer
    as the preset says (no connection, no TLS, not POP3), look for the server
    instead and log in there. The server and the password it accepted."""
    password = _password(w, first=True)
    try:
        return server, _logged_in(w, server, user, password)
    except (TransportError, ProtocolError, SecurityError) as exc:
        if preset is None or preset.verified:
            raise
        click.echo(f"{server.host}:{server.port} ({server.tls} TLS) did not work: {exc}")
        found = _probed_server(w, domain, also=server)
        return found, _logged_in(w, found, user, password)


def _keep_secret(w: Wizard, entry: str, password: str, env_given: str | None) -> Secret:
    """Where the password is kept: the keyring when there is one (never the file
    then), else an environment variable, a command, or (asked) the 0600 file."""
    store = w.o["store"]
    if store is None and env_given:
        store = "env"
    if store in (None, "keyring") and keystore.available():
        if store == "keyring" or w.confirm("Keep the password in the system keyring?",
                                           None, True):
            keystore.set_password(entry, password)
            click.echo(f'Password stored in the keyring as "{entry}".')
            return ("keyring", entry)
    elif store == "keyring":
        raise ConfigError("no usable system keyring here (pip install 'popkeep[keyring]', "
                          "and a keyring service); use --store env or file")
    if store == "file" and keystore.available():
        raise ConfigError("a keyring is available: popkeep init does not write passwords "
                          "into the file then (use --store keyring or env)")
    choice = store or w.ask("Where should popkeep read the password from",
                            default="env", type=click.Choice(["env", "command", "file"]))
    if choice == "env":
        return ("env", env_given or w.ask("Environment variable", default="POPKEEP_PASSWORD"))
    if choice == "command":
        return ("command", w.ask("Command that prints it (e.g. pass show isp)"))
    return ("literal", password)


# -- where mail goes, how long it stays ---------------------------------------------------


def _sink(w: Wizard) -> SinkAnswer:
    spec = w.ask("Where should mail go: maildir:PATH, imap:USER@HOST[:PORT] or gmail",
                 w.o["sink"], "maildir:~/Mail")
    kind, _, rest = spec.partition(":")
    if kind == "maildir":
        return SinkAnswer("maildir", "home", path=Path(rest or "~/Mail").expanduser())
    if kind == "imap":
        return _imap_sink(w, rest)
    if kind == "gmail":
        token = Path("~/.config/popkeep/gmail-token.json").expanduser()
        secret = w.ask("The OAuth client file from Google Cloud (client_secret*.json)",
                       w.o["gmail_client"], "")
        return SinkAnswer("gmail", "gmail", token_file=token,
                          client_secret_file=Path(secret).expanduser() if secret else None)
    raise ConfigError(f"--sink: expected maildir:PATH, imap:USER@HOST[:PORT] or gmail, "
                      f"got {spec!r}")


def _imap_sink(w: Wizard, rest: str) -> SinkAnswer:
    user, at, hostport = rest.rpartition("@")
    if not at or not user or not hostport:
        raise ConfigError(f"imap:USER@HOST[:PORT] expected, got imap:{rest}")
    host, _, port = hostport.partition(":")
    var = w.o["sink_password_env"]
    if var:
        secret: Secret = ("env", var)
    elif keystore.available():
        password = str(click.prompt(f"Password of {user} at {host}", hide_input=True))
        keystore.set_password("popkeep/central", password)
        secret = ("keyring", "popkeep/central")
    else:
        secret = ("env", w.ask("Environment variable with the IMAP password",
                               default="POPKEEP_IMAP_PASSWORD"))
    return SinkAnswer("imap", "central", host=host, port=int(port) if port else None,
                      user=user, secret=secret, folder=w.o["folder"] or "INBOX",
                      ca_file=w.o["sink_ca_file"])


def _devices(w: Wizard) -> list[tuple[str, str]]:
    given: Sequence[str] = w.o["device"]
    if not given and not w.yes and w.o["keep"] is None:
        text = click.prompt(
            "Other devices that read this mailbox by POP, and how often they check\n"
            "(e.g. phone=every 2h, laptop=every 7d; empty: none)", default="",
            show_default=False)
        given = [part for part in text.split(",") if part.strip()]
    devices = []
    for item in given:
        name, eq, checks = item.partition("=")
        if not eq or not name.strip() or not checks.strip():
            raise ConfigError(f"--device: expected NAME=SCHEDULE like phone='every 2h', "
                              f"got {item!r}")
        devices.append((name.strip(), checks.strip()))
    return devices


def advise_keep(devices: list[tuple[str, str]], preset: Preset | None) -> tuple[str, list[str]]:
    """The planner's delete_after for ``devices`` (``popkeep plan``'s recommendation),
    and its reasons; 7 days when no other device reads the mailbox."""
    from datetime import date

    from popkeep.planner.report import build_plan
    from popkeep.planner.scenario import scenario_from_dict

    if not devices:
        return "7d", ["No other device reads this mailbox: a week on the server is a safety net."]
    raw: dict[str, Any] = {"retention": "14d", "mail": {"per_day": 40, "mean_size": "80KB"},
                           "device": [{"name": n, "checks": c} for n, c in devices]}
    if preset is not None and preset.server_quota is not None:
        raw["quota"] = preset.server_quota
    rec = build_plan(scenario_from_dict(raw, date.today(), "--device")).recommendation
    seconds = rec.smallest_safe if rec.compatible else rec.collector_retention
    keep = "never" if seconds is None else f"{math.ceil(seconds / DAY)}d" if seconds else "0s"
    return keep, list(rec.advice)


def _keep(w: Wizard, preset: Preset | None) -> tuple[str, list[str]]:
    if w.o["keep"] is not None:
        return w.o["keep"], []
    suggested, why = advise_keep(_devices(w), preset)
    for line in why:
        click.echo(f"  planner: {line}")
    keep = w.ask("Delete mail from the provider's server after", None, suggested)
    limit = preset.server_deletes_after if preset else None
    if limit is not None:
        click.echo(f"  note: {preset.name if preset else ''} deletes mail itself after "
                   f"{limit.days} days: poll well within that.")
    return str(keep), why


# -- the command ------------------------------------------------------------------------


@click.command("init")
@click.option("--email", help="Your email address at the provider.")
@click.option("--name", "account",
              help="The account's name in the config (default: the provider's).")
@click.option("--presets", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Use this presets file instead of the shipped one (trying a preset).")
@click.option("--host", help="The POP3 server (default: the preset's, else probed).")
@click.option("--port", type=click.IntRange(1, 65535), help="Its port.")
@click.option("--tls", type=click.Choice(["implicit", "starttls"]), help="Its TLS mode.")
@click.option("--user", help="The login name (default: the preset's, else the address).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Trust this CA too (a server with a private CA).")
@click.option("--password-from-env", "password_env", metavar="VAR",
              help="Read the password from environment variable VAR (and keep reading it there).")
@click.option("--oauth-client-id", help="Sign in with OAuth 2.0 through this registered app.")
@click.option("--oauth-client-secret", help="Google only: the app's client secret.")
@click.option("--oauth-provider", type=click.Choice(["google", "microsoft"]),
              help="With --oauth-client-id for a domain without a preset.")
@click.option("--store", type=click.Choice(["keyring", "env", "file"]),
              help="Where the password is kept (default: the keyring when there is one).")
@click.option("--sink", help="maildir:PATH | imap:USER@HOST[:PORT] | gmail")
@click.option("--sink-password-from-env", "sink_password_env", metavar="VAR",
              help="An imap sink's password is in VAR.")
@click.option("--folder", help="The imap sink's folder (default INBOX).")
@click.option("--sink-ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The imap sink's server has a private CA: trust this one too.")
@click.option("--gmail-client", help="The gmail sink's OAuth client file.")
@click.option("--keep", help="delete_after: how long mail stays at the provider (14d, never, 0s).")
@click.option("--device", multiple=True, metavar="NAME=SCHEDULE",
              help="Another POP device and its checks (phone='every 2h'); repeatable.")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              help="The state database (default: ~/.local/share/popkeep/state.db).")
@click.option("--baseline/--no-baseline", default=None,
              help="Mark the mail on the server now as collected (your old client has it).")
@click.option("--yes", is_flag=True, help="Ask nothing: flags, else the defaults.")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@config_option
@handles_errors
def init(config_path: Path | None, **options: Any) -> int:
    """Set up popkeep for one mailbox: find its server, check the login, write the config."""
    path = resolve_config_path(config_path)
    if path.exists() and not options["force"]:
        raise ConfigError(f"{path} exists; popkeep init does not overwrite it "
                          "(--force replaces it, -c writes another file)")
    w = Wizard(options)
    answers = _answers(w)
    text = render(answers)
    _check(text, path)
    _write(path, text, options["force"])
    click.echo(f"Wrote {path} (mode 0600).")
    _offer_baseline(w, path, answers.account)
    first = [n for n, needs in ((answers.account, bool(answers.oauth)),
                                (answers.sink.name, answers.sink.kind == "gmail")) if needs]
    click.echo("Next: " + "".join(f"popkeep auth {n}, then " for n in first) + "popkeep fetch")
    return 0


def _answers(w: Wizard) -> Answers:
    email = w.ask("Your email address", w.o["email"])
    _, domain = split_address(email)
    presets = load_presets(w.o["presets"]) if w.o["presets"] else None
    preset = None if w.o["host"] else find(email, presets)
    server = _preset_server(w, preset, domain) if preset else _probed_server(w, domain)
    user = w.ask("Login name", w.o["user"], preset.login(email) if preset else email)
    account = w.o["account"] or (preset.id if preset else domain.split(".")[0])
    oauth = _oauth(w, preset)
    secret = None
    if not oauth:
        server, password = _login(w, server, user, preset, domain)
        secret = _keep_secret(w, f"popkeep/{account}", password, w.o["password_env"])
    sink = _sink(w)
    keep, why = _keep(w, preset)
    return Answers(email, account, server.host, server.port, server.tls, user, secret, sink,
                   keep, preset, w.o["ca_file"], w.o["state"], tuple(why), oauth)


def _check(text: str, path: Path) -> None:
    """Parse ``text`` with the config's one validator, as if read from ``path``."""
    import tomllib

    from popkeep.config.load import parse_config

    parse_config(tomllib.loads(text), str(path), file_mode=0o100600, env=os.environ)


def _write(path: Path, text: str, force: bool) -> None:
    """``text`` into ``path`` with mode 0600 from the first byte (its directory 0700
    when created); without ``force``, only if no file is there."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; popkeep init does not overwrite it") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from exc


def _offer_baseline(w: Wizard, path: Path, account: str) -> None:
    if not w.confirm("Does another mail program already have the mail on the server now? "
                     "Mark it as collected so popkeep delivers only newer mail",
                     w.o["baseline"], False):
        return
    from popkeep.cli.migrate import mark_baseline

    mark_baseline(path, account, quiet=True)
