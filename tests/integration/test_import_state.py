"""`popkeep import-state`: mail the previous POP3 client collected is not fetched again.

getmail6, mpop and fetchmail (Debian's packages, scripts/install-test-deps) each
collect a real Dovecot mailbox in keep mode and leave their own state file; then
popkeep imports that file and fetches: only mail that arrived afterwards is
delivered. Thunderbird cannot run here: its ``popstate.dat`` is written by hand in
the format Thunderbird writes (state/foreign.py), against the scripted server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailgen import realistic_mailbox
from popkeep.testing.server import ScriptedPOP3Server

from ..fixtures.dovecot import Dovecot
from .helpers import (
    dovecot_config,
    fetch,
    maildir_messages,
    rewrite_then_reuse,
    server_config,
    stored_messages,
)

pytestmark = pytest.mark.dovecot

TOOL_TIMEOUT = 60.0


def _private(path: Path, text: str) -> Path:
    """Config files with passwords must be 0600 (fetchmail and mpop insist)."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def _maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Where the other client keeps its config, state and Maildir: a directory the
    ``nobody`` user can reach (getmail refuses to deliver as root, see _getmail)."""
    path = Path(tempfile.mkdtemp(prefix="popkeep-import-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str], workdir: Path, **env: str) -> None:
    result = subprocess.run(
        argv, env={**os.environ, "HOME": str(workdir), **env},
        capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False,
    )
    assert result.returncode == 0, (argv[0], result.stdout, result.stderr)


def _mpop(dovecot: Dovecot, user: str, workdir: Path) -> Path:
    state = workdir / "mpop_uidls"
    config = _private(
        workdir / "mpoprc",
        f"defaults\naccount isp\nhost {dovecot.host}\nport {dovecot.pop3_port}\ntls off\n"
        f"user {user}\npassword {dovecot.password}\nauth user\nkeep on\nonly_new on\n"
        f"uidls_file {state}\ndelivery maildir {_maildir(workdir / 'Maildir')}\n",
    )
    _run(["mpop", "-q", "-C", str(config), "isp"], workdir)
    return state


def _fetchmail(dovecot: Dovecot, user: str, workdir: Path) -> Path:
    state = workdir / ".fetchids"
    procmailrc = workdir / "procmailrc"
    procmailrc.write_text(f"DEFAULT={_maildir(workdir / 'Maildir')}/\nLOGFILE=/dev/null\n")
    config = _private(
        workdir / "fetchmailrc",
        "set no bouncemail\nset no syslog\n"
        f"poll {dovecot.host} service {dovecot.pop3_port} protocol POP3 uidl auth password\n"
        f'  user "{user}" password "{dovecot.password}"\n'
        f"  keep no rewrite sslproto ''\n"
        f'  mda "{shutil.which("procmail")} -m {procmailrc}"\n',
    )
    _run(["fetchmail", "-f", str(config), "--idfile", str(state),
          "--pidfile", str(workdir / "fetchmail.pid"), "--nosyslog", "--silent"],
         workdir, FETCHMAILHOME=str(workdir))
    return state


def _getmail(dovecot: Dovecot, user: str, workdir: Path) -> Path:
    maildir = _maildir(workdir / "Maildir")
    deliver_as = ""
    if os.geteuid() == 0:  # getmail refuses to deliver as root
        deliver_as = "user = nobody\n"
        nobody = pwd.getpwnam("nobody")
        for path in (maildir, *(maildir / sub for sub in ("tmp", "new", "cur"))):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    getmaildir = workdir / "getmail"
    getmaildir.mkdir()
    _private(
        getmaildir / "getmailrc",
        f"[retriever]\ntype = SimplePOP3Retriever\nserver = {dovecot.host}\n"
        f"port = {dovecot.pop3_port}\nusername = {user}\npassword = {dovecot.password}\n\n"
        f"[destination]\ntype = Maildir\npath = {maildir}/\n{deliver_as}\n"
        "[options]\nverbose = 0\ndelete = false\nread_all = false\n",
    )
    _run(["getmail", f"--getmaildir={getmaildir}", "--rcfile=getmailrc", "--quiet"], workdir)
    (state,) = getmaildir.glob("oldmail-*")
    return state


TOOLS = {"mpop": _mpop, "fetchmail": _fetchmail, "getmail6": _getmail}


@pytest.mark.parametrize("client", sorted(TOOLS))
def test_what_the_previous_client_collected_is_not_fetched_again(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, workdir: Path,
    capsys: pytest.CaptureFixture[str], client: str,
) -> None:
    dovecot.add_messages(dovecot_user, realistic_mailbox(5, seed=7))
    before = datetime.now(UTC).replace(microsecond=0)
    state_file = TOOLS[client](dovecot, dovecot_user, workdir)
    assert len(maildir_messages(workdir / "Maildir")) == 5  # the client collected them
    later = list(realistic_mailbox(2, seed=8))
    dovecot.add_messages(dovecot_user, later)  # arrived after the switch to popkeep
    config = dovecot_config(dovecot, tmp_path, dovecot_user, delete_after="30d")

    capsys.readouterr()
    code = main(["-c", str(config), "import-state", client, str(state_file), "--account", "isp"])
    assert code == 0
    assert "isp: 5 message(s) marked as collected" in capsys.readouterr().out
    code, data = fetch(config, capsys)
    assert code == 0, data
    assert data["delivered"] == 2  # the two that came later, and nothing else
    assert len(maildir_messages(tmp_path / "Maildir")) == 2

    messages = stored_messages(tmp_path / "state.db")
    firsts = sorted(m.first_retrieved_at for m in messages.values() if m.sha256 is None)
    assert len(firsts) == 5 and all(f is not None and f >= before for f in firsts)
    code, data = fetch(config, capsys)
    assert (code, data["delivered"]) == (0, 0)
    main(["-c", str(config), "import-state", client, str(state_file), "--account", "isp"])
    assert "isp: 0 message(s) marked as collected from" in capsys.readouterr().out


def _popstate(host: str, user: str, lines: list[str]) -> str:
    head = "# POP3 State File\n# This is a generated file!  Do not edit.\n\n"
    return head + f"*{host} {user}\n" + "".join(f"{line}\n" for line in lines)


def test_thunderbirds_popstate_keeps_kept_messages_and_their_times(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A popstate.dat as Thunderbird writes it (hand-written: no Thunderbird here);
    its first-retrieval times are the retention clock.
    ``k`` and ``d`` messages were downloaded, ``b`` (too big, header only) was not."""
    uids = [entry.uid for entry in server.mailbox.snapshot()]
    sizes = {entry.uid: entry.size for entry in server.mailbox.snapshot()}
    then = datetime(2020, 10, 1, 9, 30, tzinfo=UTC)  # long past any delete_after below
    stamp = int(then.timestamp())
    popstate = tmp_path / "popstate.dat"
    popstate.write_text(_popstate("pop.other.example", "someone", ["k other-1 1"]) + _popstate(
        "127.0.0.1", server.user,
        [f"k {uids[0]} {stamp}", f"d {uids[1]} {stamp}", f"b {uids[2]} {stamp}", f"k {uids[3]}"],
    ))
    config = server_config(tmp_path, server, certs, delete_after="30d")
    argv = ["-c", str(config), "import-state", "thunderbird", str(popstate), "--account", "isp"]
    assert main(argv) == 0
    code, data = fetch(config, capsys)
    assert code == 0, data
    assert data["delivered"] == len(uids) - 3
    retrieved = {uid for log in server.sessions for uid in log.retrieved}
    assert retrieved == set(uids) - {uids[0], uids[1], uids[3]}
    # the retention clock is Thunderbird's: those it fetched in 2020 are due, the one
    # without a time counts from the import
    assert server.mailbox.deleted == [uids[0], uids[1]]
    messages = stored_messages(tmp_path / "state.db")
    assert messages[uids[0]].first_retrieved_at == then
    assert messages[uids[1]].first_retrieved_at == then
    assert "other-1" not in messages
    # recorded by this first fetch, before its retention counted their octets
    assert messages[uids[3]].listed_size == sizes[uids[3]]
    assert messages[uids[3]].digest is not None


