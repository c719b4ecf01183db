"""Rendering bench/RESULTS.md from the run records.

Per scenario and transport: a table of medians (wall, CPU, peak RSS) with the
verification status, then the ratios popkeep/raw, popkeep/mpop,
popkeep/fetchmail, popkeep/getmail6 of the median wall times. A tool with a
failed run (bad exit code or failed verification) is flagged, and no ratio is
computed against it: nobody is ranked on a run that did not store everything.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from typing import Any

PEERS = ("raw", "mpop", "fetchmail", "getmail6")
SCENARIO_TEXT = {
    "2k": "bulk fetch of {corpus}; fresh Maildir and fresh state every run",
    "20k": "bulk fetch of {corpus}; fresh Maildir and fresh state every run",
    "big": "bulk fetch of {corpus}; fresh Maildir and fresh state every run",
    "noop": "no-op poll: second run on the 20k mailbox ({corpus}), nothing new; "
    "each tool's state primed by a full fetch first",
}
# The bar for popkeep/raw (wall) per scenario: issue 5's 1.5, and issue 17's 1.2 for
# bulk collection ("2k and 20k mailboxes in at most 1.2× the raw reference's time").
BAR = {"2k": 1.2, "20k": 1.2, "noop": 1.5, "big": 1.5}
BIG_RSS_BAR_MB = 64.0
STARTUP_BAR_S = 0.150


VERSION_COMMANDS = (
    ["mpop", "--version"],
    ["fetchmail", "--version"],
    ["getmail", "--version"],
    ["procmail", "-v"],
    ["dovecot", "--version"],
)


def _version(argv: list[str]) -> str:
    """The first informative line of a tool's version output."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return f"{argv[0]}: not installed"
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip() and "WARNING" not in line:
            return f"{argv[0]}: {line.strip()}"
    return f"{argv[0]}: ?"


def machine() -> str:
    try:
        cpu = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout
    except OSError:
        cpu = str(os.cpu_count())
    tools = [_version(argv) for argv in VERSION_COMMANDS]
    return (
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"- CPUs (nproc): {cpu.strip()}\n"
        f"- kernel: {platform.system()} {platform.release()}\n"
        f"- Python: {platform.python_version()}\n" + "".join(f"- {t}\n" for t in tools if t)
    )


def summarize(records: Sequence[Any]) -> dict[str, Any]:
    """Medians over a tool's completed runs in one scenario; 'ok' only if every run verified.

    A run that did not complete (bad exit code, messages missing) is left out
    of the medians when at least one run completed, and always flagged.
    """
    completed = [r for r in records if r.verified or r.refold_only] or list(records)
    reasons = dict.fromkeys(
        r.verdict if r.ok_exit else f"exit {r.exit_code}; {r.verdict}"
        for r in records
        if not r.verified
    )
    return {
        "wall": statistics.median(r.wall_s for r in completed),
        "cpu": statistics.median(r.cpu_s for r in completed),
        "rss": statistics.median(r.rss_mb for r in completed),
        "ok": all(r.verified for r in records),
        # Flagged, but still compared (marked †): all there, some headers re-folded.
        "refold": all(r.verified or r.refold_only for r in records)
        and not all(r.verified for r in records),
        "runs": len(records),
        "good": sum(r.verified for r in records),
        "why": " / ".join(reasons),
    }


def _ratio(s: dict[str, dict[str, Any]], peer: str) -> str:
    me, other = s.get("popkeep"), s.get(peer)
    if other is None:
        return "not run"
    if not (other["ok"] or other["refold"]):
        return f"{peer} failed"
    if me is None:
        return "popkeep not run"
    if not me["ok"]:
        return "popkeep failed"
    mark = "†" if other["refold"] else ""
    return f"{me['wall'] / other['wall']:.2f}{mark}" if other["wall"] > 0 else "n/a"


