"""The composition root: configuration → concrete objects, via registries.

Owns: the only place that names concrete classes (sources, sinks, stores,
transports). Each registry maps a config record class or a word the user wrote to a
builder that imports its implementation lazily, so ``popkeep fetch`` never loads
the Gmail libraries, the planner or the web stack. Must not: format output (``cli``)
or hold policy (``collector``, ``retention``).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from popkeep import scheduler
from popkeep.clock import Clock, SystemClock
from popkeep.config.load import default_state_path
from popkeep.config.schema import (
    AccountConfig,
    Config,
    Connection,
    MaildirSinkConfig,
    SinkConfig,
    TLSMode,
)
from popkeep.config.secrets import MaskingFilter
from popkeep.errors import AlreadyRunning, ConfigError
from popkeep.spool import Spool

if TYPE_CHECKING:
    from datetime import datetime

    from popkeep.alerts.notify import Alerts
    from popkeep.collector import AccountJob, AccountResult, Collector, ProgressCallback
    from popkeep.config.schema import OAuthConfig
    from popkeep.model import RunSummary, ServerStat, StoredMessage
    from popkeep.oauth import Flow
    from popkeep.sinks.base import Sink
    from popkeep.sources.base import SessionFactory, SourceSession
    from popkeep.sources.pop3 import SessionSettings, StreamOpener
    from popkeep.spool import SpoolFactory
    from popkeep.state.base import AccountLocks, Collected, Refusal, StateStore
    from popkeep.transport.base import TLSInfo

# Loaded when used, not with this module: a ``popkeep fetch`` logs in first
# (cli.quick.poll) and loads the collector, the store and the sinks meanwhile.

log = logging.getLogger(__name__)

#: One masking filter for the whole process: every resolved secret is added here.
MASK = MaskingFilter()


def install_masking() -> None:
    """Attach the secret-masking filter to every root handler (one choke point)."""
    for handler in logging.getLogger().handlers:
        if MASK not in handler.filters:
            handler.addFilter(MASK)


# -- sinks -------------------------------------------------------------------------

SinkBuilder = Callable[[Any], "Sink"]


def _maildir(cfg: MaildirSinkConfig) -> Sink:
    from popkeep.sinks.maildir import MaildirSink

    return MaildirSink.from_config(cfg)


def _lazy(module: str, factory: str) -> SinkBuilder:
    """A builder that imports ``module`` only when a sink of that type is configured."""

    def build(cfg: Any) -> Sink:
        built: Sink = getattr(importlib.import_module(module), factory)(cfg)
        return built

    return build


#: config class name → builder. The config records live in popkeep.config.
SINK_BUILDERS: dict[str, SinkBuilder] = {
    "MaildirSinkConfig": _maildir,
    "ImapSinkConfig": _lazy("popkeep.sinks.imap", "ImapSink"),
    "LmtpSinkConfig": _lazy("popkeep.sinks.lmtp", "LmtpSink"),
    "MdaSinkConfig": _lazy("popkeep.sinks.mda", "MdaSink"),
    "MboxSinkConfig": _lazy("popkeep.sinks.mbox", "MboxSink"),
    "GmailSinkConfig": _lazy("popkeep.sinks.gmail", "GmailSink"),
}


def build_sink(cfg: SinkConfig) -> Sink:
    """The sink for ``cfg``; CannotCreate (exit 73) first when a local path it must
    create or write cannot be (:mod:`popkeep.config.paths`)."""
    builder = SINK_BUILDERS.get(type(cfg).__name__)
    if builder is None:
        raise ConfigError(f'sink "{cfg.name}": no implementation for {type(cfg).__name__}')
    from popkeep.config.paths import check_sink_paths

    check_sink_paths(cfg)
    return builder(cfg)


# -- sources ---------------------------------------------------------------------------

#: ``(account, spool, opener) → session factory``: one per ``[[account]] type``. A
#: network source opens its streams with ``opener`` (None: transport.tcp's, on the
#: running loop; the cron edge passes its own, ``transport.loopless``).
SourceBuilder = Callable[[AccountConfig, "SpoolFactory", "StreamOpener | None"], "SessionFactory"]


def _pop3_settings(account: AccountConfig, password: str) -> SessionSettings:
    """The POP3 session settings of ``account`` (with the password already resolved)."""
    from datetime import timedelta

    from popkeep.sources.pop3 import SessionSettings
    from popkeep.transport.base import TLSSettings

    server = account.server
    return SessionSettings(
        host=server.host,
        port=server.port,
        tls=server.tls,
        tls_settings=TLSSettings(server.host, server.ca_file, server.tls_fingerprint),
        user=server.user or "",
        password=password,
        auth=account.auth,
        connect_timeout=account.connect_timeout,
        response_timeout=account.timeout,
        session_timeout=account.session_timeout,
        max_message_size=account.max_message_size,
        pipeline_window=account.pipeline,
        keeps_mail=account.retention.delete_after != timedelta(0),
    )


def _pop3(
    account: AccountConfig, spool: SpoolFactory, opener: StreamOpener | None
) -> SessionFactory:
    """Connect + authenticate a POP3 source for ``account`` (password resolved late).

    Its modules load here, in the caller's thread, before ``connect`` may run on a
    worker thread (cli.quick.poll) beside the main thread's own imports."""
    from popkeep.sources.pop3 import POP3Source, SessionSettings  # noqa: F401 (see above)
    from popkeep.transport.base import TLSSettings  # noqa: F401
    from popkeep.transport.tcp import open_stream

    opens = opener or open_stream
    resolve = _credential(account)

    async def login(renew: bool) -> SourceSession:
        password = resolve(renew)
        MASK.add(password)
        return await POP3Source.connect(_pop3_settings(account, password), opens, spool)

    async def connect() -> SourceSession:
        if account.server.oauth is None:
            return await login(False)
        from popkeep.oauth import renewing

        return await renewing(f"account {account.name}", login,
                              "a fresh access token was refused too: check that the mailbox "
                              f"allows POP, or sign in again: popkeep auth {account.name}")

    return connect


