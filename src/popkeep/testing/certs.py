"""Throwaway TLS material for tests and the demo: a CA and a loopback server cert.

Owns making a private CA and a server certificate for ``localhost`` /
``127.0.0.1`` / ``::1`` with the ``openssl`` command-line tool (present on
Debian; no Python crypto dependency at runtime), plus the SSL contexts that
use them. Never touches the system trust store.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from popkeep.errors import ConfigError

logger = logging.getLogger(__name__)

_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TestCerts:
    """Paths of the PEM files :func:`make_test_certs` wrote."""

    __test__ = False  # not a pytest test class, despite the name

    ca_file: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the loopback certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the server certificate's DER form, lowercase hex."""
        der = ssl.PEM_cert_to_DER_cert(self.cert.read_text("ascii"))
        return hashlib.sha256(der).hexdigest()


def _openssl(*args: str | Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise ConfigError("the openssl command is needed to make test certificates "
                          "(Debian: apt-get install openssl)")
    try:
        subprocess.run([binary, *map(str, args)], check=True, capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()
        raise ConfigError(f"openssl {args[0]} failed: {detail}") from exc


def make_test_certs(directory: Path | str) -> TestCerts:
    """Write ca.pem, ca.key, server.pem, server.key into ``directory``; return their paths.

    Keys are P-256 (fast to make); the server cert is valid for localhost,
    127.0.0.1 and ::1 for about two years.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    ca, ca_key = root / "ca.pem", root / "ca.key"
    cert, key, csr, ext = (root / n for n in ("server.pem", "server.key", "server.csr", "ext.cnf"))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "3650",
             "-subj", "/CN=popkeep test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext.write_text(_EXTENSIONS, "ascii")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", "2",
             "-days", "825", "-sha256", "-extfile", ext, "-out", cert)
    logger.debug("test certificates written to %s", root)
    return TestCerts(ca, cert, key)
