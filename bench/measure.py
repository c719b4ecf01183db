"""Running one command and measuring it, and verifying a Maildir.

Measurement: wall time and CPU time (user + system of the tool and every child
it waited for, e.g. fetchmail's MDA processes) to the microsecond, where GNU
time rounds to 10 ms, and peak RSS as GNU time reports it. Before each run the
page cache's dirty data is flushed (``os.sync``), so one tool's writeback is
never charged to the next.

Verification: the multiset of SHA-256 digests of every file in the target
Maildir's ``new/`` and ``cur/`` (CRLF turned into LF, the Maildir form) must
equal the multiset of the source messages' digests. Missing, extra (duplicates)
and altered files are counted; any count above zero fails the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TIME_BIN = "/usr/bin/time"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float
    rss_mb: float
    exit_code: int
    stderr_tail: str


#: ext4 does not reuse an inode freed less than 5 s ago (35 s while its inode table
#: block is dirty: ``recently_deleted()`` in fs/ext4/ialloc.c), and searching past
#: them makes file creation right after deleting a previous run's 20,000 files
#: ≈ 3× slower (measured: 20,000 creates 15 s instead of 5 s). Every tool would pay
#: for whoever ran before it; so after the harness removes anything, ``sync`` and
#: this many seconds pass before the next timed run.
SETTLE_S = 6.0
_last_removal = float("-inf")


def remove_tree(path: Path) -> None:
    """``rm -r path`` (if it exists); the next :func:`run_timed` waits for it to settle."""
    global _last_removal
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        _last_removal = time.monotonic()


def settle() -> None:
    """``sync``, then let :data:`SETTLE_S` pass since the last :func:`remove_tree`."""
    os.sync()
    remaining = _last_removal + SETTLE_S - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)  # a protocol step of the benchmark, not a test's wait


def run_timed(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Measurement:
    """Run ``argv`` and measure it; never raises for a failing or hung tool.

    Wall time is ``time.perf_counter`` around start and reaping; CPU time is the
    kernel's figure for the reaped process tree (``wait4``'s rusage counts every
    child waited for), to the microsecond where GNU time prints 10 ms steps. The
    tool is started by GNU time all the same, for its peak RSS: a process forked
    from this (40 MB) harness would report the harness's RSS as its own peak
    (Linux keeps the pre-exec high-water mark), one forked from GNU time does not.
    GNU time's own share, included in both times, is ≈ 0.5 ms, the same for every
    tool. A tool still running after ``timeout`` is killed with its whole process
    group (exit code -9).
    """
    settle()
    killed = threading.Event()
    report_path = cwd / "time.txt"
    cmd = [TIME_BIN, "-f", "%M", "-o", str(report_path), *argv]
    with open(cwd / "stdout.txt", "wb") as out, open(cwd / "stderr.txt", "wb") as err:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(
                cmd, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True
            )
        except OSError as exc:
            err.write(f"cannot start: {exc}\n".encode())
            code, usage = 127, None
        else:
            watchdog = threading.Timer(timeout, _kill_group, (proc.pid, killed))
            watchdog.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                watchdog.cancel()
            proc.returncode = code = -9 if killed.is_set() else os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
    stderr_tail = (cwd / "stderr.txt").read_bytes()[-2000:].decode("utf-8", "replace")
    if killed.is_set():
        stderr_tail += f"\n[harness] killed after {timeout:.0f} s"
    return Measurement(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime if usage else 0.0,
        rss_mb=_peak_kb(report_path) / 1024,
        exit_code=code,
        stderr_tail=stderr_tail,
    )


def _peak_kb(report_path: Path) -> int:
    """GNU time's ``%M`` (kilobytes); its last line (a failing tool adds one before)."""
    try:
        lines = report_path.read_text().split()
    except OSError:
        return 0
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


def _kill_group(pid: int, killed: threading.Event) -> None:
    killed.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the tool and its children too