def _credential(account: AccountConfig) -> Callable[[bool], str]:
    """What resolves ``account``'s password or OAuth access token when a session
    opens; its argument asks for a fresh token (a password is read again)."""
    server = account.server
    if server.oauth is not None:
        from popkeep.oauth import provider

        return provider(server.oauth).access_token
    if server.user is None or server.secret is None:  # config.load requires both
        raise ConfigError(f'account "{account.name}": no user or password source')
    secret = server.secret
    return lambda _renew: secret.resolve()


#: ``[[account]] type`` → builder; :data:`popkeep.config.load.ACCOUNT_TYPES` lists the
#: same words (a test keeps the two in step).
SOURCE_BUILDERS: dict[str, SourceBuilder] = {
    "pop3": _pop3,
}


def build_source(
    account: AccountConfig, spool: SpoolFactory, opener: StreamOpener | None = None
) -> SessionFactory:
    """The session factory for ``account``'s type; its messages spool through ``spool``,
    its streams open with ``opener`` (see :data:`SourceBuilder`)."""
    builder = SOURCE_BUILDERS.get(account.type)
    if builder is None:
        known = ", ".join(SOURCE_BUILDERS)
        raise ConfigError(f'account "{account.name}": unknown type {account.type!r} '
                          f"(known: {known})")
    return builder(account, spool, opener)


# -- the store ---------------------------------------------------------------------------


def _sqlite_path(config: Config) -> Path:
    if config.state.url is not None:
        raise ConfigError(
            f"{config.path}: state.url: only SQLite (state.path) is supported in this version"
        )
    return config.state.path or default_state_path(os.environ)


