"""POP3: the sans-I/O codec (:mod:`.codec`), listing parsers (:mod:`.listing`) and the
async client session (:mod:`.client`). Importing the package loads only the codec
and parsers; import ``popkeep.pop3.client`` for the session.
"""

from popkeep.pop3.codec import (
    NEED_DATA,
    Closed,
    Command,
    Connection,
    Continue,
    Data,
    End,
    Err,
    Event,
    Greeting,
    Ok,
    SaslResponse,
    State,
    apop_digest,
    plain_response,
    stuff,
)
from popkeep.pop3.listing import parse_capa, parse_list, parse_stat, parse_uid_index, parse_uidl

__all__ = [
    "NEED_DATA",
    "Closed",
    "Command",
    "Connection",
    "Continue",
    "Data",
    "End",
    "Err",
    "Event",
    "Greeting",
    "Ok",
    "SaslResponse",
    "State",
    "apop_digest",
    "parse_capa",
    "parse_list",
    "parse_stat",
    "parse_uid_index",
    "parse_uidl",
    "plain_response",
    "stuff",
]
