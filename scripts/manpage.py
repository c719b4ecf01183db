"""Write popkeep(1), docs/man/popkeep.1, from the click command tree.

Build-time only (scripts/man runs it with the checkout's .venv): popkeep itself
does not import it. Every command of :data:`popkeep.cli.group.cli`, with its
usage, help and options, goes into the page in the order ``popkeep --help``
lists them; the sections click does not know (environment, files, exit status)
are written here. The output depends on nothing but the command tree and the
version, so regenerating an unchanged tree gives the same bytes
(tests/packaging/test_manpage.py compares it with the committed page).

Roff, as man(7) and groff_man(7) describe it: ``\\`` is written ``\\e``; a
leading ``-`` of an option ``\\-`` (a hyphen would let the option break across
lines or be copied as U+2010); a line that would start with ``.`` or ``'`` gets
``\\&`` first; every non-ASCII character is ``\\[uXXXX]``, so the page needs no
input encoding (``man -l`` and ``groff -man`` read it alike).
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click

from popkeep import __version__, errors
from popkeep.cli.group import cli

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "man" / "popkeep.1"

_DESCRIPTION = """\
popkeep collects mail from every POP3 mailbox you have at your providers into one
central mailbox (a local Maildir, an IMAP account such as Gmail, Gmail through its
API, LMTP, an MDA or mbox) and manages what stays on each provider's server, so
that your other POP devices still get every message, the provider mailbox never
fills up, and no message is lost or delivered twice.

A message counts as delivered only when every sink of its account holds it
durably; retention deletes it on the server only after that, and a deletion
counts only once the server confirmed QUIT.

Start with `popkeep init`, then run `popkeep fetch` (from cron or a systemd timer:
`popkeep -q fetch`) or `popkeep serve`."""

_ENVIRONMENT = (
    ("POPKEEP_CONFIG", "The config file when no -c/--config is given."),
    ("XDG_CONFIG_HOME", "The config file is $XDG_CONFIG_HOME/popkeep/config.toml "
                        "(default ~/.config) when neither -c nor POPKEEP_CONFIG names one."),
    ("XDG_DATA_HOME", "The state database is $XDG_DATA_HOME/popkeep/state.db "
                      "(default ~/.local/share) unless [state] path names one."),
    ("_POPKEEP_COMPLETE", "Shell completion: bash_source, zsh_source or fish_source print "
                          "the script for that shell (see SHELL COMPLETION)."),
)

_FILES = (
    ("~/.config/popkeep/config.toml", "The configuration (TOML). A file that names a password "
                                      "source or a command must not be writable by group or "
                                      "others; one holding a password must be mode 0600."),
    ("~/.local/share/popkeep/state.db", "The state database (SQLite): what was collected, "
                                        "delivered and deleted, per account."),
    ("~/.local/share/popkeep/service.json", "Written by popkeep serve while it runs (mode 0600): "
                                            "how popkeep status and check-now reach it."),
)

#: the codes as errors.py gives them to its exception classes
_EXIT_STATUS = (
    ("0", "Every account succeeded."),
    ("1", "Another error; read the message."),
    (str(errors.EX_UNAVAILABLE),
     "popkeep check-now: no popkeep serve is running, or it did not answer."),
    (str(errors.EX_SOFTWARE), "Internal error, or the state database is unusable."),
    (str(errors.EX_CANTCREAT),
     "A local path cannot be created or written (Maildir, mbox, spool, disk full)."),
    (str(errors.EX_TEMPFAIL),
     "A temporary failure (network, timeout, busy server, another run collecting the "
     "account); nothing undelivered was deleted, the next run retries."),
    (str(errors.EX_NOPERM), "Authentication refused or TLS verification failed."),
    (str(errors.EX_CONFIG),
     "A configuration error; the message names the file and key (also a missing "
     "extra: pip install 'popkeep[imap]')."),
    ("130", "Interrupted; nothing is lost or duplicated."),
)

_COMPLETION = """\
popkeep completes commands, options and choices in bash, zsh and fish. Add the line
for your shell to its start-up file:

