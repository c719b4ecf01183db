"""A headless Chromium (Debian's ``chromium`` package, driven by Playwright) for the
whole session, and ``popkeep serve`` against the test Dovecot for the browser tests.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(``scripts/install-test-deps`` installs it). Missing, the browser tests fail
under ``CI=true`` and are skipped otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from popkeep.service import control
from popkeep.service.control import ServiceHandle
from popkeep.testing.mailgen import demo_mailbox

from ..fixtures.dovecot import Dovecot
from ..integration.helpers import account_toml, save_config

CHROMIUM = Path("/usr/bin/chromium")
HINT = "apt-get install chromium (scripts/install-test-deps), and pip install playwright"
#: where the screenshots go: $POPKEEP_SCREENSHOTS (scripts/dashboard-screenshots
#: sets docs/screenshots), else a directory of the test run
SCREENSHOTS = "POPKEEP_SCREENSHOTS"


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the browser tests (all in one module).

    Not session-wide: Playwright's synchronous API runs an event loop in this
    thread while it is started, which every asyncio test after it would meet."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable(f"Playwright is not installed: {HINT}")
    if not CHROMIUM.exists():
        _unavailable(f"Chromium is not installed: {HINT}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


class Service(NamedTuple):
    """A running ``popkeep serve``: its dashboard's URL, and the mailboxes it polls."""

    url: str
    good: str  #: the Dovecot user of account "isp"
    process: subprocess.Popen[str]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_serve(config: Path, state_dir: Path) -> tuple[subprocess.Popen[str], ServiceHandle]:
    """``popkeep -c CONFIG serve`` started, once it has written service.json in
    ``state_dir`` (its stderr in the failure when it ends first, killed when it never
    writes it); the caller ends it."""
    proc = subprocess.Popen([sys.executable, "-m", "popkeep", "-c", str(config), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: control.read_handle(state_dir) is not None or proc.poll() is not None,
                 30, "service.json")
        handle = control.read_handle(state_dir)
        assert handle is not None, proc.stderr.read() if proc.stderr else ""
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc, handle


@pytest.fixture(scope="module")
def service(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``popkeep serve`` with two Dovecot accounts, polled hourly: "isp" (one message
    waiting, deleted 10 days after it is collected) and "work" (a wrong password);
    the dashboard on a free loopback port."""
    base = tmp_path_factory.mktemp("serve")
    good = f"dash{os.getpid() % 10000}"
    dovecot.add_user(good)
    dovecot.add_messages(good, demo_mailbox()[:1])
    server = {"host": "127.0.0.1", "port": dovecot.pop3_port, "ca_file": dovecot.ca_file}
    text = (f'[state]\npath = "{base / "state.db"}"\n\n'
            '[service]\ninterval = "1h"\nlisten = "127.0.0.1:0"\n\n'
            f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{base / "Maildir"}"\n'
            + account_toml(name="isp", user=good, password=dovecot.password, delete_after="10d",
                           **server)
            + account_toml(name="work", user=good, password="not-the-password", **server))
    proc, handle = start_serve(save_config(base, text), base)
    try:
        yield Service(handle.url, good, proc)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the browser tests save each page's screenshot in."""
    given = os.environ.get(SCREENSHOTS)
    path = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