def open_store(config: Config, *, read_only: bool = False) -> StateStore:
    """The configured store (raises ConfigError / StateError); see :func:`open_store_at`."""
    return open_store_at(_sqlite_path(config), read_only=read_only)


def open_store_at(path: Path, *, read_only: bool = False) -> StateStore:
    """The SQLite store in the file at ``path``. ``read_only``: the file must exist
    and is never created, migrated or written (``popkeep plan --from-state``)."""
    from popkeep.state.sqlite import SQLiteStore

    return SQLiteStore.open(path, read_only=read_only)


def open_locks(config: Config) -> AccountLocks:
    """The configured store's account locks, without opening the store."""
    from popkeep.state.filelock import FileLocks

    return FileLocks(_sqlite_path(config))


# -- the application ------------------------------------------------------------------


class Passes(NamedTuple):
    """What :meth:`App.passes` hands out: run ``collector.run(job)`` for each job."""

    collector: Collector
    jobs: list[AccountJob]
    skipped: list[AccountResult]  #: accounts another process holds (AlreadyRunning)


class AccountStatus(NamedTuple):
    """One account as ``popkeep status`` shows it."""

    account: str
    last_run: RunSummary | None
    delivered: int
    on_server: int
    gone: int
    bytes_on_server: int
    #: messages left on the server for good (a sink refused them, or they never ended),
    #: one per uid, until ``popkeep retry``
    skipped: tuple[Refusal, ...] = ()


class PlannedDeletion(NamedTuple):
    """One future (or due) deletion, for ``popkeep schedule``."""

    account: str
    uid: str
    size: int
    due_at: datetime | None
    reason: str
    due_now: bool


