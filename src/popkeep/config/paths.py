"""Whether the local paths a configuration names can be created and written, before a run.

Owns: :func:`check_creatable` (one path) and :func:`check_sink_paths` (the paths
of one sink record: a Maildir directory, an mbox file), which ``app`` calls when
it builds a sink, before any server is contacted. A path that cannot be made or
written (a file where a directory should be, a directory where the mbox file
should be, no write permission, a read-only file system) is a
:class:`~popkeep.errors.CannotCreate` (exit 73), not a temporary failure that
cron would retry forever. Must not: create, open or change anything (the sinks
create their paths when they open), or follow the check with a promise: a
path can still fail later (a full disk), and the sinks report that themselves.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from popkeep.errors import CannotCreate

__all__ = ["check_creatable", "check_sink_paths"]

_MAILDIR_SUBDIRS = ("tmp", "new", "cur")  #: the Maildir convention's three directories


def check_creatable(path: Path, what: str, *, directory: bool) -> None:
    """Raise CannotCreate unless ``path`` (a directory, or a file when not
    ``directory``) exists as that and is writable, or can be created: every
    ancestor that exists is a directory, and the nearest one is writable.

    A path that exists is settled by its own ``stat`` (its ancestors are directories,
    or it could not be reached): one call instead of one per ancestor, as
    ``popkeep serve`` checks every sink's paths before each poll."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        _check_ancestors(path, what, directory=directory)
        return
    _check_kind(path, what, mode, directory=directory)
    _check_writable(path, path, what, directory=directory)


def _check_ancestors(path: Path, what: str, *, directory: bool) -> None:
    """check_creatable for a path that does not exist (or cannot be stat'ed): walk down
    from the root to the nearest existing ancestor."""
    target = path
    for part in (*reversed(path.parents), path):
        try:
            mode = os.stat(part).st_mode
        except FileNotFoundError:
            break  # ``target`` is the nearest existing ancestor; the rest would be made
        except OSError as exc:
            raise CannotCreate(f"{what} {path}: cannot use {part}: {exc.strerror}") from exc
        target = part
        if part != path and not stat.S_ISDIR(mode):
            raise CannotCreate(f"{what} {path}: {part} is a file, not a directory")
    else:
        _check_kind(path, what, mode, directory=directory)
    _check_writable(path, target, what, directory=directory)


def _check_kind(path: Path, what: str, mode: int, *, directory: bool) -> None:
    if directory != stat.S_ISDIR(mode):
        wanted, found = ("directory", "file") if directory else ("file", "directory")
        raise CannotCreate(f"{what} {path}: is a {found}, not a {wanted}")


def _check_writable(path: Path, target: Path, what: str, *, directory: bool) -> None:
    """``target``: ``path`` itself, or the nearest existing ancestor it would be made in."""
    # os.access with W_OK also reports a read-only file system (EROFS), even for root.
    if not os.access(target, os.W_OK | (os.X_OK if target != path or directory else 0)):
        raise CannotCreate(f"{what} {path}: {target} is not writable by this user")


def check_sink_paths(config: object) -> None:
    """The local paths of one sink record, by its type (``maildir``: the Maildir
    directory, and the folder under it; ``mbox``: the file). Other types name no
    path popkeep creates while collecting.

    A Maildir is checked with its ``tmp``/``new``/``cur`` (and those of the folder):
    a file in the place of one of them would fail every delivery."""
    kind = type(config).__name__
    path = getattr(config, "path", None)
    if not isinstance(path, Path):
        return
    if kind == "MaildirSinkConfig":
        folder = getattr(config, "folder", None)
        for where, what in ((path, "maildir"), (path / f".{folder}", "maildir folder")):
            check_creatable(where, what, directory=True)
            for sub in _MAILDIR_SUBDIRS:
                check_creatable(where / sub, what, directory=True)
            if not folder:
                break
    elif kind == "MboxSinkConfig":
        check_creatable(path, "mbox", directory=False)
