"""What every command shares, and the ``popkeep fetch`` command itself, without click.

Owns: logging set-up, one-line output and error lines (re-exported by
:mod:`popkeep.cli.common`), and the fetch command's behaviour (loading the app,
progress on a terminal, one line per account or ``--json``, the exit code). The
click command in :mod:`popkeep.cli.commands` and the cron edge's recogniser in
:mod:`popkeep.cli.quick.argv` call the same :func:`fetch`, so both paths behave alike.

Must not: import click (the cron edge runs ``fetch`` without it: click and what it
imports cost ≈ 20–30 ms of CPU per start, bench/README.md, "Where the time goes"),
or anything that only other commands need.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from popkeep.errors import ConfigError, PopkeepError

if TYPE_CHECKING:
    from popkeep.app import App
    from popkeep.collector import AccountResult

T = TypeVar("T")


# -- what every command shares (re-exported by cli.common) -------------------------------


#: Every log line: local time, level, the account of the pass (when inside one), logger.
LOG_FORMAT = "%(asctime)s %(levelname)s %(account)s%(name)s: %(message)s"
LOG_DATE = "%Y-%m-%d %H:%M:%S"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a line is logged."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


_handler: logging.Handler | None = None  #: the one handler popkeep installed


def log_level(verbose: int, quiet: bool) -> int:
    """``-q``: errors only; none: warnings; ``-v``: info; ``-vv``: debug (``-v`` beats ``-q``)."""
    if verbose == 0:
        return logging.ERROR if quiet else logging.WARNING
    return logging.INFO if verbose == 1 else logging.DEBUG


def setup_logging(
    verbose: int, quiet: bool = False, log_file: str | None = None, log_format: str = "text"
) -> None:
    """Log to stderr, or append to ``log_file``, in :data:`LOG_FORMAT` (or one JSON
    object a line when ``log_format`` is ``"json"``), secrets masked.

    Calling it again replaces what the previous call set up (``-v`` may come after
    the command name). Raises ConfigError when ``log_file`` cannot be opened.
    """
    from popkeep.app import install_masking
    from popkeep.logs import AccountFilter, JsonFormatter

    global _handler
    level = log_level(verbose, quiet)
    if log_file:
        try:
            handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: {exc.strerror or exc}") from None
    else:
        handler = _Stderr()
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(LOG_FORMAT, LOG_DATE))
    handler.addFilter(AccountFilter())
    handler.setLevel(level)
    reset_logging()
    root = logging.getLogger()
    root.addHandler(handler)
    _handler = handler
    root.setLevel(min(root.getEffectiveLevel(), level))
    install_masking()


def reset_logging() -> None:
    """Remove (and close) the handler :func:`setup_logging` installed, if any."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
        _handler = None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def say(text: str, *, err: bool = False, end: str = "\n") -> None:
    """One line to stdout (or stderr), flushed: the output of every command."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + end)
    stream.flush()


def error_line(error: PopkeepError, prefix: str = "") -> str:
    """``popkeep: <reason> (<hint>)``: how every command reports a PopkeepError."""
    hint = f" ({error.hint})" if error.hint else ""
    return f"popkeep: {prefix}{error}{hint}"


def default_config() -> Path:
    from popkeep.config.load import default_config_path

    return default_config_path(os.environ)


def load(config_path: Path, quiet: bool = False) -> App:
    """The app for ``config_path``; config warnings go to stderr (not with ``quiet``)."""
    from popkeep.app import load_app

    app = load_app(config_path)
    if not quiet:
        for warning in app.config.warnings:
            say(f"popkeep: warning: {warning}", err=True)
    return app


# -- fetch ------------------------------------------------------------------------------


class Progress:
    """A progress bar per account on a terminal (stderr), redrawn in place."""

    WIDTH = 30

    def __init__(self) -> None:
        self._shown = False

    def __call__(self, account: str, done: int, total: int, octets: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        say(f"\r{account}: [{bar}] {done}/{total} messages, {octets / 1e6:.1f} MB ",
            err=True, end="")
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            say("\r" + " " * 79 + "\r", err=True, end="")


def tell_alerts(app: App, results: Sequence[AccountResult]) -> None:
    """After the passes of ``popkeep fetch``, while their locks are held: the alerts of
    docs/alerts.md, as the service raises them. Settling needs no event loop (one small
    query per account, two after a failed pass); a loop starts only when a notice is
    owed. A failure is logged, never the fetch's: the notice stays owed for the next
    run."""
    if not app.config.service.alerts or not results:
        return
    from popkeep.alerts import quiet

    try:
        settled = [(app.config.accounts[r.summary.account], r) for r in results]
        if all(quiet(r.summary, a.retention) and not app.store.open_alerts(a.name)
               for a, r in settled):  # fmt: skip
            return  # the usual poll: nothing raised, nothing to clear, nothing loaded
        alerts = app.alerts()
        due = [(account, owed) for account, r in settled
               if (owed := alerts.settle(account, r))]  # fmt: skip
    except PopkeepError as exc:
        logging.getLogger(__name__).warning("alerts not settled (next run tries): %s", exc)
        return
    if due:
        import asyncio

        async def tell() -> None:
            for account, owed in due:
                try:
                    await alerts.tell(account, owed)
                except PopkeepError as exc:
                    logging.getLogger(__name__).warning(
                        "account %s: alert not delivered (next run tries again): %s",
                        account.name, exc,
                    )

        asyncio.run(tell())


def fetch(accounts: Sequence[str], config_path: Path, as_json: bool, quiet: bool = False) -> int:
    """``popkeep fetch``: fetch, deliver, apply retention; print; return the exit code.

    ``quiet`` (``-q``, for cron): print nothing about an account that got no new
    mail and did not fail, no progress and no config warnings; ``--json`` is
    printed whole regardless (a script asked for it).
    """
    from popkeep.cli.render import fetch_line, result_json

    try:
        app = load(config_path, quiet)
        progress = Progress() if is_terminal() and not (as_json or quiet) else None
        try:
            from popkeep.cli.quick.poll import poll

            # the alerts are told while the passes' locks are held (docs/alerts.md)
            results = poll(app, accounts, progress, then=lambda done: tell_alerts(app, done))
        finally:
            if progress is not None:
                progress.clear()
            app.close()
    except PopkeepError as exc:
        say(error_line(exc), err=True)
        return exc.exit_code
    if as_json:
        import json

        say(json.dumps({"accounts": [result_json(r) for r in results]}, indent=2))
    else:
        for result in results:
            if quiet and result.error is None and not result.summary.delivered:
                continue
            say(fetch_line(result), err=result.error is not None)
            for warning in result.warnings:
                say(f"  warning: {warning}", err=True)
    errors = [r.error for r in results if r.error is not None]
    if not errors:
        return 0
    # The most actionable code wins: a config/auth problem over a passing outage.
    return min(errors, key=lambda e: e.retry).exit_code
