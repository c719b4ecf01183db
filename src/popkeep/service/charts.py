"""The dashboard's pictures as SVG markup, drawn on the server.

Owns: the quota bar with its high and low marks, the bars of messages per day
(stacked by account), the per-day counts of upcoming deletions, and the
planner's timeline and server-usage curve. Every text that goes into the markup
is escaped here; colours are presentation attributes and classes (the pages'
Content-Security-Policy forbids inline styles). Must not: do I/O, or know
HTTP or the templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

#: colours of the series, cycled (an account per colour)
PALETTE = ("#2b6cb0", "#d69e2e", "#38a169", "#805ad5", "#dd6b20", "#319795", "#e53e3e")
WIDTH = 640


def _svg(width: int, height: int, body: Sequence[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")  # fmt: skip


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "t") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">'
            f"{escape(text)}</text>")  # fmt: skip


def quota_bar(used: int, quota: int, high: float, low: float, label: str) -> str:
    """Usage against ``quota`` as a bar, with ticks at the ``high`` and ``low`` marks
    (fractions of the quota); the bar turns red above the high mark."""
    width, height, top = 300, 22, 2
    share = min(1.0, used / quota) if quota else 0.0
    colour = "#c53030" if share > high else "#2f855a"
    body = [
        f'<rect x="0" y="{top}" width="{width}" height="14" rx="3" fill="#e2e8f0"/>',
        f'<rect x="0" y="{top}" width="{share * width:.1f}" height="14" rx="3" '
        f'fill="{colour}" class="used"/>',
    ]
    for mark, cls in ((high, "high"), (low, "low")):
        x = mark * width
        body.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#1a202c" '
                    f'stroke-width="2" class="{cls}"/>')  # fmt: skip
    return _svg(width, height, body, label)


def daily_bars(
    days: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], label: str,
    legend: bool = True,
) -> str:
    """Stacked bars: one per day (``days`` are the axis labels), one colour per
    ``(name, counts)`` series, with a legend of the names."""
    height, bottom, left = 220, 180, 30
    totals = [sum(s[1][k] for s in series) for k in range(len(days))]
    peak = max([1, *totals])
    slot = (WIDTH - left) / max(1, len(days))
    body = [_text(left - 4, 14, str(peak), "end"), _text(left - 4, bottom, "0", "end"),
            f'<line x1="{left}" y1="{bottom}" x2="{WIDTH}" y2="{bottom}" stroke="#718096"/>']
    for k, day in enumerate(days):
        x, base = left + k * slot, float(bottom)
        for n, (_, counts) in enumerate(series):
            h = counts[k] / peak * (bottom - 10)
            if h > 0:
                base -= h
                body.append(f'<rect x="{x + 1:.1f}" y="{base:.1f}" width="{slot - 2:.1f}" '
                            f'height="{h:.1f}" fill="{PALETTE[n % len(PALETTE)]}" '
                            f'class="bar"><title>{escape(day)}: {counts[k]}</title></rect>')
        if k % max(1, len(days) // 7) == 0:
            body.append(_text(x + slot / 2, bottom + 14, day, "middle"))
    for n, (name, _) in enumerate(series if legend else ()):
        x = left + n * 120
        body.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
                    f'fill="{PALETTE[n % len(PALETTE)]}"/>')
        body.append(_text(x + 14, height - 5, name))
    return _svg(WIDTH, height, body, label)


def deletion_days(days: Sequence[str], counts: Sequence[int], label: str) -> str:
    """Bars of how many messages retention deletes on each coming day."""
    return daily_bars(days, [("", counts)], label, legend=False)


def plan_timeline(
    horizon: float, rows: Sequence[tuple[str, Sequence[float]]],
    marks: Sequence[tuple[float, str, str]], label: str,
) -> str:
    """One row per device with a tick at each check (seconds from day 1 00:00),
    and vertical ``marks`` ``(time, text, class)`` across the rows (a missed
    message's arrival and deletion)."""
    left, row_h, top = 90, 28, 24
    height = top + row_h * len(rows) + 24
    span = WIDTH - left - 10
    days = max(1, round(horizon / 86400))

    def x(t: float) -> float:
        return left + min(1.0, max(0.0, t / horizon)) * span

    body: list[str] = []
    step = max(1, days // 10)
    for d in range(0, days + 1, step):
        body.append(_text(x(d * 86400), top - 8, f"{d + 1}", "middle"))
    for n, (name, checks) in enumerate(rows):
        y = top + n * row_h + row_h / 2
        body.append(_text(left - 8, y + 4, name, "end"))
        body.append(f'<line x1="{left}" y1="{y}" x2="{left + span}" y2="{y}" stroke="#cbd5e0"/>')
        seen: set[int] = set()
        for t in checks:
            px = round(x(t))
            if px not in seen and t <= horizon:
                seen.add(px)
                body.append(f'<line x1="{px}" y1="{y - 8}" x2="{px}" y2="{y + 8}" '
                            f'stroke="{PALETTE[n % len(PALETTE)]}" stroke-width="2"/>')
    bottom = top + row_h * len(rows)
    for t, text, cls in marks:
        body.append(f'<line x1="{x(t):.1f}" y1="{top - 4}" x2="{x(t):.1f}" y2="{bottom}" '
                    f'class="mark {cls}" stroke-dasharray="4 3"/>')
        body.append(_text(x(t), bottom + 16, text, "middle", f"t {cls}"))
    return _svg(WIDTH, height, body, label)


def usage_curve(usage_by_day: Sequence[int], quota: int | None, label: str) -> str:
    """The highest server usage of each simulated day, against the quota line."""
    height, bottom, left = 180, 160, 70
    peak = max([1, *usage_by_day, quota or 0])
    span = WIDTH - left - 10
    n = max(1, len(usage_by_day) - 1)
    points = " ".join(f"{left + k / n * span:.1f},{bottom - v / peak * (bottom - 10):.1f}"
                      for k, v in enumerate(usage_by_day))  # fmt: skip
    body = [f'<line x1="{left}" y1="{bottom}" x2="{left + span}" y2="{bottom}" stroke="#718096"/>',
            _text(left - 6, 14, _size(peak), "end"), _text(left - 6, bottom, "0", "end"),
            f'<polyline points="{points}" fill="none" stroke="#2b6cb0" stroke-width="2"/>']
    if quota:
        y = bottom - quota / peak * (bottom - 10)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + span}" y2="{y:.1f}" '
                    f'stroke="#c53030" stroke-dasharray="6 4" class="quota"/>')
    return _svg(WIDTH, height, body, label)


def _size(octets: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if octets < 1000 or unit == "GB":
            return f"{octets:.0f} {unit}"
        octets /= 1000
    return f"{octets:.0f} GB"  # pragma: no cover


__all__ = ["daily_bars", "deletion_days", "plan_timeline", "quota_bar", "usage_curve"]
