"""The :class:`Stream` protocol every transport implements.

Owns: the shape of a byte stream (read / write / start_tls / close) and the TLS
settings value. Must not: know about POP3, parse bytes, or retry.
"""

from pathlib import Path
from typing import NamedTuple, Protocol


class TLSSettings(NamedTuple):
    """How to verify the server. Verification is on for every session that logs in
    (``verify=False`` only reads a certificate for ``popkeep check``); pinning adds to it.

    ``fingerprint`` (``"sha256:AB:CD…"`` or bare hex) pins the leaf certificate;
    when set, a self-signed certificate is accepted if and only if it matches.
    """

    server_hostname: str
    ca_file: Path | None = None
    fingerprint: str | None = None
    #: False only to read an untrusted server's certificate (``popkeep check``): the
    #: connection then proves nothing, and no credential may ever cross it.
    verify: bool = True


class TLSInfo(NamedTuple):
    """What the handshake established (shown by ``popkeep check``)."""

    version: str
    cipher: str
    subject: str
    issuer: str
    fingerprint_sha256: str


class Stream(Protocol):
    """A bidirectional byte stream. Implementations: ``tcp.TCPStream``, ``memory.MemoryStream``."""

    async def read(self, max_bytes: int, timeout: float) -> bytes:
        """Return 1..max_bytes bytes; ``b""`` at end of stream.

        Raises NetworkTimeout when nothing arrives within ``timeout`` seconds."""
        ...

    async def write(self, data: bytes) -> None:
        """Send all of ``data`` (waits for the buffer to drain)."""
        ...

    async def start_tls(self, settings: TLSSettings) -> TLSInfo:
        """Upgrade in place (STLS). Bytes buffered but not yet read are discarded first."""
        ...

    async def close(self) -> None:
        """Close; never raises."""
        ...

    @property
    def tls(self) -> TLSInfo | None:
        """The TLS state when the stream is encrypted, else None."""
        ...

