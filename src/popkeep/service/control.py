"""How the command line finds the running service and talks to it.

Owns: ``service.json`` in the state directory (beside the state database),
which ``popkeep serve`` writes once its status API listens and removes on a
clean exit: the process id, the API's URL and a random token that ``POST``
requests must carry (mode 0600, so only the user who runs the service and root
can ask it to do anything). Also the two requests the CLI makes: the status
document (:func:`fetch_status`) and check-now (:func:`check_now`), over
``urllib`` with a short timeout and no proxy (the API is on this machine).

Must not: import the web stack (``popkeep status`` runs without the ``serve``
extra), or treat a file whose process is gone as a running service.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from popkeep.errors import CannotCreate, ConfigError, ServiceUnavailable, printable

#: The file's name in the state directory.
FILE_NAME = "service.json"
#: How long the CLI waits for the service to answer, in seconds.
TIMEOUT = 3.0


class ServiceHandle(NamedTuple):
    """What ``service.json`` holds."""

    pid: int
    url: str  #: base URL of the status API, e.g. ``http://127.0.0.1:8025``
    token: str  #: ``Authorization: Bearer`` for POST requests
    started_at: str  #: UTC, ISO 8601


def new_token() -> str:
    """A fresh random token (256 bits) for one run of the service."""
    return secrets.token_urlsafe(32)


def write_handle(state_dir: Path, url: str, token: str) -> ServiceHandle:
    """Write ``service.json`` (0600, atomically replaced) for this process; the handle.

    Raises CannotCreate when the state directory cannot be made or written."""
    handle = ServiceHandle(os.getpid(), url, token,
                           datetime.now(UTC).isoformat(timespec="seconds"))
    path = state_dir / FILE_NAME
    tmp = state_dir / f".{FILE_NAME}.{os.getpid()}"
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(handle._asdict(), out)
        os.replace(tmp, path)
    except OSError as exc:
        raise CannotCreate(f"{path}: {exc.strerror or exc}") from None
    return handle


def remove_handle(state_dir: Path, handle: ServiceHandle) -> None:
    """Remove ``service.json`` if it is still ``handle``'s (another service may have
    replaced it since)."""
    if read_handle(state_dir, check_alive=False) == handle:
        (state_dir / FILE_NAME).unlink(missing_ok=True)


def read_handle(state_dir: Path, *, check_alive: bool = True) -> ServiceHandle | None:
    """The running service's handle; None when there is no file, it is unreadable, or
    (``check_alive``) its process is gone (a service that was killed left it behind)."""
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
        handle = ServiceHandle(int(data["pid"]), str(data["url"]), str(data["token"]),
                               str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not handle.url.startswith("http://"):
        return None
    if check_alive and not _alive(handle.pid):
        return None
    return handle


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid: not ours, but alive
    return True


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def _api(handle: ServiceHandle, path: str, **kwargs: Any) -> urllib.request.Request:
    """A request to the API; :func:`read_handle` admits only ``http://`` URLs."""
    return urllib.request.Request(handle.url + path, **kwargs)  # noqa: S310 (see above)


def _request(handle: ServiceHandle, req: urllib.request.Request, timeout: float) -> Any:
    """The JSON answer to ``req``; ServiceUnavailable when the service does not answer."""
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _http_error(exc) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailable(
            f"the service (pid {handle.pid}) at {handle.url} did not answer: {reason}"
        ) from None


def _http_error(exc: urllib.error.HTTPError) -> Exception:
    try:
        message = str(json.loads(exc.read())["error"])
    except (OSError, ValueError, KeyError, TypeError):
        message = str(exc.reason)
    if exc.code == 404:
        return ConfigError(message)
    return ServiceUnavailable(f"the service refused the request ({exc.code}): "
                              f"{printable(message)}")


def fetch_status(handle: ServiceHandle, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The service's ``GET /api/status`` document (docs/status-api.md)."""
    # the token too: a service with a password asks for it (or the password) everywhere
    req = _api(handle, "/api/status", headers={"Accept": "application/json",
                                               "Authorization": f"Bearer {handle.token}"})
    document = _request(handle, req, timeout)
    if not isinstance(document, dict):
        raise ServiceUnavailable(f"the service at {handle.url} sent no status document")
    return document


def check_now(handle: ServiceHandle, names: list[str], timeout: float = TIMEOUT) -> list[str]:
    """Ask the service to poll ``names`` (all accounts when empty) at once; the names
    it will poll. An unknown name is a ConfigError (exit 78)."""
    body = json.dumps({"accounts": names}).encode()
    req = _api(
        handle, "/api/check-now", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {handle.token}"},
    )
    answer = _request(handle, req, timeout)
    polling = answer.get("polling") if isinstance(answer, dict) else None
    if not isinstance(polling, list):
        raise ServiceUnavailable(f"the service at {handle.url} sent no list of accounts")
    return [str(n) for n in polling]


__all__ = ["FILE_NAME", "ServiceHandle", "check_now", "fetch_status", "new_token",
           "read_handle", "remove_handle", "write_handle"]