class App:
    """Wires one configuration to real objects. Close it when done."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._store = store
        self._spools: dict[str, Spool] = {}

    @property
    def store(self) -> StateStore:
        """The state store, opened on first use (raises StateError)."""
        if self._store is None:
            self._store = open_store(self.config)
        return self._store

    @property
    def state_dir(self) -> Path:
        """The directory of the state database, where ``popkeep serve`` leaves its
        ``service.json`` (:mod:`popkeep.service.control`); not created here."""
        return _sqlite_path(self.config).parent

    @property
    def locks(self) -> AccountLocks:
        """The store's per-account locks: the store's own once it is open, else built
        from the config without opening the database (a poll locks first)."""
        return self._store if self._store is not None else open_locks(self.config)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def accounts(self, names: Sequence[str] = ()) -> list[AccountConfig]:
        """The named accounts (all enabled ones when none named); unknown names are errors."""
        unknown = [n for n in names if n not in self.config.accounts]
        if unknown:
            known = ", ".join(self.config.accounts) or "none"
            raise ConfigError(f"unknown account {unknown[0]!r} (configured: {known})")
        if names:
            return [self.config.accounts[n] for n in names]
        return [a for a in self.config.accounts.values() if a.enabled]

    def spool(self, account: str) -> Spool:
        """The spool factory of ``account``'s source (one per account and app)."""
        return self._spools.setdefault(account, Spool())

    def source(
        self, account: AccountConfig, opener: StreamOpener | None = None
    ) -> SessionFactory:
        """The session factory of ``account``'s source, spooling through :meth:`spool`
        (``opener``: see :data:`SourceBuilder`)."""
        return build_source(account, self.spool(account.name), opener)

    def job(self, account: AccountConfig, connect: SessionFactory | None = None) -> AccountJob:
        """The account's job; ``connect`` replaces :meth:`source` (a session opened
        ahead by the same factory). Sets the storage hints of :meth:`spool`."""
        from popkeep.collector import AccountJob

        sinks = [build_sink(self.config.sinks[name]) for name in account.sinks]
        self.spool(account.name).lf_copy = None
        if any(isinstance(self.config.sinks[n], MaildirSinkConfig) for n in account.sinks):
            from popkeep.sinks.maildir import MaildirSink  # loaded by build_sink already

            # Large messages get their LF copy in the first Maildir's tmp/, which names
            # it; when every sink is a Maildir, nothing needs their network form.
            maildirs = [s for s in sinks if isinstance(s, MaildirSink)]
            lf_copy = maildirs[0].lf_copy._replace(only=len(maildirs) == len(sinks))
            self.spool(account.name).lf_copy = lf_copy
        return AccountJob(
            name=account.name,
            connect=connect or self.source(account),
            sinks=sinks,
            policy=account.retention,
            max_message_size=account.max_message_size,
        )

    def alerts(self) -> Alerts:
        """The pass observer that tells the user about trouble in each account's
        central mailbox, its first sink (docs/alerts.md; the ``[service]`` settings in
        force at each pass, so a reload changes them)."""
        from popkeep.alerts.notify import Alerts

        def central(account: AccountConfig) -> Sink:
            return build_sink(self.config.sinks[account.sinks[0]])

        return Alerts(self.store, self.clock, lambda: self.config.service, central)

    async def fetch(
        self, names: Sequence[str] = (), progress: ProgressCallback | None = None
    ) -> list[AccountResult]:
        """One pass per account, inside the running event loop (what a service calls;
        ``popkeep fetch`` drives the same passes from ``cli.quick.poll``)."""
        with self.passes(names, progress) as passes:
            results = await scheduler.run_once(passes.collector, passes.jobs)
        return results + passes.skipped

    @contextmanager
    def passes(
        self,
        names: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        *,
        connect: Callable[[str, SessionFactory], SessionFactory] | None = None,
        opener: StreamOpener | None = None,
    ) -> Iterator[Passes]:
        """The passes to run for ``names`` (all enabled accounts when none), while
        their locks are held.

        An account another popkeep process is collecting right now (a cron run that
        overlaps the previous one) is not among the jobs but among ``skipped``, with
        AlreadyRunning: two collectors of one mailbox could both deliver a message
        before either records it. ``connect(account, factory)``, called for each
        account as soon as its lock is held and before the collector, the sinks or
        the store are loaded, may replace the account's session factory. ``opener``:
        how the sources open their streams (see :data:`SourceBuilder`).
        """
        with self._locked(names) as (accounts, skipped):
            factories = {a.name: self.source(a, opener) for a in accounts}
            if connect is not None:
                factories = {name: connect(name, f) for name, f in factories.items()}
            from popkeep.collector import Collector
            from popkeep.state.asyncstore import AsyncStore

            jobs = [self.job(account, connect=factories[account.name]) for account in accounts]
            store = AsyncStore(self.store)  # the passes' one way to the store
            try:
                collector = Collector(store, self.clock, progress)
                yield Passes(collector, jobs, [self._already_running(name) for name in skipped])
            finally:
                store.close()  # its thread, if a loop started one; the store stays open

    def _check_sink_paths(self, accounts: Sequence[AccountConfig]) -> None:
        """CannotCreate (exit 73) before any lock or login when a sink of ``accounts``
        has a local path that cannot be made or written (:mod:`popkeep.config.paths`)."""
        from popkeep.config.paths import check_sink_paths

        for name in dict.fromkeys(sink for account in accounts for sink in account.sinks):
            check_sink_paths(self.config.sinks[name])

    @contextmanager
    def _locked(self, names: Sequence[str]) -> Iterator[tuple[list[AccountConfig], list[str]]]:
        """The accounts whose store lock (:meth:`locks`) this holds, and the names of
        those another holder has; the locks are released on leaving."""
        chosen = self.accounts(names)
        self._check_sink_paths(chosen)
        locks = self.locks
        with ExitStack() as held:
            accounts, skipped = [], []
            for account in chosen:
                if held.enter_context(locks.lock(account.name)):
                    accounts.append(account)
                else:
                    skipped.append(account.name)
            yield accounts, skipped

    def _already_running(self, account: str) -> AccountResult:
        from popkeep.collector import AccountResult
        from popkeep.model import RunSummary

        now = self.clock.now()
        error = AlreadyRunning(f"account {account!r} is being collected by another process")
        return AccountResult(RunSummary(account, now, now, type(error).__name__, str(error)), error)

    async def check(self, name: str) -> tuple[SourceSession, ServerStat]:
        """Connect and authenticate only; the caller reads TLS and CAPA off the session.

        The session is closed with QUIT before returning (nothing was marked deleted).
        """
        from popkeep.model import ServerStat

        (account,) = self.accounts([name])
        session = await self.source(account)()
        try:
            listing = await session.list_mailbox()
            await session.commit()
        finally:
            await session.close()
        return session, ServerStat(listing.messages, listing.octets)

    async def certificate(self, name: str) -> TLSInfo:
        """The certificate account ``name``'s server presents, read without verifying
        it and without logging in (see ``POP3Session.certificate``): for ``popkeep
        check`` after CertificateUntrusted, to show the pin that would trust it."""
        from popkeep.sources.pop3 import POP3Session
        from popkeep.transport.tcp import open_stream

        (account,) = self.accounts([name])
        if account.type != "pop3":
            raise ConfigError(f'account "{name}": cannot read the certificate of a '
                              f"{account.type!r} account")
        return await POP3Session.certificate(_pop3_settings(account, ""), open_stream)

    def authorize(self, name: str, flow: Flow, say: Callable[[str], None]) -> str:
        """``popkeep auth NAME``: sign in for the account or sink ``name`` and store the
        tokens; what was done, in words. An account or IMAP sink with an ``oauth``
        table runs its provider's ``flow``; a Gmail API sink runs Google's
        installed-app flow into its ``token_file``."""
        oauth = self._oauth_of(name)
        if oauth is None:
            return f"token stored in {self._authorize_gmail(name, say)}"
        from popkeep.oauth import provider
        from popkeep.oauth.store import store_for

        who = provider(oauth).sign_in(flow, say)
        return f"{oauth.owner}: {who}; tokens stored in {store_for(oauth).where}"

    def _oauth_of(self, name: str) -> OAuthConfig | None:
        """The ``oauth`` table of the account or sink ``name`` (None: a Gmail API sink)."""
        found: list[Any] = [c for c in (self.config.accounts.get(name),
                                        self.config.sinks.get(name)) if c is not None]
        if not found:
            raise ConfigError(f"popkeep auth: no account or sink is named {name!r}")
        servers = [getattr(c, "server", None) for c in found]
        tables: list[OAuthConfig] = [s.oauth for s in servers
                                     if isinstance(s, Connection) and s.oauth is not None]
        if len(tables) > 1:
            raise ConfigError(f"popkeep auth: both an account and a sink are named {name!r}; "
                              "rename one")
        if tables:
            return tables[0]
        from popkeep.config.sink_types import GmailSinkConfig

        if isinstance(found[-1], GmailSinkConfig):
            return None
        raise ConfigError(f"{name!r} has no oauth table: popkeep auth is for accounts and sinks "
                          'with auth = "oauth2" and oauth = { … }, and Gmail API sinks')

    def _authorize_gmail(self, sink_name: str, say: Callable[[str], None]) -> str:
        """Run Google's installed-app flow for a Gmail API sink; returns the token file."""
        from popkeep.config.sink_types import GmailSinkConfig
        from popkeep.sinks.gmail import authorize

        sink = self.config.sinks[sink_name]
        assert isinstance(sink, GmailSinkConfig)  # as _oauth_of found it
        return authorize(sink, say)

    def retry_refused(self, account: str, uids: Sequence[str] = ()) -> list[Refusal]:
        """Forget the account's remembered refusals (of ``uids`` only, when given), so
        the next fetch offers those messages to the sinks again; the forgotten ones."""
        self.accounts([account])  # an unknown name is a ConfigError
        remembered = self.store.refusals(account)
        chosen = [r for r in remembered if not uids or r.uid in uids]
        self.store.forget_refusals(account, tuple(uids))
        return chosen

    def import_state(
        self, account: str, client: str, data: bytes,
        host: str | None = None, user: str | None = None,
    ) -> tuple[int, int]:
        """Mark the messages another POP3 client collected as collected for
        ``account`` (``popkeep import-state``): ``data`` is that client's state file
        (:data:`popkeep.state.foreign.READERS`), whose list for ``user`` at ``host``
        (default: the account's) is taken. Each message becomes DELIVERED to every
        sink of the account without being fetched, its retention clock from the
        file's first-retrieval time where it has one, else now; messages the store
        knows already keep their record. Under the account's lock (AlreadyRunning
        while a fetch holds it). Returns (how many were marked, how many the list held).
        """
        from popkeep.state.foreign import READERS, entries_of

        (config,) = self.accounts([account])
        entries = entries_of(
            READERS[client](data), host or config.server.host, user or config.server.user or ""
        )
        store = self.store
        with store.lock(account) as held:
            if not held:
                raise AlreadyRunning(f"account {account!r} is being collected by another process")
            marked = store.mark_collected(
                account, entries, config.sinks, f"imported from {client}", self.clock.now()
            )
        return marked, len({entry.uid for entry in entries})

    def baseline(self, name: str) -> tuple[int, int]:
        """Mark every message on ``name``'s server now as collected (``popkeep
        baseline``, for a user whose old mail client already has them): logs in,
        lists the mailbox and its sizes, QUITs having fetched and deleted nothing,
        then each listed message becomes DELIVERED to every sink of the account
        with its retention clock starting now; messages the store knows already
        keep their record. Under the account's lock (AlreadyRunning while a fetch
        holds it). Returns (how many were marked, how many the server listed)."""
        import asyncio

        (config,) = self.accounts([name])
        store = self.store
        with store.lock(name) as held:
            if not held:
                raise AlreadyRunning(f"account {name!r} is being collected by another process")
            entries = asyncio.run(self._listed(config))
            marked = store.mark_collected(
                name, entries, config.sinks, "baseline: on the server before popkeep",
                self.clock.now(),
            )
        return marked, len(entries)

    async def _listed(self, account: AccountConfig) -> list[Collected]:
        """Every message on ``account``'s server as (key, LIST size, ``TOP n 0``
        header digest), read in one session that ends with QUIT (nothing was marked
        deleted): what a later poll compares with to tell the message from new mail
        under its UIDL (docs/guarantees.md, point 10)."""
        from popkeep.state.base import Collected

        session = await self.source(account)()
        try:
            listing = await session.list_mailbox()
            described = await session.describe(list(listing.keys), identify=True)
            await session.commit()
        finally:
            await session.close()
        return [Collected(m.key, None, m.size, m.identity) for m in described]

    def status(self) -> list[AccountStatus]:
        """Per account: its last run and the store's counts (two indexed queries each)."""
        rows = []
        for name in self.config.accounts:
            totals = self.store.account_totals(name)
            last = self.store.runs(name, limit=1)
            skipped = {r.uid: r for r in reversed(self.store.refusals(name))}
            rows.append(
                AccountStatus(
                    account=name,
                    last_run=last[0] if last else None,
                    delivered=totals.delivered,
                    on_server=totals.on_server,
                    gone=totals.gone,
                    bytes_on_server=totals.on_server_bytes,
                    skipped=tuple(skipped.values()),
                )
            )
        return rows

    def schedule(self) -> list[PlannedDeletion]:
        """What retention will delete, and when, for every account (pure; nothing sent)."""
        from popkeep import retention
        from popkeep.model import ServerStat

        now = self.clock.now()
        planned: list[PlannedDeletion] = []
        for name, account in self.config.accounts.items():
            on_server: dict[str, StoredMessage] = {
                uid: m for uid, m in self.store.messages(name).items() if m.on_server
            }
            stat = ServerStat(len(on_server), sum(m.size for m in on_server.values()))
            for d in retention.decide(on_server.values(), stat, account.retention, now):
                if d.delete or d.due_at is not None:
                    size = on_server[d.uid].size
                    planned.append(
                        PlannedDeletion(name, d.uid, size, d.due_at, d.reason, d.delete)
                    )
        planned.sort(key=lambda p: (p.account, p.due_at or now))
        return planned


