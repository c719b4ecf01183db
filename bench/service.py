"""The service benchmark (issue 17, "Fast when always on"): ``bench/run service``.

What it measures: ``popkeep serve`` polling N accounts (default 1,000) of the private
Dovecot over POP3S (implicit TLS, verified against the fixture's CA) every minute,
with nothing new most of the time and a trickle of new mail; beside it, the same
mailboxes polled by ``fetchmail -d 60`` (one rcfile with N ``user`` entries, the same
TLS, procmail writing a Maildir), both in the same window against the same Dovecot.

How, step by step:

1. Dovecot (tests/fixtures/dovecot.py) with N users ``u0001``…, each holding
   ``--messages`` small realistic messages (popkeep.testing.mailgen).
2. Memory baselines: ``popkeep serve`` with only the first ``--small`` accounts (default
   10, then 100), primed and then made to poll twice more (``POST /api/check-now``);
   its resident set (``VmRSS``) is the baseline.
3. Both tools start on all N accounts; each first collects what is there (priming,
   not measured): popkeep until its ``/metrics`` count every account polled and every
   message delivered, fetchmail until its Maildir holds every message.
4. The no-op window (``--window`` seconds, default 300): nothing new arrives. CPU time
   (user + system, of the process and the children it reaped: fetchmail's procmail)
   comes from ``/proc/PID/stat`` at both ends; polls from popkeep's ``/metrics``
   (``popkeep_polls_total``) and from fetchmail's own log (one line per poll:
   ``N messages (M seen) for USER`` or ``No mail for USER``); the resident set at its
   end. The 1-minute load average is sampled every 5 s.
5. The trickle window (``--trickle-window``, default the same): every ``--trickle``
   seconds (default 0.5) one message, numbered by an ``X-Bench-Id`` header, is written
   into a random user's Maildir on the Dovecot side and its arrival time recorded.
   Afterwards up to ``interval × 1.5 + 30`` s more for the last arrivals to be
   delivered; the delay of each message is the ``ctime`` of its file in the tool's
   Maildir (the rename into ``new/``, or procmail's link) minus its arrival.

Goals (issue 17): CPU per no-op poll ≤ 5 ms (TLS handshake included) = CPU / polls in
the no-op window; memory per account ≤ 50 KB = (RSS with N − RSS with ``--small``) /
(N − ``--small``); the whole service under 20 % of one core = CPU / no-op window;
delivery delay median ≤ interval / 2 + 1 s (with a distribution-free 95 % confidence
interval of the median: the arrival times are random, so is the median).

``--quick`` (the smoke test in tests/bench/test_service_bench.py): 5 users, 6 s windows;
as ``popkeep serve`` polls at most once a minute, the bench then asks it to
poll every ``--drive`` seconds (check-now) and runs ``fetchmail -d`` at that period.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "src"))
sys.path.insert(0, str(BENCH_DIR.parent))  # tests.fixtures: the tests' Dovecot, not in the wheel

import tools  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402

from popkeep.testing import mailgen  # noqa: E402

PASSWORD = "bench-secret"
SEED = 17
#: the issue's goals
GOAL_POLL_MS = 5.0
GOAL_ACCOUNT_KB = 50.0
GOAL_CORE = 0.20
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(msg: str) -> None:
    print(f"[service {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_for(what: str, ready: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    """Poll ``ready`` until true; SystemExit naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)  # a protocol step of the benchmark, not a test's wait


# -- a process: CPU and memory from /proc -------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of the children it waited for (``/proc/PID/stat``
    fields 14–17, clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _CLK_TCK


