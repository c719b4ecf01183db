"""Where a password comes from, how to get it, and how to keep it out of logs.

Owns: :class:`SecretSource` (a literal from the config file, an environment
variable, a command's output, or an entry of the system keyring, read through
:mod:`popkeep.config.keystore`) and :func:`mask`, the one choke point that
removes secrets from text before it is logged or shown. :class:`MaskingFilter`
applies :func:`mask` to every log record; ``app`` installs it on the root
handlers and registers each secret once it is resolved.

Must not: log, print or put a secret into an exception message, a ``repr`` or a
``str``. A secret exists in memory only as the return value of
:meth:`SecretSource.resolve`.

``password_command`` is split like a POSIX shell would split it
(:func:`shlex.split`) and run **without a shell**: ``pass show isp`` works,
quotes work, but pipes, ``$VARS``, ``~`` and globs do not. Wrap the command in
``sh -c '…'`` if you need them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Literal

from popkeep.errors import ConfigError

__all__ = ["COMMAND_TIMEOUT", "MaskingFilter", "SecretSource", "mask"]

logger = logging.getLogger(__name__)

SecretKind = Literal["literal", "env", "command", "keyring"]

COMMAND_TIMEOUT = 30.0  #: seconds a password_command may take
MASK = "********"


class SecretSource:
    """A password and how to obtain it. ``repr`` and ``str`` never show the secret.

    - ``literal``: ``value`` is the secret itself (``password = "…"``);
    - ``env``: ``value`` is the variable name (``password_env``);
    - ``command``: ``argv`` is the command (``password_command``), ``value`` its text;
    - ``keyring``: ``value`` is the keyring entry, ``SERVICE/NAME``
      (``password = { keyring = "popkeep/isp" }``).

    ``where`` is the file and key path used in error messages, e.g.
    ``'/home/u/.config/popkeep/config.toml: account "isp".password_command'``.

    Immutable and compared by value. A plain class, not a frozen dataclass
    (generating its methods costs about a millisecond at every start, which cron
    polls pay), nor a NamedTuple (a tuple would hand out the secret to anything
    that iterates or serialises it).
    """

    __slots__ = ("argv", "kind", "timeout", "value", "where")

    kind: SecretKind
    value: str
    where: str
    argv: tuple[str, ...]
    timeout: float

    def __init__(
        self,
        kind: SecretKind,
        value: str,
        where: str = "",
        argv: tuple[str, ...] = (),
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        init = object.__setattr__  # this class's own refuses (immutable)
        init(self, "kind", kind)
        init(self, "value", value)
        init(self, "where", where)
        init(self, "argv", argv)
        init(self, "timeout", timeout)

    def _key(self) -> tuple[object, ...]:
        return (self.kind, self.value, self.where, self.argv, self.timeout)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretSource):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SecretSource is immutable: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SecretSource is immutable: cannot delete {name!r}")

    def __repr__(self) -> str:
        if self.kind == "env":
            return f"SecretSource(env {self.value})"
        if self.kind == "command":
            program = self.argv[0] if self.argv else "?"
            return f"SecretSource(command {program} …)"
        if self.kind == "keyring":
            return f"SecretSource(keyring {self.value})"
        return "SecretSource(literal ********)"

    __str__ = __repr__

    def resolve(self, env: Mapping[str, str] | None = None) -> str:
        """Return the secret. Raises ConfigError naming ``where``, never the secret.

        ``env`` defaults to ``os.environ`` (for ``env`` sources and as the
        command's environment); ``keyring`` reads the system keyring. A command
        must exit 0 within ``timeout`` seconds and print the secret; one trailing
        newline is removed. A secret holding CR, LF or NUL is refused.
        """
        if self.kind == "literal":
            secret = self.value
        elif self.kind == "keyring":
            from popkeep.config import keystore  # the keyring package loads only when used

            secret = keystore.get_password(self.value, self.where)
        else:
            environ = os.environ if env is None else env
            secret = self._from_env(environ) if self.kind == "env" else self._from_command(environ)
        if any(c in secret for c in "\r\n\0"):
            # It would end the PASS/AUTH line early and inject a command (RFC 1939 §3).
            raise ConfigError(f"{self.where}: the password contains a line break or NUL")
        return secret

    def _from_env(self, environ: Mapping[str, str]) -> str:
        secret = environ.get(self.value)
        if secret is None:
            raise ConfigError(f"{self.where}: environment variable {self.value} is not set")
        if not secret:
            raise ConfigError(f"{self.where}: environment variable {self.value} is empty")
        return secret

    def _from_command(self, environ: Mapping[str, str]) -> str:
        # Imported here: subprocess is only needed when a command is configured,
        # and popkeep's startup time is measured.
        import subprocess

        program = self.argv[0]
        logger.debug("%s: running %s", self.where, program)
        try:
            done = subprocess.run(
                self.argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                env=dict(environ),
                check=False,
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.where}: command not found: {program}") from exc
        except PermissionError as exc:
            raise ConfigError(f"{self.where}: command not executable: {program}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(
                f"{self.where}: {program} did not finish within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise ConfigError(f"{self.where}: cannot run {program}: {exc.strerror}") from exc
        return self._check_output(done.returncode, done.stdout, done.stderr)

    def _check_output(self, returncode: int, stdout: bytes, stderr: bytes) -> str:
        program = self.argv[0]
        try:
            text = stdout.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.where}: {program} printed something not UTF-8") from exc
        if returncode != 0:
            # The last line of stderr usually says why ("isp is not in the password
            # store"); stdout may hold a secret, so it is masked out of it.
            said = stderr.decode("utf-8", "replace").strip().splitlines()
            reason = mask(said[-1][:200], text.splitlines()) if said else "no message"
            raise ConfigError(
                f"{self.where}: {program} exited with status {returncode}: {reason}"
            )
        secret = _strip_newline(text)
        if not secret:
            raise ConfigError(f"{self.where}: {program} printed no password")
        return secret


def _strip_newline(text: str) -> str:
    """Remove exactly one trailing ``\\n`` or ``\\r\\n`` (``pass`` adds one)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every non-empty secret replaced by ``********``.

    Longer secrets are replaced first, so a secret containing another is masked whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class MaskingFilter(logging.Filter):
    """A logging filter that masks every registered secret in each record's message.

    Install it on handlers (``handler.addFilter(f)``), then ``f.add(secret)`` each
    secret as soon as it is resolved. The record's message is rendered once,
    masked, and its arguments dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (empty strings are ignored)."""
        if secret:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = mask(record.getMessage(), self._secrets)
            record.args = None
        return True
