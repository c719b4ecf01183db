"""How each tool is configured and started for one benchmark run.

Every tool gets, per run, a fresh work directory holding its configuration, its
state (mpop's UID list, fetchmail's .fetchids, getmail's oldmail file,
popkeep's state db) and the target ``Maildir/`` — all on the same disk. Every
tool runs in keep mode (never DELE), logs in with USER/PASS, and is told
explicitly whether to use plain POP3 (``tls="none"``, cleartext login on
loopback) or implicit TLS (POP3S, verified against the fixture's CA).

A tool is a :class:`Tool`: ``prepare(run)`` writes its files and returns the
command line and environment. Nothing here measures or verifies.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


@dataclass(frozen=True)
class Server:
    """Where to fetch from."""

    host: str
    port: int
    tls: bool  # implicit TLS (POP3S) when true; plain POP3 otherwise
    ca_file: Path
    user: str
    password: str


@dataclass(frozen=True)
class Run:
    """One run of one tool: its private directory and the server."""

    workdir: Path
    server: Server

    @property
    def maildir(self) -> Path:
        return self.workdir / "Maildir"


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]


def _write_private(path: Path, text: str) -> Path:
    """Config files with passwords must be 0600 (fetchmail and mpop insist)."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def _base_env(run: Run) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCH_PASS"] = run.server.password
    env["HOME"] = str(run.workdir)  # nobody reads the real ~/.fetchmailrc etc.
    return env


def make_maildir(path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)


class Tool:
    """A fetcher under test. Subclasses set ``name`` and implement ``prepare``."""

    name = ""
    ok_codes: frozenset[int] = frozenset({0})

    def available(self) -> str | None:
        """``None`` if runnable, else why not (shown in the results)."""
        return None

    def prepare(self, run: Run) -> Command:
        raise NotImplementedError


def _popkeep_bin(env_var: str = "POPKEEP_BIN") -> str:
    override = os.environ.get(env_var)
    if override or env_var != "POPKEEP_BIN":
        return override or ""
    venv = REPO / ".venv" / "bin" / "popkeep"
    if venv.exists():
        return str(venv)
    return shutil.which("popkeep") or "popkeep"


def popkeep_python(binary: str | None = None) -> str:
    """The Python that runs popkeep (``binary``, default the one under test): its script's
    ``#!`` interpreter (a venv's, pipx's), else the one running the benchmark."""
    binary = binary or _popkeep_bin()
    script = shutil.which(binary)
    try:
        with open(script or binary, "rb") as f:
            first = f.readline(512)
    except OSError:
        return sys.executable
    interpreter = first[2:].split()[0].decode() if first.startswith(b"#!") else ""
    return interpreter if interpreter and Path(interpreter).exists() else sys.executable


def popkeep_config(run: Run) -> str:
    """The only popkeep-specific knowledge in the benchmark: its TOML config."""
    s = run.server
    tls_lines = f'tls = "implicit"\nca_file = "{s.ca_file}"\n' if s.tls else 'tls = "none"\n'
    return (
        "[state]\n"
        f'path = "{run.workdir / "state.db"}"\n\n'
        "[[sink]]\n"
        'name = "m"\ntype = "maildir"\n'
        f'path = "{run.maildir}"\n\n'
        "[[account]]\n"
        'name = "bench"\n'
        f'host = "{s.host}"\nport = {s.port}\n'
        f"{tls_lines}"
        f'user = "{s.user}"\npassword_env = "BENCH_PASS"\nauth = "user"\n'
        'delete_after = "never"\nsinks = ["m"]\n'
    )


class Popkeep(Tool):
    """popkeep: the build under test (``$POPKEEP_BIN``, default ``.venv/bin/popkeep``),
    or, as ``popkeep-old``, the build it is compared with (``$POPKEEP_OLD_BIN``)."""

    def __init__(self, name: str = "popkeep", env_var: str = "POPKEEP_BIN") -> None:
        self.name = name
        self.env_var = env_var

    @property
    def binary(self) -> str:
        return _popkeep_bin(self.env_var)

    def available(self) -> str | None:
        binary = self.binary
        if not binary:
            return f"${self.env_var} is not set (bench/run --old-bin PATH)"
        if not (Path(binary).exists() or shutil.which(binary)):
            return f"{binary} not found"
        return None

    def precompile(self) -> None:
        """Write popkeep's ``.pyc`` files, as ``pip install`` does. With
        PYTHONDONTWRITEBYTECODE set (it is on the machines this runs on), a stale or
        missing ``.pyc`` would be recompiled in every run and charged to popkeep."""
        python = Path(self.binary).with_name("python")
        if not python.exists():
            return  # an installed popkeep: pip compiled it
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        code = (
            "import compileall, os, popkeep; "
            "compileall.compile_dir(os.path.dirname(popkeep.__file__), quiet=1)"
        )
        subprocess.run([str(python), "-c", code], env=env, check=True)

    def prepare(self, run: Run) -> Command:
        make_maildir(run.maildir)
        config = _write_private(run.workdir / "popkeep.toml", popkeep_config(run))
        return Command([self.binary, "-c", str(config), "fetch"], _base_env(run))