def test_a_file_without_the_accounts_mailbox_is_refused(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fetchids = tmp_path / ".fetchids"
    fetchids.write_text("someone@pop.other.example uid-1\n")
    config = server_config(tmp_path, server, certs)
    argv = ["-c", str(config), "import-state", "fetchmail", str(fetchids), "--account", "isp"]
    capsys.readouterr()
    assert main(argv) == 78
    err = capsys.readouterr().err
    assert "holds no list for taro at 127.0.0.1 (it holds: someone at pop.other.example)" in err
    assert main([*argv, "--host", "pop.other.example", "--user", "someone"]) == 0


def test_imported_messages_get_their_sizes_so_a_reused_uidl_is_caught(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The file gives UIDLs only; the first poll with nothing new records what LIST
    and TOP say of the imported messages, so STAT's octets tell a later poll that one
    of them changed, and its header digest whether it was rewritten by the server
    (the same message) or replaced under its UIDL (docs/guarantees.md, point 10)."""
    uids = server.mailbox.uids
    fetchids = tmp_path / ".fetchids"
    fetchids.write_text("".join(f"{server.user}@127.0.0.1 {uid}\n" for uid in uids))
    config = server_config(tmp_path, server, certs, delete_after="never")
    argv = ["-c", str(config), "import-state", "fetchmail", str(fetchids), "--account", "isp"]
    assert main(argv) == 0
    for _ in range(2):
        code, data = fetch(config, capsys)
        assert (code, data["delivered"]) == (0, 0)
    rewrite_then_reuse(server, config, tmp_path / "Maildir", capsys)
