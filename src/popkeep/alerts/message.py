"""The message that tells the user about an alert: RFC 5322, text/plain UTF-8, en or ja.

Owns: the words (:data:`TEXTS`: what happened, since when, what to do) and the
message around them. The bytes are a function of the alert alone (Date is the
moment it was raised or cleared, Message-ID derives from its identity), so
composing it again after a crash gives the same content, hence the same delivery
key, and the sink finds the copy it already holds. Must not: do I/O.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import NamedTuple

from popkeep.alerts.conditions import Condition
from popkeep.config.schema import Language
from popkeep.state.base import Alert


class Text(NamedTuple):
    subject: str
    body: str


_SIGN_EN = "\n-- \npopkeep. No more of these: alerts = false under [service] in its config.\n"
_SIGN_JA = "\n-- \npopkeep。通知を止めるには設定の [service] に alerts = false と書きます。\n"

#: (language, condition, cleared) → words. Fields: account, since, at, details.
TEXTS: dict[tuple[Language, Condition, bool], Text] = {
    ("en", "signin", False): Text(
        'popkeep: a sign-in for "{account}" was refused',
        "A server refused popkeep's sign-in for account \"{account}\" (since {since}):\n\n"
        "    {details}\n\n"
        "popkeep stops polling this account so that the provider does not lock it for\n"
        "repeated wrong passwords. Nothing is lost: new mail waits on the server.\n\n"
        "What to do: correct the user name or password (or password_command) of the\n"
        "server named above, the account's or a sink's, in popkeep's config; check\n"
        "it with\n\n    popkeep check {account}\n\n"
        "and, if popkeep serve is running, run `popkeep check-now {account}`.\n"
        "If the reason above ends with `run: popkeep auth NAME` (an OAuth 2.0 sign-in\n"
        "that expired or was revoked), run that command instead: it signs in again.\n"
        "You will get another message when signing in works again.\n",
    ),
    ("en", "signin", True): Text(
        'popkeep: signing in to "{account}" works again',
        "popkeep signs in to account \"{account}\" again (since {at}; it was refused\n"
        "since {since}). Mail that waited on the server is being delivered. Nothing to do.\n",
    ),
    ("ja", "signin", False): Text(
        "popkeep: 「{account}」のログインが拒否されました",
        "アカウント「{account}」について、サーバーが popkeep のログインを拒否しました\n"
        "({since} から):\n\n"
        "    {details}\n\n"
        "誤ったパスワードの繰り返しでアカウントがロックされないよう、popkeep はこの\n"
        "アカウントの受信を止めています。メールは失われず、サーバーで待っています。\n\n"
        "対処方法: 上に示されたサーバー (アカウントか配送先) のユーザー名かパスワード\n"
        "(または password_command) を popkeep の設定で直し、次のコマンドで確認してください。\n\n"
        "    popkeep check {account}\n\n"
        "popkeep serve が動いていれば `popkeep check-now {account}` も実行してください。\n"
        "理由の最後が `run: popkeep auth 名前` のとき (OAuth 2.0 のサインインの期限切れや\n"
        "取り消し) は、代わりにそのコマンドを実行して、もう一度サインインしてください。\n"
        "ログインできるようになったら、もう一度お知らせします。\n",
    ),
    ("ja", "signin", True): Text(
        "popkeep: 「{account}」にまたログインできるようになりました",
        "アカウント「{account}」にまたログインできるようになりました ({at}。{since} から\n"
        "拒否されていました)。サーバーで待っていたメールを配送します。対処は不要です。\n",
    ),
    ("en", "failing", False): Text(
        'popkeep: account "{account}" has been failing since {since}',
        "popkeep has not been able to collect mail from account \"{account}\" since {since}.\n"
        "New mail there is not reaching this mailbox. Nothing is lost: it stays on the\n"
        "provider's server until popkeep collects it.\n\n"
        "Last error: {details}\n\n"
        "What to do: run\n\n    popkeep check {account}\n\n"
        "and fix what it reports (password, server name, certificate). You will get\n"
        "another message when collecting works again.\n",
    ),
    ("en", "failing", True): Text(
        'popkeep: account "{account}" works again',
        "popkeep collects mail from account \"{account}\" again (since {at}).\n"
        "It had been failing since {since}; mail that arrived meanwhile is being\n"
        "delivered to this mailbox. Nothing to do.\n",
    ),
    ("en", "quota", False): Text(
        'popkeep: the server mailbox of "{account}" is nearly full',
        "The provider's mailbox of account \"{account}\" is above its high mark ({details})\n"
        "since {since}, and popkeep may not delete anything more: what is left there has\n"
        "not been delivered to every sink, and popkeep never deletes such messages.\n"
        "When the mailbox is full, the provider may refuse new mail.\n\n"
        "What to do: see which messages are left behind, and why, with\n\n"
        "    popkeep status\n\n"
        "fix that and run `popkeep retry {account}`, or delete mail on the provider's\n"
        "webmail (or raise server_quota if the provider allows more). You will get\n"
        "another message when the mailbox is below the mark.\n",
    ),
    ("en", "quota", True): Text(
        'popkeep: the server mailbox of "{account}" is below its high mark again',
        "The provider's mailbox of account \"{account}\" is below its high mark again\n"
        "(since {at}; it was above it since {since}). Nothing to do.\n",
    ),
    ("en", "skipped", False): Text(
        'popkeep: messages of "{account}" cannot be collected',
        "Since {since}, popkeep leaves some messages of account \"{account}\" on the\n"
        "provider's server because they cannot be delivered here (too big, refused,\n"
        "or they never end):\n\n{details}\n\n"
        "They stay on the server; nothing is deleted. What to do: see\n\n"
        "    popkeep status\n\n"
        "fix the cause (for example raise max_message_size), then run\n\n"
        "    popkeep retry {account}\n",
    ),
    ("en", "skipped", True): Text(
        'popkeep: every message of "{account}" can be collected again',
        "No message of account \"{account}\" is left behind any more (since {at};\n"
        "there were some since {since}). Nothing to do.\n",
    ),
    ("ja", "failing", False): Text(
        "popkeep: アカウント「{account}」のメールを {since} から受信できていません",
        "popkeep は {since} から、アカウント「{account}」のメールを受信できていません。\n"
        "そちらに届いた新しいメールは、まだこのメールボックスに届いていません。\n"
        "メールは失われていません。受信できるまでプロバイダのサーバーに残ります。\n\n"
        "最後のエラー: {details}\n\n"
        "対処方法: 次のコマンドを実行し、\n\n    popkeep check {account}\n\n"
        "表示された問題 (パスワード、サーバー名、証明書など) を直してください。\n"
        "受信が回復したら、もう一度お知らせします。\n",
    ),
    ("ja", "failing", True): Text(
        "popkeep: アカウント「{account}」の受信が回復しました",
        "アカウント「{account}」のメールをまた受信できるようになりました ({at})。\n"
        "{since} から失敗していました。その間に届いたメールは、このメールボックスに\n"
        "配送されます。対処は不要です。\n",
    ),
    ("ja", "quota", False): Text(
        "popkeep: 「{account}」のサーバーのメールボックスが満杯に近づいています",
        "アカウント「{account}」のプロバイダのメールボックスが、{since} から上限の目安を\n"
        "超えています ({details})。popkeep がこれ以上削除できるメールはありません\n"
        "(残っているのは、まだすべての配送先に届けていないメールで、popkeep は削除しません)。\n"
        "満杯になると、新しいメールが受け取られなくなるおそれがあります。\n\n"
        "対処方法: 残っているメールとその理由を次のコマンドで確認し、\n\n"
        "    popkeep status\n\n"
        "原因を直して `popkeep retry {account}` を実行するか、プロバイダの Web メールで\n"
        "メールを削除してください (プロバイダの容量が大きければ server_quota を上げます)。\n"
        "目安を下回ったら、もう一度お知らせします。\n",
    ),
    ("ja", "quota", True): Text(
        "popkeep: 「{account}」のサーバーのメールボックスが目安を下回りました",
        "アカウント「{account}」のプロバイダのメールボックスが、上限の目安を下回りました\n"
        "({at}。{since} から超えていました)。対処は不要です。\n",
    ),
    ("ja", "skipped", False): Text(
        "popkeep: 「{account}」に受信できないメールがあります",
        "{since} から、アカウント「{account}」の一部のメールをここに配送できないため、\n"
        "プロバイダのサーバーに残しています (大きすぎる、拒否された、終わらない):\n\n"
        "{details}\n\n"
        "サーバーに残っており、削除はしていません。対処方法: 次のコマンドで確認し、\n\n"
        "    popkeep status\n\n"
        "原因を直して (例: max_message_size を大きくする)、次を実行してください。\n\n"
        "    popkeep retry {account}\n",
    ),
    ("ja", "skipped", True): Text(
        "popkeep: 「{account}」のメールはすべて受信できるようになりました",
        "アカウント「{account}」で受信できずに残っているメールはなくなりました\n"
        "({at}。{since} からありました)。対処は不要です。\n",
    ),
}


class Envelope(NamedTuple):
    """Who the message is from and to, and in which language."""

    sender: str  #: ``[service] alert_from``
    recipient: str  #: the account's user (``user@localhost`` when it has no domain)
    language: Language


def alert_uid(alert: Alert, cleared: bool) -> str:
    """The notice's key where a server uid would be (in a Delivery: receipts, logs).
    It is never written to the messages table, so it can neither meet a server's UIDL
    nor be chosen for DELE."""
    notice = "cleared" if cleared else "raised"
    return f"popkeep-alert:{alert.condition}:{_when(alert.raised_at, iso=True)}:{notice}"


def compose(alert: Alert, cleared: bool, envelope: Envelope) -> bytes:
    """The notice as message bytes (CRLF), the same bytes every time for this alert."""
    if cleared and alert.cleared_at is None:
        raise ValueError("a clearing notice needs an alert that is cleared")
    at = alert.cleared_at if cleared and alert.cleared_at is not None else alert.raised_at
    condition: Condition = alert.condition  # type: ignore[assignment] # the store's words
    text = TEXTS[(envelope.language, condition, cleared)]
    fields = {
        "account": alert.account,
        "since": _when(alert.since),
        "at": _when(at),
        "details": alert.details,
    }
    sign = _SIGN_JA if envelope.language == "ja" else _SIGN_EN
    message = EmailMessage(policy=SMTP)  # CRLF; non-ASCII headers as RFC 2047 words
    message["From"] = envelope.sender
    message["To"] = envelope.recipient
    message["Date"] = format_datetime(at.astimezone(UTC))
    message["Message-ID"] = _message_id(alert_uid(alert, cleared), alert.account)
    message["Subject"] = text.subject.format(**fields)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to it
    message["X-Popkeep-Alert"] = f"{alert.condition}; {'cleared' if cleared else 'raised'}"
    message.set_content(text.body.format(**fields) + sign, charset="utf-8")
    return message.as_bytes()


def recipient(user: str) -> str:
    """The To: address for an account's user."""
    return user if "@" in user else f"{user}@localhost"


def _message_id(uid: str, account: str) -> str:
    """Unique per notice and stable (RFC 5322 §3.6.4)."""
    digest = hashlib.sha256(f"{account}\0{uid}".encode()).hexdigest()[:32]
    return f"<{digest}@popkeep.alert>"


def _when(moment: datetime, iso: bool = False) -> str:
    utc = moment.astimezone(UTC)
    if iso:
        return utc.isoformat(timespec="microseconds")
    return utc.strftime("%Y-%m-%d %H:%M UTC")