\b
# ~/.bashrc
eval "$(_POPKEEP_COMPLETE=bash_source popkeep)"
# ~/.zshrc, after compinit
eval "$(_POPKEEP_COMPLETE=zsh_source popkeep)"
# ~/.config/fish/completions/popkeep.fish
_POPKEEP_COMPLETE=fish_source popkeep | source"""

_SEE_ALSO = """\
fetchmail(1), getmail(1), mpop(1), systemd.timer(5), crontab(5). The full documentation
is in the docs/ directory of the source: cli.md (every command, the --json shapes),
running.md (systemd, cron, containers), guarantees.md, central-mailbox.md, oauth.md,
providers.md and planner.md."""


def escape(text: str) -> str:
    """``text`` as roff input text: backslashes, non-ASCII characters, and a leading
    ``-`` of every word (an option) escaped; `quoted` words in bold."""
    text = text.replace("\\", "\\e")
    text = "".join(ch if ch.isascii() else f"\\[u{ord(ch):04X}]" for ch in text)
    text = re.sub(r"(?<![\w\\-])--?\w[\w-]*", lambda m: m[0].replace("-", "\\-"), text)
    return re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)


def _line(text: str) -> str:
    """One roff text line: a leading control character made literal (groff_man(7))."""
    return f"\\&{text}" if text.startswith((".", "'")) else text


def _filled(text: str) -> list[str]:
    """Escaped ``text`` as input lines of at most 80 bytes where the words allow (the
    formatter fills them again; mandoc -Tlint asks for short input lines)."""
    lines = textwrap.wrap(text, width=80, break_long_words=False, break_on_hyphens=False)
    return [_line(line) for line in lines]


def paragraphs(help_text: str) -> Iterator[list[str]]:
    """The paragraphs of a click help text, each as its lines; click's conventions:
    text after ``\\f`` is not shown, a paragraph that starts with ``\\b`` keeps its
    line breaks (yielded with ``"\\b"`` as its first line)."""
    text = inspect.cleandoc(help_text).split("\f", 1)[0]
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            yield ["\b", *lines[1:]]
        elif lines:
            yield [" ".join(line.strip() for line in lines)]


def _prose(help_text: str) -> Iterator[str]:
    """Roff lines for a help text, paragraphs separated by ``.PP``."""
    for i, para in enumerate(paragraphs(help_text)):
        if i:
            yield ".PP"
        if para[0] == "\b":
            yield ".nf"
            yield from (_line(escape(line)) for line in para[1:])
            yield ".fi"
        else:
            yield from _filled(escape(para[0]))


def _option_tag(opts: str) -> str:
    """click's ``-c, --config FILE`` (or ``--baseline / --no-baseline``, ``--port
    INTEGER RANGE``) with the option names in bold and the metavar in italics."""
    words = []
    for word in opts.split(" "):
        name, comma = (word[:-1], ",") if word.endswith(",") else (word, "")
        if name.startswith("-"):
            words.append(f"\\fB{escape(name)}\\fR{comma}")
        elif name == "/":
            words.append("/")
        else:
            words.append(f"\\fI{escape(word)}\\fR")
    return " ".join(words)


def _options(command: click.Command, ctx: click.Context) -> Iterator[str]:
    """A ``.TP`` entry per visible option of ``command`` (``--help`` only for the group:
    every command has it)."""
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue  # arguments are named in the usage line and the help text
        if ctx.parent is not None and param.name == "help":
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        opts, help_text = record
        yield ".TP"
        yield _option_tag(opts)
        yield from _filled(escape(help_text)) if help_text else ["\\&"]


def _usage(command: click.Command, ctx: click.Context) -> str:
    """``popkeep fetch [OPTIONS] [ACCOUNTS]...`` in roff."""
    pieces = " ".join(escape(piece) for piece in command.collect_usage_pieces(ctx))
    return f"\\fB{escape(ctx.command_path)}\\fR {pieces}"


def _command(name: str, parent: click.Context) -> Iterator[str]:
    """The subsection of one subcommand: usage, help, options."""
    command = cli.get_command(parent, name)
    if command is None or command.hidden:
        return
    ctx = click.Context(command, parent=parent, info_name=name)
    yield f".SS {name}"
    yield _usage(command, ctx)
    yield ".PP"
    yield from _prose(command.help or command.short_help or "")
    yield from _options(command, ctx)


def _table(rows: tuple[tuple[str, str], ...], *, bold: bool) -> Iterator[str]:
    for term, text in rows:
        yield ".TP"
        yield f"\\fB{escape(term)}\\fR" if bold else f"\\fI{escape(term)}\\fR"
        yield from _filled(escape(text))


def _summary(help_text: str) -> str:
    """The NAME line's words: the first sentence, lower-case first, no full stop."""
    first = next(iter(paragraphs(help_text)), [""])[0].rstrip(".")
    return first[:1].lower() + first[1:]


def render() -> str:
    """The whole page, as roff source."""
    ctx = click.Context(cli, info_name="popkeep")
    lines = [
        '.\\" Generated by scripts/man from the click command tree; do not edit.',
        f'.TH POPKEEP 1 "" "popkeep {escape(__version__)}" "User Commands"',
        ".nh",  # no hyphenation: option names and paths are copied from the page
        ".ad l",
        ".SH NAME",
        f"popkeep \\- {escape(_summary(cli.help or ''))}",
        ".SH SYNOPSIS",
        "\\fBpopkeep\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        *_prose(_DESCRIPTION),
        ".SH OPTIONS",
        escape("These go before the command name; -c, -v and -q may also follow it."),
        *_options(cli, ctx),
        ".SH COMMANDS",
    ]
    for name in cli.list_commands(ctx):
        lines += _command(name, ctx)
    lines += [".SH ENVIRONMENT", *_table(_ENVIRONMENT, bold=True)]
    lines += [".SH FILES", *_table(_FILES, bold=False)]
    lines += [".SH EXIT STATUS", *_table(_EXIT_STATUS, bold=True)]
    lines += [".SH SHELL COMPLETION", *_prose(_COMPLETION)]
    lines += [".SH SEE ALSO", *_prose(_SEE_ALSO)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``--stdout``: print the page; else write :data:`OUTPUT`."""
    page = render()
    if argv == ["--stdout"]:
        sys.stdout.write(page)
        return 0
    if argv:
        print("usage: scripts/man [--stdout]", file=sys.stderr)
        return 2
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(page, encoding="ascii")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