class Mpop(Tool):
    """mpop: native Maildir delivery, pipelining on, no Received header."""

    name = "mpop"

    def available(self) -> str | None:
        return None if shutil.which("mpop") else "mpop not installed"

    def prepare(self, run: Run) -> Command:
        s = run.server
        make_maildir(run.maildir)
        tls = f"tls on\ntls_starttls off\ntls_trust_file {s.ca_file}\n" if s.tls else "tls off\n"
        config = _write_private(
            run.workdir / "mpoprc",
            "defaults\n"
            "account bench\n"
            f"host {s.host}\nport {s.port}\n{tls}"
            f'user {s.user}\npasswordeval echo "$BENCH_PASS"\nauth user\n'
            "keep on\nonly_new on\npipelining auto\nreceived_header off\n"
            f"uidls_file {run.workdir / 'mpop_uidls'}\n"
            f"delivery maildir {run.maildir}\n",
        )
        return Command(["mpop", "-q", "-C", str(config), "bench"], _base_env(run))


class Fetchmail(Tool):
    """fetchmail with procmail as the MDA writing a Maildir (fetchmail has no Maildir).

    procmail is the classic companion, written in C, and delivers to a Maildir
    when the destination ends in ``/`` (tmp → new). One procmail process per
    message is how fetchmail's MDA mode works.
    """

    name = "fetchmail"
    ok_codes = frozenset({0, 1})  # 1: "no mail" (the no-op poll)

    def available(self) -> str | None:
        for binary in ("fetchmail", "procmail"):
            if not shutil.which(binary):
                return f"{binary} not installed"
        return None

    def prepare(self, run: Run) -> Command:
        s = run.server
        make_maildir(run.maildir)
        procmailrc = run.workdir / "procmailrc"
        procmailrc.write_text(f"DEFAULT={run.maildir}/\nLOGFILE=/dev/null\n")
        tls = (
            # fetchmail checks the name it connects to (127.0.0.1) against the
            # CN and ignores the IP-address SAN; the chain is still verified.
            f"ssl sslcertck sslcertfile {s.ca_file} sslcommonname localhost"
            if s.tls
            else "sslproto ''"  # plain POP3: no opportunistic STLS
        )
        mda = f"{shutil.which('procmail')} -m {procmailrc}"
        config = _write_private(
            run.workdir / "fetchmailrc",
            "set no bouncemail\nset no syslog\n"
            f"poll {s.host} service {s.port} protocol POP3 uidl auth password\n"
            f'  user "{s.user}" password "{s.password}"\n'
            f'  keep no rewrite {tls}\n  mda "{mda}"\n',
        )
        env = _base_env(run)
        env["FETCHMAILHOME"] = str(run.workdir)
        argv = [
            "fetchmail",
            "-f",
            str(config),
            "--idfile",
            str(run.workdir / ".fetchids"),
            "--pidfile",
            str(run.workdir / "fetchmail.pid"),
            "--invisible",
            "--nosyslog",
            "--silent",
        ]
        return Command(argv, env)


class Getmail(Tool):
    """getmail6 with its own Maildir destination; no added headers.

    getmail refuses to write mail as root; as root the destination runs as
    ``nobody`` (``user = nobody``), which owns the target Maildir.
    """

    name = "getmail6"

    def available(self) -> str | None:
        return None if shutil.which("getmail") else "getmail6 not installed"

    def prepare(self, run: Run) -> Command:
        s = run.server
        make_maildir(run.maildir)
        kind = "SimplePOP3SSLRetriever" if s.tls else "SimplePOP3Retriever"
        tls = f"ca_certs = {s.ca_file}\nssl_cert_hostname = {s.host}\n" if s.tls else ""
        getmaildir = run.workdir / "getmail"
        getmaildir.mkdir(exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            user = "user = nobody\n"
            nobody = pwd.getpwnam("nobody")
            for path in (run.maildir, *(run.maildir / sub for sub in ("tmp", "new", "cur"))):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        _write_private(
            getmaildir / "getmailrc",
            f"[retriever]\ntype = {kind}\nserver = {s.host}\nport = {s.port}\n"
            f"username = {s.user}\npassword = {s.password}\n{tls}\n"
            f"[destination]\ntype = Maildir\npath = {run.maildir}/\n{user}\n"
            "[options]\nverbose = 0\ndelete = false\nread_all = false\n"
            "delivered_to = false\nreceived = false\nmessage_log_syslog = false\n",
        )
        argv = ["getmail", f"--getmaildir={getmaildir}", "--rcfile=getmailrc", "--quiet"]
        return Command(argv, _base_env(run))


class Raw(Tool):
    """bench/raw_reference.py: the ceiling."""

    name = "raw"

    def prepare(self, run: Run) -> Command:
        s = run.server
        make_maildir(run.maildir)
        argv = [
            sys.executable,
            str(BENCH_DIR / "raw_reference.py"),
            "--host",
            s.host,
            "--port",
            str(s.port),
            "--user",
            s.user,
            "--maildir",
            str(run.maildir),
            "--state",
            str(run.workdir / "raw_uidls"),
        ]
        if s.tls:
            argv += ["--tls", "--ca-file", str(s.ca_file)]
        return Command(argv, _base_env(run))


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Popkeep(),
        Popkeep("popkeep-old", "POPKEEP_OLD_BIN"),
        Mpop(),
        Fetchmail(),
        Getmail(),
        Raw(),
    )
}
#: the popkeep builds: the one under test, and the one it is compared with (A/B)
POPKEEPS = ("popkeep", "popkeep-old")
