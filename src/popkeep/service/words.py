"""The dashboard's words in English and Japanese, and which language a request gets.

Owns: the message catalogue of the dashboard pages (:data:`TEXT`), the Japanese
for the outcome words of ``popkeep status`` (:data:`OUTCOMES_JA`), the choice of
language from a query, a cookie and ``Accept-Language`` (RFC 9110 §12.5.4), and
durations, sizes and counts in plain words. Must not: do I/O or know HTTP
beyond the header's text.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "ja"]
LANGUAGES: tuple[Lang, ...] = ("en", "ja")

#: key → (English, Japanese); ``{name}`` fields are filled by :func:`say`.
TEXT: dict[str, tuple[str, str]] = {
    "title": ("popkeep", "popkeep"),
    "nav.accounts": ("Accounts", "アカウント"),
    "nav.deletions": ("Upcoming deletions", "削除の予定"),
    "nav.history": ("History", "履歴"),
    "nav.planner": ("Planner", "プランナー"),
    "lang.switch": ("日本語", "English"),
    "accounts.heading": ("Accounts", "アカウント"),
    "accounts.none": ("No accounts are configured.", "アカウントが設定されていません。"),
    "last.never": ("not checked yet", "まだ確認していません"),
    "last.label": ("Last check", "前回の確認"),
    "next.label": ("Next check", "次の確認"),
    "next.polling": ("checking now…", "確認中…"),
    "next.held": ("stopped until you fix the account or press “Check now”",
                  "設定を直すか「今すぐ確認」を押すまで止めています"),
    "ok.none": ("signed in, no new mail", "ログインしました。新着メールはありません"),
    "ok.some": ("signed in, {count} new {messages} delivered to {sinks}",
                "ログインし、新着 {count} 通を {sinks} に配送しました"),
    "message.one": ("message", "通"),
    "message.many": ("messages", "通"),
    "streak": ("failed {count} times in a row since {since}", "{since} から {count} 回続けて失敗"),
    "streak.one": ("failed once, at {since}", "{since} に 1 回失敗"),
    "server.says": ("The server said:", "サーバーの応答:"),
    "check.now": ("Check now", "今すぐ確認"),
    "check.asked": ("Checking {name} now.", "{name} を今すぐ確認します。"),
    "quota.label": ("Server usage", "サーバーの使用量"),
    "quota.none": ("{used} on the server ({count} messages); no quota set",
                   "サーバーに {used} ({count} 通)。容量の上限は未設定"),
    "quota.of": ("{used} of {quota} ({percent}%); deletes down to {low}% above {high}%",
                 "{quota} のうち {used} ({percent}%)。{high}% を超えると {low}% まで削除"),
    "quota.unknown": ("not known until a check succeeds", "確認が成功するまで不明"),
    "skipped.label": ("Skipped messages", "取り込めなかったメッセージ"),
    "skipped.none": ("none", "なし"),
    "phase.waiting": ("waiting", "待機中"),
    "phase.polling": ("checking", "確認中"),
    "phase.backing_off": ("failing, retrying less often", "失敗中 (間隔を空けて再試行)"),
    "phase.held": ("stopped: sign-in refused", "停止中: ログイン拒否"),
    "phase.server_delay": ("the server asked to wait", "サーバーの指示で待機中"),
    "deletions.heading": ("Upcoming deletions at the provider",
                          "プロバイダーのサーバーで削除される予定"),
    "deletions.intro": ("What retention will delete from each provider's server in the "
                        "coming days, and why — the same plan as popkeep schedule.",
                        "保存期間の設定により、今後プロバイダーのサーバーから削除されるメッセージと"
                        "その理由です (popkeep schedule と同じ計画)。"),
    "deletions.none": ("nothing planned", "予定はありません"),
    "deletions.summary": ("{count} {messages} ({size}), {now} at the next check",
                          "{count} 通 ({size})、うち次の確認で {now} 通"),
    "deletions.when": ("When", "日時"),
    "deletions.size": ("Size", "サイズ"),
    "deletions.why": ("Why", "理由"),
    "deletions.age": ("delete_after elapses (age)", "保存期間 (delete_after) の経過"),
    "deletions.next_check": ("at the next check", "次の確認時"),
    "deletions.more": ("and {count} more", "ほか {count} 通"),
    "history.heading": ("History", "履歴"),
    "history.delivered": ("Messages delivered per day (last {days} days)",
                          "1 日ごとの配送数 (直近 {days} 日)"),
    "history.runs": ("Recent checks", "最近の確認"),
    "history.alerts": ("Alerts", "アラート"),
    "history.no_alerts": ("No alerts raised.", "アラートはありません。"),
    "history.no_runs": ("No checks yet.", "まだ確認していません。"),
    "history.raised": ("raised {at}", "{at} に発生"),
    "history.cleared": ("cleared {at}", "{at} に解消"),
    "history.active": ("still active", "継続中"),
    "col.time": ("Time", "日時"),
    "col.account": ("Account", "アカウント"),
    "col.outcome": ("Outcome", "結果"),
    "col.delivered": ("Delivered", "配送"),
    "col.deleted": ("Deleted", "削除"),
    "planner.heading": ("Planner: which device would miss mail?",
                        "プランナー: どの端末がメールを取りこぼす?"),
    "planner.intro": ("Several devices reading one POP mailbox, each deleting what it "
                      "downloaded after the retention: this simulates who misses what.",
                      "複数の端末が 1 つの POP メールボックスを読み、それぞれ保存期間が過ぎたら"
                      "削除する場合に、どの端末がどのメールを取りこぼすかを試算します。"),
    "planner.devices": ("Devices and when they check (one per line: name = schedule)",
                        "端末と確認のタイミング (1 行に 1 台: 名前 = スケジュール)"),
    "planner.retention": ("Retention (delete after)", "保存期間 (この期間後に削除)"),
    "planner.quota": ("Provider quota", "プロバイダーの容量"),
    "planner.per_day": ("Messages a day", "1 日のメール数"),
    "planner.mean_size": ("Mean message size", "平均サイズ"),
    "planner.messages": ("Or these arrivals (comma-separated time points)",
                         "または到着時刻を指定 (カンマ区切り)"),
    "planner.horizon": ("Simulate for", "試算する期間"),
    "planner.run": ("Simulate", "試算する"),
    "planner.example": ("The 14-day example (phone, desktop, laptop)",
                        "14 日の例 (スマートフォン、デスクトップ、ノート PC)"),
    "planner.volume": ("Prefilled with your mail volume: {per_day} a day, mean {size}.",
                       "あなたのメール量で入力済み: 1 日 {per_day} 通、平均 {size}。"),
    "planner.result": ("Result", "結果"),
    "planner.timeline": ("Timeline", "タイムライン"),
    "planner.usage": ("Server usage", "サーバーの使用量"),
    "planner.advice": ("Recommendation", "おすすめ"),
    "col.device": ("Device", "端末"),
    "col.retention": ("Retention", "保存期間"),
    "col.checks": ("Checks", "確認回数"),
    "col.received": ("Received", "受信"),
    "col.missed": ("Missed", "取りこぼし"),
    "col.gap": ("Longest gap", "最長の間隔"),
    "misses": ("{name} misses {count} {messages}. The first one: {story}.",
               "{name} は {count} 通を取りこぼします。最初の 1 通: {story}。"),
    "nojs": ("This page refreshes when you reload it.", "再読み込みすると最新の状態になります。"),
    "updated": ("Updated {at}", "{at} 更新"),
    "tz.label": ("Times in {zone}", "時刻は {zone}"),
    "csrf": ("The form expired or came from another site; reload the page and try again.",
             "フォームの期限が切れたか、別のサイトから送信されました。再読み込みしてください。"),
}

#: ``popkeep status``'s outcome words (errors.OUTCOME_WORDS) in Japanese.
OUTCOMES_JA: dict[str, str] = {
    "ok": "成功",
    "wrong password": "パスワードが違います",
    "server busy": "サーバーが混雑しています",
    "refused by the server": "サーバーに拒否されました",
    "server error": "サーバーのエラー",
    "connection refused or lost": "接続できないか切断されました",
    "server did not answer": "サーバーが応答しません",
    "wrong tls setting for the port": "ポートの TLS 設定が違います",
    "certificate not trusted": "証明書を信頼できません",
    "network error": "ネットワークのエラー",
    "server offers no TLS": "サーバーが TLS を提供していません",
    "server sent too much": "サーバーの応答が大きすぎます",
    "internal error": "内部エラー",
    "server broke the protocol": "サーバーがプロトコルに違反しました",
    "delivery refused": "配送が拒否されました",
    "delivery failed": "配送に失敗しました",
    "a message was skipped": "取り込めないメッセージがありました",
    "configuration error": "設定のエラー",
    "cannot write a local file": "ローカルのファイルに書き込めません",
    "state database error": "状態データベースのエラー",
    "another fetch was running": "別の fetch が実行中でした",
    "failed": "失敗",
}


def say(lang: Lang, key: str, **fields: object) -> str:
    """The text of ``key`` in ``lang`` with ``fields`` filled in."""
    en, ja = TEXT[key]
    return (ja if lang == "ja" else en).format(**fields)


def outcome(lang: Lang, words: str) -> str:
    """An outcome of ``popkeep status`` (English words) in ``lang``."""
    return OUTCOMES_JA.get(words, words) if lang == "ja" else words


def messages(lang: Lang, count: int) -> str:
    return say(lang, "message.one" if count == 1 else "message.many")


def choose(query: str | None, cookie: str | None, accept: str) -> Lang:
    """``?lang=`` wins, then the ``lang`` cookie, then the best of ``Accept-Language``
    (weights ``q=`` as RFC 9110 §12.4.2 says), else English."""
    for given in (query, cookie):
        if given in LANGUAGES:
            return given
    best: tuple[float, Lang] = (0.0, "en")
    for order, item in enumerate(accept.split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        weight = _weight(params)
        if primary in LANGUAGES and weight > best[0] and weight > 0:
            best = (weight - order * 1e-6, primary)
    return best[1]


def _weight(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def octets(size: int | float) -> str:
    """A size in decimal units, as people read them (``1.2 MB``)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover (the loop returns at GB)


__all__ = ["LANGUAGES", "OUTCOMES_JA", "TEXT", "Lang", "choose", "messages", "octets",
           "outcome", "say"]
