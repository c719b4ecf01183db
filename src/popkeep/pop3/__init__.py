"""POP3, the wire protocol only: the sans-I/O codec (:mod:`.codec`), listing
parsers (:mod:`.listing`) and the OAuth 2.0 SASL messages (:mod:`.sasl`, which the
IMAP sink shares). The session that drives them over a stream is a source:
:mod:`popkeep.sources.pop3`.
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