def rss_kb(pid: int) -> int:
    """``VmRSS`` of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Sample:
    """CPU seconds and polls counted at one moment."""

    at: float
    cpu_s: float
    polls: int


class Daemon:
    """A tool running all the time: started by :meth:`start`, ended by :meth:`stop`."""

    name = ""

    def __init__(self, workdir: Path, dovecot: Dovecot, users: list[str]) -> None:
        self.workdir = workdir
        self.dovecot = dovecot
        self.users = users
        self.maildir = workdir / "Maildir"
        self.proc: subprocess.Popen[bytes] | None = None
        tools.make_maildir(self.maildir)

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        argv, env = self.command()
        with open(self.workdir / "stderr.txt", "wb") as err:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            tail = (self.workdir / "stderr.txt").read_text(errors="replace")[-1500:]
            raise SystemExit(f"{self.name} exited: {tail}")
        return True

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def polls(self) -> int:
        raise NotImplementedError

    def primed(self, expected: int) -> bool:
        return self.alive() and count_files(self.maildir) >= expected

    def sample(self) -> Sample:
        return Sample(time.monotonic(), cpu_seconds(self.pid), self.polls())

    def drive(self) -> None:
        """Make every account poll now (only ``--drive``)."""


def count_files(maildir: Path) -> int:
    return sum(1 for sub in ("new", "cur") for _ in os.scandir(maildir / sub))


#: ``python -c _PROFILED OUT ARGS…``: ``popkeep ARGS…`` under cProfile counting the CPU
#: time of the event loop's thread (``time.thread_time``: not the waits, not the store's
#: thread), its figures written to OUT at exit.
_PROFILED = """
import cProfile, runpy, sys, time
out, sys.argv = sys.argv[1], ["popkeep", *sys.argv[2:]]
profile = cProfile.Profile(time.thread_time)
profile.enable()
try:
    runpy.run_module("popkeep", run_name="__main__")
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(out)
"""


class PopkeepServe(Daemon):
    """``popkeep -c popkeep.toml serve``: one Maildir sink shared by every account (the
    central mailbox), the status API on a free loopback port."""

    name = "popkeep"

    def __init__(self, workdir: Path, dovecot: Dovecot, users: list[str], args: argparse.Namespace
                 ) -> None:  # fmt: skip
        super().__init__(workdir, dovecot, users)
        self.args = args
        self.binary = tools.TOOLS["popkeep"].binary  # type: ignore[attr-defined]

    def config(self) -> str:
        d = self.dovecot
        head = (
            f'[state]\npath = "{self.workdir / "state.db"}"\n\n'
            f'[service]\ninterval = "{self.args.interval}s"\n'
            f'concurrency = {self.args.concurrency}\nlisten = "127.0.0.1:0"\n\n'
            f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{self.maildir}"\n'
        )
        accounts = "".join(
            f'\n[[account]]\nname = "{user}"\nhost = "{d.host}"\nport = {d.pop3s_port}\n'
            f'tls = "implicit"\nca_file = "{d.ca_file}"\nuser = "{user}"\n'
            'password_env = "BENCH_PASS"\nauth = "user"\ndelete_after = "never"\n'
            'sinks = ["home"]\n'
            for user in self.users
        )
        return head + accounts

    def command(self) -> tuple[list[str], dict[str, str]]:
        path = self.workdir / "popkeep.toml"
        path.write_text(self.config())
        path.chmod(0o600)
        env = dict(os.environ, BENCH_PASS=self.dovecot.password, HOME=str(self.workdir))
        if self.args.profile:  # written when serve exits (SIGTERM)
            python = tools.popkeep_python(self.binary)
            out = str(self.workdir / "serve.prof")
            return [python, "-c", _PROFILED, out, "-c", str(path), "serve"], env
        return [self.binary, "-c", str(path), "serve"], env

    def _handle(self) -> dict[str, str] | None:
        try:
            data: dict[str, str] = json.loads((self.workdir / "service.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def _get(self, path: str) -> bytes:
        handle = self._handle()
        assert handle is not None
        with _NO_PROXY.open(handle["url"] + path, timeout=30) as response:
            body: bytes = response.read()
        return body

    def metric(self, name: str) -> int:
        """The sum over every account of the counter ``name`` in ``/metrics``."""
        pattern = re.compile(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", re.M)
        text = self._get("/metrics").decode()
        return int(sum(float(v) for v in pattern.findall(text)))

    def polls(self) -> int:
        return self.metric("popkeep_polls_total")

    def primed(self, expected: int) -> bool:
        if not self.alive() or self._handle() is None:
            return False
        polled = self.metric("popkeep_polls_total")
        return polled >= len(self.users) and count_files(self.maildir) >= expected

    def drive(self) -> None:
        handle = self._handle()
        assert handle is not None
        req = urllib.request.Request(
            handle["url"] + "/api/check-now", data=b"{}", method="POST",
            headers={"Authorization": f"Bearer {handle['token']}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with _NO_PROXY.open(req, timeout=30) as response:
            response.read()


class FetchmailDaemon(Daemon):
    """``fetchmail -N -d INTERVAL``: one ``poll`` with a ``user`` entry per mailbox, the
    same TLS as tools.Fetchmail, procmail (one process per message) writing the Maildir.
    Not ``--silent``: it logs one line per poll, which counts the polls."""

    name = "fetchmail"

    def __init__(self, workdir: Path, dovecot: Dovecot, users: list[str], period: int) -> None:
        super().__init__(workdir, dovecot, users)
        self.period = period

    def command(self) -> tuple[list[str], dict[str, str]]:
        d = self.dovecot
        procmailrc = self.workdir / "procmailrc"
        procmailrc.write_text(f"DEFAULT={self.maildir}/\nLOGFILE=/dev/null\n")
        mda = f"{shutil.which('procmail')} -m {procmailrc}"
        tls = f"ssl sslcertck sslcertfile {d.ca_file} sslcommonname localhost"
        entries = "".join(
            f'  user "{user}" password "{d.password}" keep no rewrite {tls} mda "{mda}"\n'
            for user in self.users
        )
        rc = self.workdir / "fetchmailrc"
        rc.write_text(
            "set no bouncemail\nset no syslog\n"
            f"poll {d.host} service {d.pop3s_port} protocol POP3 uidl auth password\n{entries}"
        )
        rc.chmod(0o600)
        env = dict(os.environ, HOME=str(self.workdir), FETCHMAILHOME=str(self.workdir))
        argv = [
            "fetchmail", "-N", "-d", str(self.period), "-f", str(rc),
            "--idfile", str(self.workdir / ".fetchids"),
            "--pidfile", str(self.workdir / "fetchmail.pid"),
            "--invisible", "--nosyslog",
        ]  # fmt: skip
        return argv, env

    _POLL_LINE = re.compile(
        rb"^(?:fetchmail: )?(?:No mail for |\d+ messages? (?:\(\d+ seen\) )?for )", re.M
    )

    def polls(self) -> int:
        try:  # -N: its log goes to stderr (it ignores -L without detaching)
            return len(self._POLL_LINE.findall((self.workdir / "stderr.txt").read_bytes()))
        except OSError:
            return 0


# -- the trickle and the delays ------------------------------------------------------------


def trickle_message(number: int, user: str) -> bytes:
    return (
        f"From: trickle@example.org\r\nTo: {user}@localhost\r\n"
        f"Subject: trickle {number}\r\nMessage-ID: <trickle-{number}@bench.example>\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"X-Bench-Id: {number}\r\n\r\nmessage {number} of the service bench\r\n"
    ).encode()


class Trickle(threading.Thread):
    """One message every ``every`` seconds to a random user (seeded), its arrival time
    recorded; the load average sampled at each step. Runs until :meth:`finish`."""

    def __init__(self, dovecot: Dovecot, users: list[str], every: float) -> None:
        super().__init__(name="trickle", daemon=True)
        self.dovecot, self.users, self.every = dovecot, users, every
        self.arrivals: dict[int, float] = {}
        self.loads: list[float] = []
        self._done = threading.Event()
        self._rng = random.Random(SEED)

    def run(self) -> None:
        number = 0
        while not self._done.is_set():
            number += 1
            user = self._rng.choice(self.users)
            self.dovecot.add_messages(user, [trickle_message(number, user)])
            self.arrivals[number] = time.time()
            self.loads.append(os.getloadavg()[0])
            self._done.wait(self.every)

    def finish(self) -> None:
        self._done.set()
        self.join()


_BENCH_ID = re.compile(rb"^X-Bench-Id: (\d+)\r?$", re.M)


def deliveries(maildir: Path) -> dict[int, float]:
    """Trickled message number → the ctime of its file in ``maildir`` (the rename into
    ``new/``, or procmail's link)."""
    found: dict[int, float] = {}
    for sub in ("new", "cur"):
        for entry in os.scandir(maildir / sub):
            with open(entry.path, "rb") as f:
                head = f.read(4096)
            match = _BENCH_ID.search(head.split(b"\n\n", 1)[0])
            if match:
                found[int(match.group(1))] = entry.stat().st_ctime
    return found


def delays(arrivals: dict[int, float], delivered: dict[int, float]) -> dict[str, float]:
    got = sorted(delivered[n] - t for n, t in arrivals.items() if n in delivered)
    if not got:
        return {"count": 0, "missing": len(arrivals)}
    p95 = got[min(len(got) - 1, round(0.95 * (len(got) - 1)))]
    # Distribution-free 95 % interval of the median: order statistics n/2 ∓ 1.96·√n/2.
    half = 0.98 * len(got) ** 0.5
    lo, hi = max(0, int(len(got) / 2 - half)), min(len(got) - 1, int(len(got) / 2 + half))
    return {"count": len(got), "missing": len(arrivals) - len(got),
            "median_s": statistics.median(got), "median_lo_s": got[lo], "median_hi_s": got[hi],
            "p95_s": p95, "max_s": got[-1]}  # fmt: skip


# -- the runs ------------------------------------------------------------------------------


@dataclass
class ToolFigures:
    """One tool: the no-op window (CPU, polls) and the trickle window (delays)."""

    tool: str
    available: str | None = None  #: why not run, or None
    prime_s: float = 0.0
    cpu_s: float = 0.0  #: in the no-op window
    polls: int = 0  #: in the no-op window
    window_s: float = 0.0
    trickle_cpu_s: float = 0.0  #: in the trickle window (deliveries included)
    trickle_polls: int = 0
    trickle_window_s: float = 0.0
    rss_kb: int = 0  #: at the end of the no-op window
    end_rss_kb: int = 0  #: at the end of the trickle window
    delay: dict[str, float] = field(default_factory=dict)


def make_users(dovecot: Dovecot, count: int, messages: int) -> list[str]:
    users = [f"u{i:04d}" for i in range(1, count + 1)]
    for i, user in enumerate(users):
        dovecot.add_user(user)
        dovecot.add_messages(
            user, mailgen.realistic_mailbox(messages, seed=SEED + i, size_profile="small")
        )
    return users


@contextmanager
def running(daemons: list[Daemon]) -> Iterator[None]:
    try:
        for daemon in daemons:
            daemon.start()
        yield
    finally:
        for daemon in daemons:
            daemon.stop()


def baseline_rss(args: argparse.Namespace, dovecot: Dovecot, users: list[str], count: int) -> int:
    """VmRSS (KiB) of ``popkeep serve`` with the first ``count`` accounts, primed and
    polled twice more (check-now)."""
    small = users[:count]
    work = args.work / "runs" / f"popkeep-{count}"
    work.mkdir(parents=True)
    serve = PopkeepServe(work, dovecot, small, args)
    with running([serve]):
        wait_for(
            "the small service's priming",
            lambda: serve.primed(len(small) * args.messages),
            args.prime_timeout,
        )
        for rounds in (2, 3):
            serve.drive()
            wait_for(
                "the small service's polls", lambda r=rounds: serve.polls() >= r * len(small), 300
            )
        return rss_kb(serve.pid)


def _window(args: argparse.Namespace, daemons: list[Daemon], seconds: float) -> dict[str, Sample]:
    """Let the daemons poll for ``seconds`` (driving them with --drive); samples at the end."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for daemon in daemons:
            daemon.alive()
            if args.drive:
                daemon.drive()
        time.sleep(min(args.drive or 5.0, max(0.0, end - time.monotonic())))
    return {d.name: d.sample() for d in daemons}


def _prime(args: argparse.Namespace, daemons: list[Daemon], figures: dict[str, ToolFigures],
           expected: int) -> None:  # fmt: skip
    """Until every tool has collected what is there."""
    started = time.monotonic()
    pending = list(daemons)
    while pending:
        for daemon in [d for d in pending if d.primed(expected)]:
            figures[daemon.name].prime_s = time.monotonic() - started
            log(f"{daemon.name}: primed in {figures[daemon.name].prime_s:.1f} s")
            pending.remove(daemon)
        if time.monotonic() - started > args.prime_timeout:
            raise SystemExit(f"priming took over {args.prime_timeout:.0f} s")
        time.sleep(1.0)


def _drain(args: argparse.Namespace, daemons: list[Daemon], trickle: Trickle) -> None:
    """Up to ``interval × 1.5 + 30`` s for the last arrivals to be delivered."""
    drain = (args.drive or args.interval) * 1.5 + 30
    log(f"trickle over; up to {drain:.0f} s for the last of {len(trickle.arrivals)} arrivals")
    deadline = time.monotonic() + drain
    for daemon in daemons:
        while time.monotonic() < deadline:
            if set(trickle.arrivals) <= set(deliveries(daemon.maildir)):
                break
            if args.drive:
                daemon.drive()
            time.sleep(args.drive or 2.0)


def measure_windows(args: argparse.Namespace, dovecot: Dovecot, users: list[str]
                    ) -> tuple[list[ToolFigures], Trickle, list[float]]:  # fmt: skip
    """Both tools on every account: priming, the no-op window, the trickle window; the
    figures, the trickle, and the load averages sampled in the no-op window."""
    daemons: list[Daemon] = []
    figures: dict[str, ToolFigures] = {}
    for name in args.tools:
        fig = figures[name] = ToolFigures(name)
        fig.available = tools.TOOLS[name].available()
        if fig.available is not None:
            log(f"{name}: not run: {fig.available}")
            continue
        work = args.work / "runs" / name
        work.mkdir(parents=True)
        if name == "popkeep":
            daemons.append(PopkeepServe(work, dovecot, users, args))
        else:
            daemons.append(FetchmailDaemon(work, dovecot, users, int(args.drive or args.interval)))
    trickle = Trickle(dovecot, users, args.trickle)
    loads: list[float] = []
    with running(daemons):
        _prime(args, daemons, figures, len(users) * args.messages)
        log(f"no-op window: {args.window:.0f} s, nothing new")
        first = {d.name: d.sample() for d in daemons}
        sampler = threading.Thread(target=_sample_loads, args=(loads, args.window), daemon=True)
        sampler.start()
        middle = _window(args, daemons, args.window)
        for daemon in daemons:
            figures[daemon.name].rss_kb = rss_kb(daemon.pid)
        log(f"trickle window: {args.trickle_window:.0f} s, one new message every "
            f"{args.trickle:g} s")  # fmt: skip
        trickle.start()
        last = _window(args, daemons, args.trickle_window)
        for daemon in daemons:
            figures[daemon.name].end_rss_kb = rss_kb(daemon.pid)
        trickle.finish()
        _drain(args, daemons, trickle)
    for daemon in daemons:
        fig = figures[daemon.name]
        a, b, c = first[daemon.name], middle[daemon.name], last[daemon.name]
        fig.cpu_s, fig.polls, fig.window_s = b.cpu_s - a.cpu_s, b.polls - a.polls, b.at - a.at
        fig.trickle_cpu_s, fig.trickle_polls = c.cpu_s - b.cpu_s, c.polls - b.polls
        fig.trickle_window_s = c.at - b.at
        fig.delay = delays(trickle.arrivals, deliveries(daemon.maildir))
        log(f"{daemon.name}: {asdict(fig)}")
    return list(figures.values()), trickle, loads


def _sample_loads(into: list[float], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        into.append(os.getloadavg()[0])
        time.sleep(min(5.0, max(0.01, end - time.monotonic())))


# -- the report ----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _loads(loads: list[float]) -> str:
    if not loads:
        return "not sampled"
    return f"{min(loads):.2f}–{max(loads):.2f} (median {statistics.median(loads):.2f})"


def _table(figs: list[ToolFigures]) -> list[str]:
    lines = [
        "| tool | no-op polls | CPU s | CPU per poll ms | share of one core | RSS MB "
        "| trickle polls | its CPU per poll ms | RSS at end MB | delay median s [95 % CI] "
        "| delay p95 s | delivered | priming s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figs:
        if f.available is not None:
            lines.append(f"| {f.tool} | not run: {f.available} |" + "|" * 11)
            continue
        d, nan = f.delay, float("nan")
        per_poll = 1000 * f.cpu_s / f.polls if f.polls else nan
        trickle_per_poll = 1000 * f.trickle_cpu_s / f.trickle_polls if f.trickle_polls else nan
        share = f.cpu_s / f.window_s if f.window_s else nan
        ci = f"[{d['median_lo_s']:.1f}, {d['median_hi_s']:.1f}]" if "median_lo_s" in d else ""
        lines.append(
            f"| {f.tool} | {f.polls:,} | {f.cpu_s:.2f} | {per_poll:.2f} | {share:.1%} | "
            f"{f.rss_kb / 1024:.1f} | {f.trickle_polls:,} | {trickle_per_poll:.2f} | "
            f"{f.end_rss_kb / 1024:.1f} | {d.get('median_s', nan):.1f} {ci} | "
            f"{d.get('p95_s', nan):.1f} | {d.get('count', 0)}/"
            f"{d.get('count', 0) + d.get('missing', 0)} | {f.prime_s:.0f} |"
        )
    return lines


def _goals(args: argparse.Namespace, pk: ToolFigures, baselines: dict[int, int]) -> list[str]:
    interval = args.drive or args.interval
    per_poll = 1000 * pk.cpu_s / pk.polls
    core = pk.cpu_s / pk.window_s
    at_interval = per_poll / 1000 * args.users / interval
    lines = [
        "## Goals (issue 17)",
        "",
        f"- CPU per no-op poll, TLS handshake included: {per_poll:.2f} ms "
        f"(goal ≤ {GOAL_POLL_MS:g} ms): {verdict(per_poll <= GOAL_POLL_MS)}",
    ]
    for count, rss in sorted(baselines.items()):
        per_account = (pk.rss_kb - rss) * 1024 / (args.users - count) / 1000
        lines.append(
            f"- memory per account: ({pk.rss_kb / 1024:.1f} MiB with {args.users:,} − "
            f"{rss / 1024:.1f} MiB with {count}) / {args.users - count:,} = "
            f"{per_account:.1f} KB (goal ≤ {GOAL_ACCOUNT_KB:g} KB): "
            f"{verdict(per_account <= GOAL_ACCOUNT_KB)}"
        )
    lines.append(
        f"- the whole service: {core:.1%} of one core over the no-op window "
        f"({at_interval:.1%} from CPU per poll × {args.users:,} accounts / {interval:g} s;"
        f" goal < {GOAL_CORE:.0%}): {verdict(core < GOAL_CORE)}"
    )
    d = pk.delay
    if d.get("count"):
        goal = interval / 2 + 1
        ci = (
            f", 95 % confidence interval of the median [{d['median_lo_s']:.1f}, "
            f"{d['median_hi_s']:.1f}] s"
            if "median_lo_s" in d
            else ""
        )
        lines.append(
            f"- delivery delay: median {d['median_s']:.1f} s{ci}, p95 {d['p95_s']:.1f} s, "
            f"{int(d['count'])} messages (goal median ≤ {goal:g} s): "
            f"{verdict(d['median_s'] <= goal)}"
        )
    return lines


def render(args: argparse.Namespace, figs: list[ToolFigures], baselines: dict[int, int],
           loads: list[float], trickle_loads: list[float], elapsed: float) -> str:  # fmt: skip
    interval = args.drive or args.interval
    lines = [
        "# Service benchmark results",
        "",
        "Generated by `bench/run service` — do not edit by hand. See bench/README.md "
        "(Round 10) and bench/service.py.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPUs (nproc): {os.cpu_count()}; kernel: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()}",
        f"- command: `bench/run service {' '.join(args.argv)}`; total {elapsed / 60:.1f} min",
        f"- {args.users:,} accounts over POP3S (implicit TLS), {args.messages} message(s) "
        f"each; polled every {interval:g} s"
        + (" (driven by check-now: --drive)" if args.drive else "")
        + f"; concurrency {args.concurrency}; no-op window {args.window:.0f} s, then a "
        f"trickle window {args.trickle_window:.0f} s with one new message every "
        f"{args.trickle:g} s to a random account",
        f"- load average (1 min): no-op window {_loads(loads)}; trickle window "
        f"{_loads(trickle_loads)}",
        "",
        *_table(figs),
    ]
    pk = next((f for f in figs if f.tool == "popkeep" and f.available is None), None)
    if pk is not None and pk.polls:
        lines += ["", *_goals(args, pk, baselines)]
    lines += ["", f"Raw figures: {args.work / 'service.json'}.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run service", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=None, help="accounts (default 1000; --quick 5)")
    p.add_argument(
        "--small",
        default=None,
        help="comma list: accounts of each memory baseline (default 10,100; --quick 2; "
        "'' for none)",
    )
    p.add_argument("--messages", type=int, default=3, help="messages per mailbox (default 3)")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        help="seconds of the no-op window (default 300; --quick 6)",
    )
    p.add_argument(
        "--trickle-window",
        type=float,
        default=None,
        help="seconds of the trickle window (default: --window)",
    )
    p.add_argument("--interval", type=int, default=60, help="poll interval, s (default 60)")
    p.add_argument(
        "--drive",
        type=float,
        default=None,
        help="poll every DRIVE s by check-now (and fetchmail -d DRIVE) instead; "
        "for the smoke test (--quick: 2)",
    )
    p.add_argument(
        "--trickle",
        type=float,
        default=None,
        help="seconds between new messages (default 0.5; --quick 0.5)",
    )
    p.add_argument("--concurrency", type=int, default=16, help="[service] concurrency")
    p.add_argument("--tools", default="popkeep,fetchmail", help="comma list (default: both)")
    p.add_argument("--quick", action="store_true", help="smoke test: 5 users, 6 s window")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run popkeep serve under cProfile (runs/popkeep/serve.prof)",
    )
    p.add_argument("--prime-timeout", type=float, default=1200.0)
    p.add_argument(
        "--work",
        type=Path,
        default=BENCH_DIR / "work-service",
        help="work tree, wiped first (default bench/work-service)",
    )
    p.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS-service.md")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    quick = args.quick
    args.users = args.users or (5 if quick else 1000)
    small = args.small if args.small is not None else ("2" if quick else "10,100")
    args.small = [int(n) for n in small.split(",") if n]
    args.window = args.window or (6.0 if quick else 300.0)
    args.trickle_window = args.trickle_window or args.window
    args.trickle = args.trickle or 0.5
    args.drive = args.drive or (2.0 if quick else None)
    args.tools = [t for t in args.tools.split(",") if t]
    for name in args.tools:
        if name not in ("popkeep", "fetchmail"):
            p.error(f"unknown tool {name!r} (popkeep, fetchmail)")
    if args.interval < 60:
        p.error("--interval: popkeep serve polls at most once a minute (use --drive)")
    if not all(0 < n < args.users for n in args.small):
        p.error("--small: each between 1 and --users − 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work = args.work.resolve()
    started = time.time()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        dovecot = Dovecot.start(args.work / "dovecot", users=(), password=PASSWORD)
        stack.callback(dovecot.stop)
        users = make_users(dovecot, args.users, args.messages)
        log(f"{len(users)} users with {args.messages} message(s) each")
        baselines: dict[int, int] = {}
        if "popkeep" in args.tools:
            for count in args.small:
                baselines[count] = baseline_rss(args, dovecot, users, count)
                log(f"baseline: {count} accounts, RSS {baselines[count]} KiB")
        figs, trickle, loads = measure_windows(args, dovecot, users)
    elapsed = time.time() - started
    saved = {"figures": [asdict(f) for f in figs], "baseline_rss_kb": baselines,
             "loads": loads, "trickle_loads": trickle.loads, "elapsed": elapsed,
             "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    (args.work / "service.json").write_text(json.dumps(saved, indent=1))
    args.results.write_text(render(args, figs, baselines, loads, trickle.loads, elapsed))
    log(f"wrote {args.results} ({elapsed:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