def load_app(path: Path, **kwargs: Any) -> App:
    """Load the config at ``path`` and build the app (raises ConfigError / StateError)."""
    from popkeep.config.load import load_config

    return App(load_config(path), **kwargs)


# -- popkeep init: finding a server and trying a login before any config exists ------------


class Probe(NamedTuple):
    """One candidate server as :func:`probe_pop3` found it."""

    host: str
    port: int
    tls: TLSMode
    #: what it offers over verified TLS; None: no POP3 server with TLS answered there
    capabilities: dict[str, list[str]] | None
    error: str = ""  #: why not, in one line


async def probe_pop3(
    candidates: Sequence[tuple[str, int, TLSMode]], ca_file: Path | None = None,
    timeout: float = 5.0,
) -> list[Probe]:
    """Try every ``(host, port, tls)`` at once, each within ``timeout`` seconds:
    a POP3 greeting over TLS verified against the system's CAs (or ``ca_file``),
    implicit or after STLS. Nothing is sent but CAPA and STLS; no login. The
    results come in the order of ``candidates``."""
    import asyncio

    from popkeep.errors import PopkeepError
    from popkeep.sources.pop3 import POP3Session, SessionSettings
    from popkeep.transport.base import TLSSettings
    from popkeep.transport.tcp import open_stream

    async def one(host: str, port: int, tls: TLSMode) -> Probe:
        settings = SessionSettings(
            host=host, port=port, tls=tls, tls_settings=TLSSettings(host, ca_file, None),
            user="", password="", connect_timeout=timeout, response_timeout=timeout,
            greeting_timeout=timeout, session_timeout=3 * timeout,
        )
        try:
            capabilities = await POP3Session.probe(settings, open_stream)
        except PopkeepError as exc:
            return Probe(host, port, tls, None, str(exc).splitlines()[0])
        return Probe(host, port, tls, capabilities)

    return list(await asyncio.gather(*(one(*c) for c in candidates)))


async def try_login(server: Connection, password: str, timeout: float = 30.0) -> ServerStat:
    """Log in to POP3 ``server`` as ``server.user`` with ``password`` and QUIT
    (``popkeep init`` checking what the user typed before saving it), with the
    usual rules (TLS verified, no password before TLS); the mailbox's size.
    Raises AuthError for a refused password, like a fetch would."""
    from popkeep.model import ServerStat
    from popkeep.sources.pop3 import POP3Source, SessionSettings
    from popkeep.transport.base import TLSSettings
    from popkeep.transport.tcp import open_stream

    MASK.add(password)
    settings = SessionSettings(
        host=server.host, port=server.port, tls=server.tls,
        tls_settings=TLSSettings(server.host, server.ca_file, server.tls_fingerprint),
        user=server.user or "", password=password,
        connect_timeout=timeout, response_timeout=timeout,
    )
    session = await POP3Source.connect(settings, open_stream, Spool())
    try:
        listing = await session.list_mailbox()
        await session.commit()
    finally:
        await session.close()
    return ServerStat(listing.messages, listing.octets)


__all__ = [
    "AccountStatus", "App", "Passes", "PlannedDeletion", "Probe", "install_masking", "load_app",
    "probe_pop3", "try_login",
]
