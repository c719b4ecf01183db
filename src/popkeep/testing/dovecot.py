"""A private, real Dovecot for tests and benchmarks, on 127.0.0.1.

This module owns starting, feeding and stopping one Dovecot (Debian's packages,
``/usr/sbin/dovecot``) whose every file lives under one directory. It must not
touch a system Dovecot (``/etc/dovecot``, ``/run/dovecot``, ``/var/lib/dovecot``)
nor listen anywhere but 127.0.0.1. No third-party imports: the test suite, the
benchmark and the demo all use it.

Layout under ``base_dir``::

    dovecot.conf          the whole configuration (nothing from /etc/dovecot)
    passwd.d/<user>       passwd-file passdb, one file per user: ``user:{PLAIN}password``
    tls/, wrong-tls/      test CA + server certificate; an unrelated CA (testing.certs)
    mail/<user>/Maildir/  cur/ new/ tmp/ only
    index/<user>/         Dovecot's index, cache and dovecot-uidlist (INDEX=, CONTROL=)
    run/, state/          Dovecot's own ``base_dir`` and ``state_dir``
    dovecot.log           every log line; dovecot.stderr: what it said before logging

How it is configured, and why:

- ``listen = 127.0.0.1``; ports picked free at start (bind port 0, read, close),
  retried with new ports if Dovecot loses a race for one. Its own ``base_dir``,
  ``state_dir`` and ``instance_name``: it never meets a system Dovecot or
  another instance. Foreground master (``dovecot -F -c``) in its own process
  group, ready when every port accepts a connection; stopped by SIGTERM to
  the group (the master alone waits about a second for idle children).
- ``ssl = yes``, not ``required``, and ``disable_plaintext_auth = no``: the
  plain POP3/IMAP ports offer STLS/STARTTLS but also accept plaintext logins,
  so popkeep's own refusal to send a password in clear can be tested.
- As root. Dovecot refuses uid 0 for mail processes ("userdb returned 0 as
  uid"), so users map to the ``mail`` system user (``first_valid_uid`` lowered
  to it) and the fixture chowns the Maildirs and the files it writes to ``mail``.
  ``mail`` must be able to look paths up down to ``base_dir``: pytest's
  ``tmp_path`` (under ``/tmp/pytest-of-root``, mode 0700, reset by every pytest
  run) cannot be used, hence ``Dovecot.start(None)`` making a directory under
  /tmp. The auth process runs as root (it reads ``passwd.d``, mode 0700); login
  processes stay ``dovenull`` in their chroot. Not root: every process runs as
  the caller, without chroot.
- Users can be added while it runs: a new passwd-file is read at once, whereas
  Dovecot re-reads a changed file at most once a second.
- ``auth_verbose``/``auth_debug`` log every authentication with its user name
  and login session (:meth:`Dovecot.auth_attempts`). ``auth_failure_delay = 0``
  and no anvil penalty socket (``anvil-auth-penalty`` mode 0), so repeated
  wrong passwords from 127.0.0.1 are not slowed down more and more; Dovecot
  still answers a failure only on its next half-second tick.
- ``pop3_uidl_format = %08Xu%08Xv`` (UID and UIDVALIDITY: stable and unique);
  ``pop3_no_flag_updates``; no quota plugin, so no quota. LMTP on TCP with
  ``auth_username_format = %Ln`` so ``RCPT TO:<alice@localhost>`` reaches alice.
- Login services in high-performance mode (``service_count = 0``) and
  ``mail_max_userip_connections = 1000``, so benchmarks measure the client.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import itertools
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from popkeep.testing.certs import make_test_certs

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: As root, mail processes run as this system user (Dovecot refuses uid 0).
MAIL_USER = "mail"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = (
    "install it with scripts/install-test-deps "
    "(apt: dovecot-core dovecot-pop3d dovecot-imapd dovecot-lmtpd openssl)"
)
_BINARY_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")
_SYNC_USER = "popkeep-logsync"  # authenticates only to mark a point in the auth log
_PORT_NAMES = ("pop3_port", "pop3s_port", "imap_port", "imaps_port", "lmtp_port")


class DovecotError(RuntimeError):
    """The private Dovecot could not be started, or misbehaved (test infrastructure)."""


def find_binary() -> Path | None:
    """The ``dovecot`` executable, or ``None`` if Dovecot is not installed."""
    found = shutil.which("dovecot")
    candidates = ([found] if found else []) + list(_BINARY_CANDIDATES)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


class Dovecot:
    """One running private Dovecot; create it with :meth:`start`, end it with :meth:`stop`.

    Every port is on :attr:`host`. Users share :attr:`password`. Mailboxes are
    Maildirs the test may fill directly (:meth:`add_messages`) while Dovecot
    runs: Dovecot picks new files up on the next session.
    """

    host: str
    pop3_port: int
    pop3s_port: int
    imap_port: int
    imaps_port: int
    lmtp_port: int
    ca_file: Path
    wrong_ca_file: Path
    password: str

    def __init__(self, base_dir: Path, password: str) -> None:
        """Use :meth:`start`; this only sets up paths."""
        self.base_dir = base_dir
        self.host = HOST
        self.password = password
        self.ca_file = base_dir / "tls" / "ca.pem"
        self.wrong_ca_file = base_dir / "wrong-tls" / "ca.pem"
        self.log_file = base_dir / "dovecot.log"
        self._passwd = base_dir / "passwd.d"
        self._users: list[str] = []
        self._seq = itertools.count(1)
        self._proc: subprocess.Popen[bytes] | None = None
        self._who = _Identity.current()
        self._owns_base_dir = False

    @classmethod
    def start(
        cls,
        base_dir: Path | None = None,
        users: Sequence[str] = ("alice", "bob"),
        password: str = "secret",  # noqa: S107 - a throw-away test server's password
    ) -> Dovecot:
        """Generate config and certificates under ``base_dir``, start Dovecot, wait until ready.

        ``base_dir=None`` makes a fresh directory under the system temp dir,
        which :meth:`stop` removes. As root, ``base_dir`` must be reachable by
        the ``mail`` user: pytest's ``tmp_path`` is not (see the module docstring).
        Raises :class:`DovecotError` if Dovecot is not installed, the directory
        is unreachable, or Dovecot does not come up within :data:`START_TIMEOUT`
        seconds (the message holds its log).
        """
        binary = find_binary()
        if binary is None:
            raise DovecotError(f"dovecot not found; {INSTALL_HINT}")
        owned = base_dir is None
        if base_dir is None:
            base_dir = Path(tempfile.mkdtemp(prefix="popkeep-dovecot-"))
        base_dir = Path(base_dir).resolve()
        base_dir.mkdir(parents=True, exist_ok=True)
        server = cls(base_dir, password)
        server._owns_base_dir = owned
        try:
            server._prepare(users)
            server._launch(binary)
        except BaseException:
            server.stop()
            raise
        return server

    def _prepare(self, users: Sequence[str]) -> None:
        base_dir = self.base_dir
        _make_reachable(base_dir)
        make_test_certs(base_dir / "tls")
        make_test_certs(base_dir / "wrong-tls")  # only its CA is used
        for sub in ("mail", "index"):
            (base_dir / sub).mkdir(exist_ok=True)
            self._who.own(base_dir / sub)
        self._write_passwd(_SYNC_USER)
        for user in users:
            self.add_user(user)

    # -- users and mailboxes ------------------------------------------------

    @property
    def users(self) -> tuple[str, ...]:
        """Every user this instance knows, in the order they were added."""
        return tuple(self._users)

    def add_user(self, user: str) -> None:
        """Add ``user`` (password :attr:`password`) with an empty Maildir; works while running.

        The user can log in at once. Adding a known user again changes nothing
        (its messages stay).
        """
        maildir = self.maildir(user)
        for directory in (
            maildir.parent,
            maildir,
            maildir / "cur",
            maildir / "new",
            maildir / "tmp",
        ):
            directory.mkdir(exist_ok=True)
            self._who.own(directory)
        if user not in self._users:
            self._users.append(user)
            self._write_passwd(user)

    def _write_passwd(self, user: str) -> None:
        """One passwd-file per user: a new file is read at once (Dovecot re-reads a
        changed file at most once a second), and a file missing means "unknown user"."""
        self._passwd.mkdir(mode=0o700, exist_ok=True)
        tmp = self._passwd / f".{user}.tmp"
        tmp.write_text(f"{user}:{{PLAIN}}{self.password}\n", encoding="utf-8")
        tmp.replace(self._passwd / user)  # atomic: Dovecot never reads half a file

    def maildir(self, user: str) -> Path:
        """The user's Maildir (``cur/``, ``new/``, ``tmp/``; Dovecot's index lives elsewhere)."""
        _check_user(user)
        return self.base_dir / "mail" / user / "Maildir"

    def add_messages(self, user: str, messages: Iterable[bytes]) -> None:
        """Deliver ``messages`` (CRLF or LF) into the user's ``new/``, in order.

        Stored with LF line ends, as Dovecot's Maildir expects, written to
        ``tmp/`` then renamed (atomic). The name carries ``S=`` (size) and ``W=``
        (size with CRLF, what POP3 LIST reports), so Dovecot need not read the
        file to list it; names sort in the order given, which is also the UID order.
        """
        maildir = self.maildir(user)
        stamp = int(time.time())
        for data in messages:
            body = data.replace(b"\r\n", b"\n")
            # Dovecot's virtual size: every LF not preceded by CR counts twice.
            vsize = len(body) + body.count(b"\n") - body.count(b"\r\n")
            name = (
                f"{stamp}.P{os.getpid()}Q{next(self._seq):08d}.popkeep-test,S={len(body)},W={vsize}"
            )
            tmp = maildir / "tmp" / name
            with tmp.open("xb") as handle:
                handle.write(body)
            self._who.own(tmp)
            tmp.rename(maildir / "new" / name)

    def message_files(self, user: str) -> list[Path]:
        """The user's message files (``new/`` and ``cur/``) in Dovecot's UID order."""
        maildir = self.maildir(user)
        files = [p for sub in ("new", "cur") for p in (maildir / sub).iterdir() if p.is_file()]
        return sorted(files, key=_maildir_order)

    def message_count(self, user: str) -> int:
        """How many messages the user's Maildir holds now (``new/`` + ``cur/``)."""
        return len(self.message_files(user))

    def messages(self, user: str) -> list[bytes]:
        """The user's messages as stored (LF line ends), in UID order."""
        for _ in range(10):
            try:
                return [path.read_bytes() for path in self.message_files(user)]
            except FileNotFoundError:  # a session moved a file from new/ to cur/: list again
                continue
        raise DovecotError(f"{user}'s Maildir kept changing while being read")

    def clear(self, user: str) -> None:
        """Empty the user's mailbox and drop Dovecot's index and uidlist for it.

        The next session starts a new UIDVALIDITY with UID 1. Call it only while
        no session of that user is open.
        """
        maildir = self.maildir(user)
        for sub in ("new", "cur", "tmp"):
            for path in (maildir / sub).iterdir():
                path.unlink()
        shutil.rmtree(self.base_dir / "index" / user, ignore_errors=True)

    # -- logs ---------------------------------------------------------------

    def log_text(self) -> str:
        """Everything Dovecot logged so far (startup errors included)."""
        parts = [
            p.read_text(errors="replace") for p in (self.log_file, self._stderr_file) if p.exists()
        ]
        return "".join(parts)

    def auth_attempts(self, user: str) -> int:
        """How many authentications (any outcome, any mechanism) Dovecot's auth saw for ``user``.

        Counts the passdb lookups the auth process logs (``auth_debug``) for
        client logins, which carry a login session id (``<...>``); LMTP's
        user-exists check has none and is not counted. Before counting, it
        waits until a marker authentication of its own shows in the log: the
        auth process writes its lines in order, so every attempt that finished
        before this call is counted.
        """
        self._sync_auth_log()
        pattern = re.compile(
            rf"auth: Debug: passwd-file\({re.escape(user.lower())},(?:[^,()<]*,)?<[^>]*>\): "
            r"Performing passdb lookup"
        )
        return len(pattern.findall(self.log_file.read_text(errors="replace")))

    @property
    def _stderr_file(self) -> Path:
        return self.base_dir / "dovecot.stderr"

    def _sync_auth_log(self) -> None:
        marker = f"logsync-{uuid.uuid4().hex}"
        _auth_request(self.base_dir / "run" / "auth-client", self.password, marker)
        deadline = time.monotonic() + START_TIMEOUT
        while marker not in self.log_file.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise DovecotError(f"auth log marker {marker} never appeared")
            time.sleep(0.005)

    # -- process ------------------------------------------------------------

    def _launch(self, binary: Path) -> None:
        for attempt in range(3):
            ports = _free_ports(len(_PORT_NAMES))
            for name, port in zip(_PORT_NAMES, ports, strict=True):
                setattr(self, name, port)
            config = self.base_dir / "dovecot.conf"
            config.write_text(self._render_config(), encoding="utf-8")
            with self._stderr_file.open("ab") as err:
                self._proc = subprocess.Popen(
                    [str(binary), "-F", "-c", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    start_new_session=True,  # its own process group: see _terminate()
                )
            if self._wait_ready(ports):
                logger.debug("dovecot ready in %s (pid %s)", self.base_dir, self._proc.pid)
                return
            text = self.log_text()
            self._terminate()
            if "Address already in use" not in text:
                break
            logger.debug("dovecot lost a port race (attempt %d); new ports", attempt + 1)
        raise DovecotError(f"dovecot did not start; log:\n{self.log_text()}")

    def _wait_ready(self, ports: Sequence[int]) -> bool:
        """Wait until the master has logged its start-up (it does so once every listener
        exists) and every port accepts a connection; False if Dovecot exited or timed out."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(ports)
        while pending or not self._logged_start_up():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                return False
            try:
                with socket.create_connection((HOST, pending[0]), timeout=1.0):
                    pending.pop(0)
            except (OSError, IndexError):
                time.sleep(0.005)
        return True

    def _logged_start_up(self) -> bool:
        return self.log_file.exists() and "starting up for" in self.log_file.read_text(
            errors="replace"
        )

    def stop(self) -> None:
        """Terminate Dovecot (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`) and wait for it.

        Idempotent. Removes ``base_dir`` if :meth:`start` made it.
        """
        self._terminate()
        if self._owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _terminate(self) -> None:
        """SIGTERM to Dovecot's whole process group: the master alone would wait about a
        second for idle login processes to notice; all together they exit at once."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Dovecot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _render_config(self) -> str:
        return _render_config(self, self._who)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    """Signal the process group Dovecot's master leads (``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _check_user(user: str) -> None:
    """User names become paths and passwd-file lines: allow a safe alphabet only."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", user):
        raise ValueError(f"unsafe test user name {user!r}")


def _maildir_order(path: Path) -> tuple[int, str]:
    """Dovecot assigns UIDs to new files by their time prefix, then the rest of the name."""
    stamp, _, rest = path.name.partition(".")
    return (int(stamp) if stamp.isdigit() else 0, rest)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _auth_request(socket_path: Path, password: str, session: str) -> None:
    """Authenticate :data:`_SYNC_USER` on Dovecot's auth-client socket, tagged ``session``.

    Dovecot auth protocol 1.2: VERSION/CPID handshake, the server lists its
    mechanisms and ends with DONE, then ``AUTH <id> PLAIN ... resp=<base64>``
    gets ``OK``/``FAIL <id>``. A success, because Dovecot holds failures back
    for up to half a second. The session id appears in every auth log line.
    """
    resp = base64.b64encode(f"\0{_SYNC_USER}\0{password}".encode()).decode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(START_TIMEOUT)
        sock.connect(str(socket_path))
        sock.sendall(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
        _read_until(sock, b"DONE\n")
        sock.sendall(
            f"AUTH\t1\tPLAIN\tservice=popkeep-logsync\tsession={session}\tresp={resp}\n".encode()
        )
        _read_until(sock, b"\n")


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            raise DovecotError(f"auth socket closed early: {data!r}")
        data += chunk
    return data


@dataclass(frozen=True)
class _Identity:
    """Who Dovecot's processes run as, and who owns the mail files: see the module docstring."""

    mail_uid: int
    mail_gid: int
    internal_user: str
    internal_group: str
    login_user: str
    auth_user: str
    login_chroot: str

    @classmethod
    def current(cls) -> _Identity:
        if os.getuid() == 0:
            mail = pwd.getpwnam(MAIL_USER)
            return cls(mail.pw_uid, mail.pw_gid, "dovecot", "dovecot", "dovenull", "root", "login")
        name = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        return cls(os.getuid(), os.getgid(), name, group, name, name, "")

    def own(self, path: Path) -> None:
        """Give ``path`` to the mail user (a no-op unless we are root)."""
        if os.getuid() == 0:
            os.chown(path, self.mail_uid, self.mail_gid)


def _make_reachable(base_dir: Path) -> None:
    """Let the mail user reach ``base_dir``: search-only permission (o+x) on it, checked above it.

    Dovecot refuses uid 0 for mail processes, so as root they run as ``mail``
    and need to look paths up through every directory above their Maildir.
    Directories above ``base_dir`` are not ours to change: pytest's temp root
    (``/tmp/pytest-of-root``, mode 0700, reset by every pytest run) is one.
    """
    if os.getuid() != 0:
        return
    base_dir.chmod(stat.S_IMODE(base_dir.stat().st_mode) | stat.S_IXOTH)
    for directory in base_dir.parents:
        if not directory.stat().st_mode & stat.S_IXOTH:
            raise DovecotError(
                f"as root, Dovecot's mail processes run as {MAIL_USER!r} and cannot reach "
                f"{base_dir}: {directory} is not searchable by others (o+x). Use a base_dir "
                "under /tmp (Dovecot.start(None) makes one), not pytest's tmp_path."
            )


def _render_config(dc: Dovecot, who: _Identity) -> str:
    """The whole dovecot.conf; nothing is included from /etc/dovecot."""
    base, tls = dc.base_dir, dc.base_dir / "tls"
    chroot = who.login_chroot
    return f"""\
# Generated by popkeep.testing.dovecot; see that module's docstring.
base_dir = {base}/run
state_dir = {base}/state
instance_name = popkeep-test-{uuid.uuid4().hex[:8]}
listen = {HOST}
protocols = pop3 imap lmtp
log_path = {dc.log_file}
info_log_path = {dc.log_file}
debug_log_path = {dc.log_file}
default_internal_user = {who.internal_user}
default_internal_group = {who.internal_group}
default_login_user = {who.login_user}
first_valid_uid = {who.mail_uid}
auth_verbose = yes
auth_debug = yes
auth_failure_delay = 0
auth_mechanisms = plain login cram-md5 apop
disable_plaintext_auth = no
ssl = yes
ssl_cert = <{tls}/server.pem
ssl_key = <{tls}/server.key
ssl_min_protocol = TLSv1.2
mail_location = maildir:{base}/mail/%u/Maildir:INDEX={base}/index/%u:CONTROL={base}/index/%u
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
pop3_no_flag_updates = yes
postmaster_address = postmaster@localhost
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dc.base_dir}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={who.mail_uid} gid={who.mail_gid} home={base}/mail/%u
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  user = {who.auth_user}
}}
service pop3-login {{
  chroot = {chroot}
  service_count = 0
  inet_listener pop3 {{
    port = {dc.pop3_port}
  }}
  inet_listener pop3s {{
    port = {dc.pop3s_port}
    ssl = yes
  }}
}}
service imap-login {{
  chroot = {chroot}
  service_count = 0
  inet_listener imap {{
    port = {dc.imap_port}
  }}
  inet_listener imaps {{
    port = {dc.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
  inet_listener lmtp {{
    address = {HOST}
    port = {dc.lmtp_port}
  }}
}}
protocol lmtp {{
  auth_username_format = %Ln
}}
"""