def scenario_section(scenario: str, tls: str, records: Sequence[Any], corpus: str) -> str:
    tools_seen = list(dict.fromkeys(r.tool for r in records))
    stats = {t: summarize([r for r in records if r.tool == t]) for t in tools_seen}
    lines = [
        f"### {scenario} — {'POP3S (implicit TLS)' if tls == 'tls' else 'plain POP3'}",
        "",
        SCENARIO_TEXT.get(scenario, scenario).format(corpus=corpus) + ".",
        "",
        "| tool | median wall s | median CPU s | median peak RSS MB | verified | runs |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for tool, st in stats.items():
        verified = "yes" if st["ok"] else f"**NO**{'†' if st['refold'] else ''} — {st['why']}"
        lines.append(
            f"| {tool} | {st['wall']:.3f} | {st['cpu']:.3f} | {st['rss']:.1f} | "
            f"{verified} | {st['good']}/{st['runs']} |"
        )
    lines += [
        "",
        "| popkeep/raw | popkeep/mpop | popkeep/fetchmail | popkeep/getmail6 |",
        "|---:|---:|---:|---:|",
        "| " + " | ".join(_ratio(stats, p) for p in PEERS) + " |",
        "",
    ]
    if any(st["refold"] for st in stats.values()):
        lines += [
            "† stored every message, but re-folded long header fields (bytes altered): "
            "compared for speed, flagged for correctness.",
            "",
        ]
    lines.append(bar_line(scenario, stats))
    return "\n".join(lines) + "\n"


def bar_line(scenario: str, stats: dict[str, dict[str, Any]]) -> str:
    me, raw = stats.get("popkeep"), stats.get("raw")
    if not me or not me["ok"] or not raw or not raw["ok"]:
        return "Bar: not evaluated (popkeep or raw missing or failed).\n"
    ratio = me["wall"] / raw["wall"] if raw["wall"] else float("inf")
    cpu = f"{me['cpu'] / raw['cpu']:.2f}" if raw["cpu"] else "n/a"
    verdict = f"popkeep/raw = {ratio:.2f} (bar ≤ {BAR.get(scenario, 1.5)}): " + (
        "**met**" if ratio <= BAR.get(scenario, 1.5) else "**not met**"
    ) + f"; CPU popkeep/raw = {cpu}"
    if scenario == "big":
        verdict += f"; peak RSS {me['rss']:.1f} MB (bar < {BIG_RSS_BAR_MB:.0f} MB): " + (
            "**met**" if me["rss"] < BIG_RSS_BAR_MB else "**not met**"
        )
    return f"Bar: {verdict}.\n"


def startup_section(fig: dict[str, Any] | None) -> str:
    if fig is None:
        return ""
    head = "## Startup (popkeep, median of 10, CPU = user + system)\n\n"
    if "error" in fig:
        return head + f"Not measured: {fig['error']}.\n"

    def cell(ok: bool, cpu: float, wall: float) -> str:
        if not ok:
            return "failed | — | —"
        met = "met" if cpu < STARTUP_BAR_S else "**not met**"
        return f"{cpu * 1000:.1f} ms | {wall * 1000:.1f} ms | {met}"

    rows = [
        "| command | CPU | wall | bar (< 150 ms CPU) |",
        "|---|---:|---:|---|",
        "| `popkeep --version` | "
        f"{cell(fig['version_ok'], fig['version_cpu_s'], fig['version_wall_s'])} |",
        f"| no-op `popkeep fetch`, one 10-message account | "
        f"{cell(fig['noop_ok'], fig['noop_cpu_s'], fig['noop_wall_s'])} |",
    ]
    detail = f"\npopkeep fetch failed: `{fig['noop_detail']}`\n" if fig.get("noop_detail") else ""
    return head + "\n".join(rows) + "\n" + detail + _startup_context(fig)


def _startup_context(fig: dict[str, Any]) -> str:
    """The machine's speed during the start-up runs, and the instruction counts."""
    out = []
    floor = fig.get("floor_cpu_s")
    if floor is not None:
        out.append(
            f"\nMachine speed meanwhile: the same Python importing asyncio and nothing "
            f"else took {floor * 1000:.0f} ms of CPU (median of 10, interleaved with "
            f"popkeep's runs); popkeep's no-op fetch is {fig['noop_cpu_s'] / floor:.2f}× that.\n"
        )
    counts = fig.get("instructions")
    if isinstance(counts, dict) and counts:
        cells = {k: f"{v / 1e6:.0f} M" for k, v in counts.items()}
        out.append(
            "\nInstructions executed (valgrind callgrind, independent of machine load): "
            f"`popkeep --version` {cells.get('version', '—')}, no-op fetch "
            f"{cells.get('noop', '—')}; `python -c \"import asyncio\"` "
            f"{cells.get('floor', '—')}.\n"
        )
    elif isinstance(counts, str):
        out.append(f"\nInstructions not counted: {counts}.\n")
    return "".join(out)


def ab_section(records: Sequence[Any], startup: dict[str, Any] | None) -> str:
    """popkeep (new) against popkeep-old, run alternating in this same invocation.

    Ratios of medians; a ratio against a build with a failed run is not given. The
    load is the 1-minute load average when each run started (min–max).
    """
    if not any(r.tool == "popkeep-old" for r in records):
        return ""
    out = [
        "## A/B: popkeep (new) against popkeep-old, alternating run by run",
        "",
        "| scenario | new wall ms | old wall ms | new/old | new/raw | old/raw "
        "| new CPU ms | old CPU ms | load | runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for scenario in dict.fromkeys(r.scenario for r in records):
        if scenario.endswith("-prime"):
            continue
        for tls in ("plain", "tls"):
            group = [r for r in records if r.scenario == scenario and r.tls == tls]
            stats = {
                tool: summarize([r for r in group if r.tool == tool])
                for tool in ("popkeep", "popkeep-old", "raw")
                if any(r.tool == tool for r in group)
            }
            new, old = stats.get("popkeep"), stats.get("popkeep-old")
            if new is None or old is None:
                continue
            loads = [r.load1 for r in group if r.tool in stats and hasattr(r, "load1")]
            load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "?"
            out.append(
                f"| {scenario} {tls} | {new['wall'] * 1000:.1f} | {old['wall'] * 1000:.1f} "
                f"| {_over(new, old)} | {_over(new, stats.get('raw'))} "
                f"| {_over(old, stats.get('raw'))} | {new['cpu'] * 1000:.1f} "
                f"| {old['cpu'] * 1000:.1f} | {load} | {new['runs']} |"
            )
    builds = (startup or {}).get("builds") or {}
    old_start = builds.get("popkeep-old")
    if startup and old_start:
        out += ["", _ab_startup(startup, old_start)]
    return "\n".join(out) + "\n"


def _over(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "wall") -> str:
    if a is None or b is None:
        return "not run"
    if not (a["ok"] and (b["ok"] or b["refold"])) or b[key] <= 0:
        return "failed"
    return f"{a[key] / b[key]:.3f}"


def _ab_startup(new: dict[str, Any], old: dict[str, Any]) -> str:
    load = new.get("load")
    rows = [
        f"Start-up, median of {new.get('runs', 10)} alternating runs"
        + (f" (load {load[0]:.1f}–{load[1]:.1f}):" if load else ":"),
        "",
        "| command | new ms | old ms | new/old |",
        "|---|---:|---:|---:|",
    ]
    for label, key in (
        ("`--version` CPU", "version_cpu_s"),
        ("`--version` wall", "version_wall_s"),
        ("no-op fetch CPU", "noop_cpu_s"),
        ("no-op fetch wall", "noop_wall_s"),
    ):
        a, b = new[key], old[key]
        ratio = f"{a / b:.3f}" if b else "n/a"
        rows.append(f"| {label} | {a * 1000:.1f} | {b * 1000:.1f} | {ratio} |")
    counts_new, counts_old = new.get("instructions"), old.get("instructions")
    if isinstance(counts_new, dict) and isinstance(counts_old, dict):
        for key in ("version", "noop"):
            if key in counts_new and key in counts_old:
                a, b = counts_new[key], counts_old[key]
                rows.append(
                    f"| instructions, {key} (callgrind) | {a / 1e6:.1f} M | {b / 1e6:.1f} M "
                    f"| {a / b:.3f} |"
                )
    return "\n".join(rows)


def failures_section(records: Sequence[Any]) -> str:
    bad = [r for r in records if not r.verified]
    if not bad:
        return ""
    out = ["## Failed runs (first 10)", ""]
    for r in bad[:10]:
        tail = " ".join(r.stderr_tail.strip().split())[-300:]
        out.append(
            f"- {r.scenario}/{r.tls} {r.tool} run {r.run}: exit {r.exit_code}; "
            f"{r.verdict}; stderr: `{tail}`"
        )
    return "\n".join(out) + "\n"


def render(
    args: argparse.Namespace,
    records: Sequence[Any],
    startup: dict[str, Any] | None,
    elapsed: float,
    corpora: dict[str, str],
) -> str:
    """The whole RESULTS.md; ``corpora`` describes each scenario's mailbox."""
    parts = [
        "# Benchmark results",
        "",
        "Generated by `bench/run` — do not edit by hand. See bench/README.md.",
        "",
        machine(),
        f"- command: `bench/run {' '.join(getattr(args, 'argv', []) or [])}` "
        f"(scenarios {','.join(args.scenarios)}; tools {','.join(args.tools)}; "
        f"{args.runs} run(s) each{'; QUICK: small corpora' if args.quick else ''}"
        f"{'; --skip-slow' if args.skip_slow else ''}); total {elapsed / 60:.1f} min",
        "",
        "## Bulk fetch and no-op poll",
        "",
    ]
    for scenario in dict.fromkeys(r.scenario for r in records):
        if scenario.endswith("-prime"):
            continue
        for tls in ("plain", "tls"):
            group = [
                r for r in records if r.scenario in (scenario, scenario + "-prime") and r.tls == tls
            ]
            if group:
                parts.append(scenario_section(scenario, tls, group, corpora.get(scenario, "?")))
    parts.append(startup_section(startup))
    parts.append(ab_section(records, startup))
    parts.append(failures_section(records))
    return "\n".join(parts)
