"""``popkeep demo``: the whole pipeline on embedded defaults, nothing to configure.

Starts the built-in POP3 server on 127.0.0.1 (STLS with a throwaway certificate
authority when ``openssl`` is available) serving a generated mailbox (ASCII,
UTF-8, ISO-2022-JP and Shift_JIS mail, multipart with attachments, one message
of several MB), writes a real config file, and runs the same code path as
``popkeep fetch`` into a local Maildir with SQLite state. Then shows what was
fetched, what stays on the server, and when it will be deleted.
"""

from __future__ import annotations

import email.parser
import email.policy
import tempfile
from pathlib import Path

import click

from popkeep.cli.common import handles_errors, log_options
from popkeep.cli.render import fetch_line, schedule_lines

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a throwaway account of the built-in server


def _config_text(base: Path, port: int, ca_file: Path | None) -> str:
    tls = f'tls = "starttls"\nca_file = "{ca_file}"' if ca_file else 'tls = "none"'
    return f"""# Written by `popkeep demo`. Try: popkeep -c {base / "config.toml"} status
[state]
path = "{base / "state.db"}"

[[sink]]
name = "demo"
type = "maildir"
path = "{base / "Maildir"}"

[[account]]
name = "demo"
host = "127.0.0.1"
port = {port}
{tls}
user = "{DEMO_USER}"
password = "{DEMO_PASSWORD}"
sinks = ["demo"]
delete_after = "14d"
"""


def _subjects(maildir: Path, limit: int = 8) -> list[str]:
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    lines = []
    for path in sorted((maildir / "new").iterdir())[:limit]:
        with path.open("rb") as fh:
            headers = parser.parse(fh)
        subject = str(headers.get("Subject", "(no subject)"))
        lines.append(f"  {path.stat().st_size:>9,} B  {subject[:60]}")
    return lines


def _run(base: Path) -> list[str]:
    from popkeep.app import load_app
    from popkeep.cli.quick.poll import poll
    from popkeep.testing.certs import make_test_certs
    from popkeep.testing.mailbox import Mailbox
    from popkeep.testing.mailgen import demo_mailbox
    from popkeep.testing.server import ScriptedPOP3Server, ServerThread

    try:
        certs = make_test_certs(base / "certs")
    except Exception:  # no openssl CLI: the demo still runs, in plaintext on loopback
        certs = None
    mailbox = Mailbox.from_messages(demo_mailbox())
    server = ScriptedPOP3Server(
        mailbox,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        tls_context=certs.server_context() if certs else None,
    )
    # The server runs on its own loop in a thread, so the fetches below take the
    # path `popkeep fetch` takes (cli.quick.poll: passes begun without an event loop).
    with ServerThread(server) as serving:
        port = serving.port
        config = base / "config.toml"
        config.write_text(_config_text(base, port, certs.ca_file if certs else None))
        config.chmod(0o600)
        app = load_app(config)
        try:
            first = poll(app)
            again = poll(app)
            planned = app.schedule()
            now = app.clock.now()
        finally:
            app.close()
    out = [f"built-in POP3 server on 127.0.0.1:{port} with {len(mailbox.uids)} messages"]
    out += ["first fetch:  " + fetch_line(r) for r in first]
    out += ["second fetch: " + fetch_line(r) for r in again]
    out += ["", "in the Maildir (first few, subjects decoded):", *_subjects(base / "Maildir")]
    out += ["", "what stays on the server (delete_after = 14d):", *schedule_lines(planned, now)]
    out += ["", f"Maildir: {base / 'Maildir'}", f"state:   {base / 'state.db'}",
            f"config:  {config}  (try: popkeep -c {config} status)"]
    return out


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the demo Maildir, state and config (default: a new temp dir).",
)
@log_options
@handles_errors
def demo(directory: Path | None) -> int:
    """Run the embedded demo: built-in POP3 server → local Maildir → SQLite state."""
    base = directory or Path(tempfile.mkdtemp(prefix="popkeep-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    for line in _run(base.resolve()):
        click.echo(line)
    return 0
