"""The systemd unit ``popkeep install-service`` writes (pure: text from a config).

Owns: the unit's text — how systemd starts, reloads and stops ``popkeep serve``,
and the sandbox it runs in (systemd.exec(5)): a read-only file system but for the
state directory and the local sinks' directories, no new privileges, a private
/tmp, IP and Unix sockets only. Must not: write files or call systemctl
(``cli.service_cmd``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from popkeep.config.schema import Config

UNIT_NAME = "popkeep.service"

#: sandboxing that holds for a user unit and a system one (systemd.exec(5));
#: ProtectSystem=strict makes every path read-only but /dev, /proc, /sys and the
#: ReadWritePaths below
_HARDENING = """\
NoNewPrivileges=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectSystem=strict
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
CapabilityBoundingSet=
UMask=0077
"""


def writable_paths(config: Config, state_path: Path) -> list[Path]:
    """The directories ``popkeep serve`` writes: the state store's (its database,
    locks and service.json) and each local sink's (a Maildir, an mbox file's
    directory for its lock files, a Gmail token's directory); in config order."""
    paths = [state_path.parent]
    for sink in config.sinks.values():
        kind = type(sink).__name__
        if kind == "MaildirSinkConfig":
            paths.append(Path(getattr(sink, "path")))  # noqa: B009 - any sink record
        elif kind == "MboxSinkConfig":
            paths.append(Path(getattr(sink, "path")).parent)  # noqa: B009
        token = getattr(sink, "token_file", None)
        if token is not None:
            paths.append(Path(token).parent)
    return list(dict.fromkeys(paths))


def _quoted(word: str, *, exec_line: bool = False) -> str:
    """One word of a unit file line (systemd.syntax(7)): double-quoted, with
    backslashes, quotes and ``%`` specifiers escaped (and ``$`` variables on an
    Exec line, systemd.service(5) "Command lines")."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if exec_line:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def unit_text(
    command: Sequence[str],
    writable: Iterable[Path],
    *,
    system: bool,
    user: str | None = None,
) -> str:
    """A unit that runs ``command`` (``popkeep -c CONFIG serve``, absolute paths).

    ``system``: for the system manager (``multi-user.target``; ``User=`` ``user``,
    a service account), else for the user's own manager (``default.target``).
    ``writable`` paths need not exist ("-": systemd skips a missing one).
    """
    start = " ".join(_quoted(word, exec_line=True) for word in command)
    rw = " ".join(_quoted(f"-{path}") for path in writable)
    account = f"User={user}\nGroup={user}\n" if system and user else ""
    target = "multi-user.target" if system else "default.target"
    return f"""\
# Written by popkeep install-service; see docs/running.md.
[Unit]
Description=popkeep: collect POP3 mail into the central mailbox
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
{account}ExecStart={start}
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM: no new pass; a running one ends or is abandoned safely, exit 0
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=30
# exit 78: the configuration is wrong; restarting will not fix it
RestartPreventExitStatus=78
ReadWritePaths={rw}
{_HARDENING}
[Install]
WantedBy={target}
"""
