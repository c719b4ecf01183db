"""popkeep: collect mail from POP3 mailboxes into one central mailbox, safely.

This package root only exposes the version; it must stay import-cheap because
``popkeep --version`` and a no-op fetch are measured for startup time.
"""

__version__ = "0.1.0"
