"""The configuration: TOML in, frozen typed objects out; errors name the file and key path.

Modules: :mod:`.schema` (the objects), :mod:`.load` (file → objects, the
rules of the file), :mod:`.convert` (the one validator: key paths, value
converters), :mod:`.connection` (the server record accounts and IMAP/LMTP
sinks share), :mod:`.sink_types` (non-Maildir sink settings),
:mod:`.secrets` (passwords and log masking), :mod:`.units`
(durations and sizes, also used by the planner). Kept import-cheap: no
pydantic, ``subprocess`` and ``difflib`` load only when needed.
"""

from popkeep.config.load import default_config_path, default_state_path, load_config, parse_config
from popkeep.config.schema import (
    AccountConfig,
    Config,
    Connection,
    MaildirSinkConfig,
    SinkConfig,
    StateConfig,
)
from popkeep.config.secrets import SecretSource, mask

__all__ = [
    "AccountConfig",
    "Config",
    "Connection",
    "MaildirSinkConfig",
    "SecretSource",
    "SinkConfig",
    "StateConfig",
    "default_config_path",
    "default_state_path",
    "load_config",
    "mask",
    "parse_config",
]