def instructions(
    commands: dict[str, list[str]], env: dict[str, str], cwd: Path
) -> dict[str, int] | str:
    """Instructions each command executes (valgrind's callgrind ``Ir``), by name.

    Unlike CPU time, the count does not depend on what else the machine is doing,
    so start-up work can be compared across runs and machines. A string says why
    nothing was counted (valgrind missing, a command failed).
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return "valgrind is not installed (scripts/install-test-deps --bench)"
    counts: dict[str, int] = {}
    for name, argv in commands.items():
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            return f"{name}: exit {done.returncode} under valgrind"
        counts[name] = int(found.group(1))
    return counts


def digest_lf(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def digest_file(path: Path) -> str:
    """SHA-256 of the file in LF form, streamed (a CR split across chunks is kept)."""
    h = hashlib.sha256()
    carry = b""
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            data = carry + chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            if carry:
                data = data[:-1]
            h.update(data.replace(b"\r\n", b"\n"))
    h.update(carry)
    return h.hexdigest()


def maildir_files(maildir: Path) -> Iterable[Path]:
    for sub in ("new", "cur"):
        folder = maildir / sub
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.is_file():
                    yield Path(entry.path)


def maildir_digests(maildir: Path) -> Counter[str]:
    return Counter(digest_file(p) for p in maildir_files(maildir))


def loose_digest_lf(data: bytes) -> str:
    """Digest after collapsing whitespace in the header (folding undone).

    Used only to explain a failure: a tool that re-folds long header fields
    (getmail6 re-serializes every message with Python's email package) alters
    bytes, but loses no content.
    """
    data = data.replace(b"\r\n", b"\n")
    head, sep, body = data.partition(b"\n\n")
    return hashlib.sha256(_WS.sub(b" ", head) + sep + body).hexdigest()


_WS = re.compile(rb"\s+")


@dataclass
class Expected:
    """The source messages, as digest multisets (exact LF form, and loose)."""

    exact: Counter[str] = field(default_factory=Counter)
    loose: Counter[str] = field(default_factory=Counter)
    octets: int = 0  # LF form

    def add(self, message: bytes) -> None:
        self.octets += len(message) - message.count(b"\r\n")
        self.exact[digest_lf(message)] += 1
        self.loose[loose_digest_lf(message)] += 1

    @property
    def count(self) -> int:
        return sum(self.exact.values())


@dataclass(frozen=True)
class Verdict:
    expected: int
    stored: int
    missing: int
    extra: int
    refolded: int = 0  # altered files that match a source message once unfolded

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.stored == self.expected

    @property
    def refold_only(self) -> bool:
        """Every message there, but some with re-folded header fields (bytes altered)."""
        return (
            not self.ok
            and self.stored == self.expected
            and self.refolded == self.missing == self.extra
        )

    def describe(self) -> str:
        if self.ok:
            return f"ok ({self.stored} messages)"
        text = (
            f"FAILED: {self.stored}/{self.expected} stored, {self.missing} missing "
            f"or altered, {self.extra} extra or altered"
        )
        if self.refold_only:
            text = (
                f"bytes altered: header fields re-folded in {self.refolded} of "
                f"{self.expected} messages (content otherwise intact)"
            )
        return text


def verify(maildir: Path, expected: Expected) -> Verdict:
    stored: Counter[str] = Counter()
    altered: list[Path] = []
    for path in maildir_files(maildir):
        digest = digest_file(path)
        stored[digest] += 1
        if digest not in expected.exact:
            altered.append(path)
    missing_c = expected.exact - stored
    extra = sum((stored - expected.exact).values())
    # Explain alterations: how many altered files are a source message re-folded.
    loose_stored = Counter(loose_digest_lf(p.read_bytes()) for p in altered)
    refolded = sum((loose_stored & expected.loose).values())
    return Verdict(expected.count, sum(stored.values()), sum(missing_c.values()), extra, refolded)
