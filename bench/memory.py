"""Peak memory of `popkeep fetch` against message size and mailbox size (issue 3).

Not a timed test: run it by hand, it prints a table (Markdown) to paste into
bench/README.md under "Bounded memory".

    .venv/bin/python bench/memory.py                 # 1/20/200 MB message, 200/2k/20k messages
    .venv/bin/python bench/memory.py --quick         # 1/20 MB, 200/2k messages
    .venv/bin/python bench/memory.py --kept          # 20k/200k kept on the server

Big messages are served by the scripted server (popkeep.testing.server, in this
process) from mailgen.big_message, streamed, never held whole; mailboxes by a
private Dovecot (tests/fixtures/dovecot.py) filled with realistic_mailbox(size_profile
= "small"). Each `popkeep fetch` runs in a fresh intermediate Python process that
reports resource.getrusage(RUSAGE_CHILDREN).ru_maxrss, so every figure is the
peak resident set of that one popkeep process (VmHWM), start-up included.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures: not in the wheel

from tests.fixtures.dovecot import Dovecot

from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import big_message, realistic_mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

MB = 1_000_000
_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _config(base: Path, port: int, user: str, password: str, tls: str, ca: Path | None) -> Path:
    ca_line = f'ca_file = "{ca}"\n' if ca else ""
    path = base / "config.toml"
    path.write_text(
        f'[state]\npath = "{base / "state.db"}"\n\n'
        f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{base / "Maildir"}"\n\n'
        f'[[account]]\nname = "bench"\nhost = "127.0.0.1"\nport = {port}\ntls = "{tls}"\n'
        f'{ca_line}user = "{user}"\npassword = "{password}"\ndelete_after = "never"\n'
        'max_message_size = "1GB"\n'
    )
    path.chmod(0o600)
    return path


def peak_rss(config: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one `popkeep -c config fetch`; raises if it failed."""
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    elapsed = time.monotonic() - started
    if out[0] != "0":
        raise SystemExit(f"popkeep fetch exited {out[0]} for {config}")
    return int(out[1]) / 1024, elapsed  # ru_maxrss is in KiB on Linux


def big_message_rows(sizes: list[int], work: Path) -> list[tuple[str, float, float]]:
    rows = []
    for size in sizes:
        box = Mailbox()
        box.add_stream(functools.partial(big_message, size, seed=1), size, f"big-{size}")
        server = ScriptedPOP3Server(box, user="bench", password="bench-pw")
        with ServerThread(server) as thread:
            base = Path(tempfile.mkdtemp(dir=work))
            config = _config(base, thread.port, "bench", "bench-pw", "none", None)
            rss, secs = peak_rss(config)
        rows.append((f"one message of {size // MB} MB", rss, secs))
        print(f"  {rows[-1][0]}: {rss:.1f} MiB in {secs:.1f}s", file=sys.stderr)
    return rows


def mailbox_rows(counts: list[int], work: Path) -> list[tuple[str, float, float]]:
    rows = []
    dovecot = Dovecot.start()
    try:
        for count in counts:
            user = f"mem{count}"
            dovecot.add_user(user)
            dovecot.add_messages(user, realistic_mailbox(count, seed=5, size_profile="small"))
            base = Path(tempfile.mkdtemp(dir=work))
            config = _config(base, dovecot.pop3_port, user, dovecot.password, "starttls",
                             dovecot.ca_file)
            rss, secs = peak_rss(config)
            rows.append((f"{count:,} messages (≈ 11 KB each)", rss, secs))
            print(f"  {rows[-1][0]}: {rss:.1f} MiB in {secs:.1f}s", file=sys.stderr)
            rss2, secs2 = peak_rss(config)  # nothing new: listing + state only
            rows.append((f"{count:,} messages, nothing new", rss2, secs2))
    finally:
        dovecot.stop()
    return rows


def _kept_message(i: int) -> bytes:
    return (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: kept %d\r\n"
        b"Message-ID: <%d@example.org>\r\n\r\nbody %d\r\n" % (i, i, i)
    )


def kept_rows(counts: list[int], work: Path) -> list[tuple[str, float, float]]:
    """A mailbox kept on the server (issue 16 item 3): the first collection, the
    no-op poll, and a poll under ``delete_after = "0s"`` deleting every message, of
    ``count`` small (≈ 140 bytes) messages from the scripted server, no TLS."""
    rows = []
    for count in counts:
        box = Mailbox((f"uid-{i:08d}-abcdefghij", _kept_message(i)) for i in range(count))
        with ServerThread(ScriptedPOP3Server(box, user="bench", password="bench-pw")) as thread:
            base = Path(tempfile.mkdtemp(dir=work))
            config = _config(base, thread.port, "bench", "bench-pw", "none", None)
            for what in ("first collection", "nothing new", "deleting all"):
                if what == "deleting all":
                    config.write_text(config.read_text().replace('"never"', '"0s"'))
                rss, secs = peak_rss(config)
                rows.append((f"{count:,} kept messages (≈ 140 bytes), {what}", rss, secs))
                print(f"  {rows[-1][0]}: {rss:.1f} MiB in {secs:.1f}s", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    parser.add_argument("--kept", action="store_true",
                        help="only mailboxes kept on the server: 20,000 and 200,000 messages")
    args = parser.parse_args()
    sizes = [1 * MB, 20 * MB] if args.quick else [1 * MB, 20 * MB, 200 * MB]
    counts = [200, 2_000] if args.quick else [200, 2_000, 20_000]
    with tempfile.TemporaryDirectory(prefix="popkeep-mem-") as tmp:
        work = Path(tmp)
        if args.kept:
            rows = kept_rows([20_000, 200_000], work)
        else:
            rows = big_message_rows(sizes, work) + mailbox_rows(counts, work)
    print("| fetch | peak RSS | time |")
    print("|---|---:|---:|")
    for what, rss, secs in rows:
        print(f"| {what} | {rss:.1f} MiB | {secs:.1f} s |")


if __name__ == "__main__":
    main()
