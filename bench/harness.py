"""The benchmark: popkeep against mpop, fetchmail, getmail6 and the raw reference.

Owns: starting the private Dovecot (tests/fixtures/dovecot.py, the same code the
tests use), filling one mailbox per corpus deterministically
(popkeep.testing.mailgen), running every tool in alternation (ABCD ABCD ABCD),
verifying every run, and writing bench/RESULTS.md via :mod:`report`.
Must not: know how a tool is configured (:mod:`tools`), how time is measured or
a Maildir verified (:mod:`measure`).

Entry point: ``bench/run --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "src"))
sys.path.insert(0, str(BENCH_DIR.parent))  # tests.fixtures: the tests' Dovecot, not in the wheel

import measure  # noqa: E402
import report  # noqa: E402
import tools  # noqa: E402
from tests.fixtures.dovecot import Dovecot  # noqa: E402

from popkeep.testing import mailgen  # noqa: E402

WORK = BENCH_DIR / "work"
PASSWORD = "bench-secret"
SEED = 5
BIG_SIZE = 200 * 1024 * 1024
QUICK_COUNT = 200
QUICK_BIG = 8 * 1024 * 1024
ALL_SCENARIOS = ("2k", "20k", "big", "noop")
ALL_TOOLS = ("popkeep", "raw", "mpop", "fetchmail", "getmail6")
SLOW = {("getmail6", "20k"), ("getmail6", "noop")}


@dataclass(frozen=True)
class Corpus:
    user: str
    count: int  # realistic messages; 0 means one big message
    big_size: int = 0


@dataclass
class Record:
    """One timed run (or one failure to run)."""

    scenario: str
    tls: str
    tool: str
    run: int
    wall_s: float
    cpu_s: float
    rss_mb: float
    exit_code: int
    ok_exit: bool
    verified: bool
    verdict: str
    stderr_tail: str = ""
    refold_only: bool = False
    load1: float = 0.0  #: the 1-minute load average when the run started


@dataclass
class Bench:
    args: argparse.Namespace
    dovecot: Dovecot
    expected: dict[str, measure.Expected] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    # (tool, tls) -> work dir of a verified 20k bulk run: primed state for the no-op poll.
    primed: dict[tuple[str, str], Path] = field(default_factory=dict)
    #: work dirs removed only when the benchmark ends (see warm_up and bulk)
    leftovers: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def corpora(quick: bool) -> dict[str, Corpus]:
    n2k, n20k = (QUICK_COUNT, QUICK_COUNT) if quick else (2000, 20000)
    return {
        "2k": Corpus("m2k", n2k),
        "20k": Corpus("m20k", n20k),
        "noop": Corpus("m20k", n20k),
        "big": Corpus("mbig", 0, QUICK_BIG if quick else BIG_SIZE),
        "startup": Corpus("small", 10),
    }


def _generate(corpus: Corpus) -> Iterator[bytes]:
    if corpus.count:
        yield from mailgen.realistic_mailbox(corpus.count, seed=SEED)
    else:
        yield b"".join(mailgen.big_message(corpus.big_size, seed=SEED))


def fill(bench: Bench, corpus: Corpus) -> None:
    """Fill the corpus' mailbox once; remember the LF-form digests to verify against."""
    if corpus.user in bench.expected:
        return
    started = time.monotonic()
    digests = measure.Expected()

    def hashing() -> Iterator[bytes]:
        for message in _generate(corpus):
            digests.add(message)
            yield message

    bench.dovecot.add_user(corpus.user)
    bench.dovecot.add_messages(corpus.user, hashing())
    bench.expected[corpus.user] = digests
    bench.log(
        f"filled {corpus.user}: {digests.count} messages in {time.monotonic() - started:.1f} s"
    )
    warm_up(bench, corpus)


def server_for(bench: Bench, corpus: Corpus, tls: str) -> tools.Server:
    d = bench.dovecot
    port = d.pop3s_port if tls == "tls" else d.pop3_port
    return tools.Server(d.host, port, tls == "tls", d.ca_file, corpus.user, d.password)


def warm_up(bench: Bench, corpus: Corpus) -> None:
    """One untimed raw fetch so Dovecot's index and uidlist exist before timing."""
    workdir = fresh_dir("warmup-" + corpus.user)
    run = tools.Run(workdir, server_for(bench, corpus, "plain"))
    cmd = tools.TOOLS["raw"].prepare(run)
    m = measure.run_timed(cmd.argv, cmd.env, workdir, bench.args.timeout)
    if m.exit_code != 0:
        raise SystemExit(f"warm-up fetch failed: {m.stderr_tail}")
    # Kept until the benchmark ends: removing its files now would slow the first timed run.
    bench.leftovers.append(workdir)


def fresh_dir(name: str) -> Path:
    path = WORK / "runs" / name
    measure.remove_tree(path)
    path.mkdir(parents=True)
    return path


def timed_run(
    bench: Bench,
    tool: tools.Tool,
    run: tools.Run,
    label: tuple[str, str, int],
    expected: measure.Expected,
) -> Record:
    scenario, tls, index = label
    why = tool.available()
    if why is not None:
        return Record(
            scenario, tls, tool.name, index, 0, 0, 0, 127, False, False, f"not run: {why}", why
        )
    cmd = tool.prepare(run)
    load = load1()
    m = measure.run_timed(cmd.argv, cmd.env, run.workdir, bench.args.timeout)
    verdict = measure.verify(run.maildir, expected)
    ok_exit = m.exit_code in tool.ok_codes
    rec = Record(
        scenario,
        tls,
        tool.name,
        index,
        m.wall_s,
        m.cpu_s,
        m.rss_mb,
        m.exit_code,
        ok_exit,
        ok_exit and verdict.ok,
        verdict.describe(),
        m.stderr_tail,
        ok_exit and verdict.refold_only,
        load,
    )
    status = "ok" if rec.verified else f"FAILED (exit {m.exit_code}; {rec.verdict})"
    bench.log(
        f"{scenario}/{tls} #{index} {tool.name:9s} wall {m.wall_s:8.3f} s  "
        f"cpu {m.cpu_s:8.3f} s  rss {m.rss_mb:7.1f} MB  load {load:4.2f}  {status}"
    )
    if not rec.verified and m.stderr_tail.strip():
        bench.log(f"  {tool.name} stderr: {m.stderr_tail.strip()[-400:]}")
    return rec


def selected_tools(bench: Bench, scenario: str) -> list[tools.Tool]:
    out = []
    for name in bench.args.tools:
        if bench.args.skip_slow and (name, scenario) in SLOW:
            continue
        out.append(tools.TOOLS[name])
    return out


def bulk(bench: Bench, scenario: str, tls: str) -> None:
    """Fresh Maildir and fresh state for every run; the last verified 20k run primes noop."""
    corpus = corpora(bench.args.quick)[scenario]
    fill(bench, corpus)
    tools_here = selected_tools(bench, scenario)
    if not tools_here:
        return
    # Removing a run's files slows file creation in the runs after it (measure.SETTLE_S),
    # so runs are removed when the benchmark ends, if the disk has room for them.
    need = bench.expected[corpus.user].octets * len(tools_here) * bench.args.runs * 1.3
    defer = shutil.disk_usage(WORK).free > need + (4 << 30)
    # Deferred: removed when the benchmark ends; else right away, primed dirs at the end here.
    later = bench.leftovers if defer else []
    for index in range(1, bench.args.runs + 1):
        # Each run starts with another tool: none is always the first after a removal.
        turn = (index - 1) % len(tools_here)
        for tool in tools_here[turn:] + tools_here[:turn]:
            workdir = fresh_dir(f"{scenario}-{tls}-{tool.name}-{index}")
            run = tools.Run(workdir, server_for(bench, corpus, tls))
            rec = timed_run(bench, tool, run, (scenario, tls, index), bench.expected[corpus.user])
            bench.records.append(rec)
            if scenario == "20k" and (rec.verified or rec.refold_only):
                previous = bench.primed.get((tool.name, tls))
                if previous is not None:
                    later.append(previous)
                bench.primed[(tool.name, tls)] = workdir
            elif not rec.verified and bench.args.keep_failed:
                workdir.rename(workdir.with_name(f"{workdir.name}-failed"))
            elif defer:
                later.append(workdir)
            else:
                measure.remove_tree(workdir)
    if not defer:
        for workdir in later:
            measure.remove_tree(workdir)


def prime(bench: Bench, tool: tools.Tool, tls: str, corpus: Corpus, scenario: str) -> Path | None:
    """A work dir whose state has seen every message (reusing the 20k bulk run's)."""
    reused = bench.primed.get((tool.name, tls))
    if reused is not None and corpus.user == "m20k":
        return reused
    workdir = fresh_dir(f"{scenario}-{tls}-{tool.name}")
    run = tools.Run(workdir, server_for(bench, corpus, tls))
    rec = timed_run(bench, tool, run, (scenario + "-prime", tls, 0), bench.expected[corpus.user])
    if not (rec.verified or rec.refold_only):
        bench.records.append(rec)  # shows up as the tool's failure for this scenario
        return None
    return workdir


def noop(bench: Bench, scenario: str, tls: str) -> None:
    """Second run when nothing is new: prime each tool's state, then time it again and again."""
    corpus = corpora(bench.args.quick)[scenario]
    fill(bench, corpus)
    tools_here = selected_tools(bench, scenario)
    workdirs: dict[str, Path | None] = {}
    for tool in tools_here:
        workdirs[tool.name] = prime(bench, tool, tls, corpus, scenario)
    for index in range(1, bench.args.runs + 1):
        # Each round starts with another tool, as in bulk(): none always goes first
        # (right after the previous round's last poll, or the priming).
        turn = (index - 1) % len(tools_here)
        for tool in tools_here[turn:] + tools_here[:turn]:
            workdir = workdirs[tool.name]
            if workdir is None:
                continue
            run = tools.Run(workdir, server_for(bench, corpus, tls))
            rec = timed_run(bench, tool, run, (scenario, tls, index), bench.expected[corpus.user])
            bench.records.append(rec)
    for workdir in workdirs.values():
        if workdir is not None:
            measure.remove_tree(workdir)


def startup(bench: Bench) -> dict[str, object]:
    """CPU and wall of ``popkeep --version`` and of a no-op fetch of one small account.

    Median of ``--startup-runs``. With both popkeep builds selected (A/B), the old
    build's runs alternate with the new one's, command by command, so the machine's
    load hits both alike; its figures are under ``"builds"``.
    """
    why = tools.TOOLS["popkeep"].available()
    if why is not None:
        return {"error": why}
    corpus = corpora(bench.args.quick)["startup"]
    fill(bench, corpus)
    builds = [
        tool
        for name in tools.POPKEEPS
        if name in bench.args.tools and (tool := tools.TOOLS[name]).available() is None
    ] or [tools.TOOLS["popkeep"]]
    commands: dict[str, tuple[tools.Command, Path]] = {}
    for tool in builds:
        workdir = fresh_dir(f"startup-{tool.name}")
        run = tools.Run(workdir, server_for(bench, corpus, "plain"))
        commands[tool.name] = (tool.prepare(run), workdir)
    first = {
        name: measure.run_timed(cmd.argv, cmd.env, workdir, 120)
        for name, (cmd, workdir) in commands.items()
    }
    # The same interpreter loading asyncio and nothing else, interleaved with popkeep's
    # runs: how fast the machine is right now (on a shared VM it varies by half).
    new_cmd, new_dir = commands["popkeep"]
    floor_argv = [tools.popkeep_python(new_cmd.argv[0]), "-c", "import asyncio"]
    version: dict[str, list[measure.Measurement]] = {name: [] for name in commands}
    fetches: dict[str, list[measure.Measurement]] = {name: [] for name in commands}
    floor, loads = [], []
    for index in range(bench.args.startup_runs):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        loads.append(load1())
        for name in order:
            cmd, workdir = commands[name]
            argv = [cmd.argv[0], "--version"]
            version[name].append(measure.run_timed(argv, cmd.env, workdir, 60))
        for name in order:
            cmd, workdir = commands[name]
            fetches[name].append(measure.run_timed(cmd.argv, cmd.env, workdir, 120))
        floor.append(measure.run_timed(floor_argv, new_cmd.env, new_dir, 60))
    figures: dict[str, dict[str, object]] = {}
    for name, (cmd, workdir) in commands.items():
        verdict = measure.verify(workdir / "Maildir", bench.expected[corpus.user])
        figures[name] = {
            "version_cpu_s": statistics.median(m.cpu_s for m in version[name]),
            "version_wall_s": statistics.median(m.wall_s for m in version[name]),
            "version_ok": all(m.exit_code == 0 for m in version[name]),
            "noop_cpu_s": statistics.median(m.cpu_s for m in fetches[name]),
            "noop_wall_s": statistics.median(m.wall_s for m in fetches[name]),
            "noop_ok": first[name].exit_code == 0
            and all(m.exit_code == 0 for m in fetches[name])
            and verdict.ok,
            "noop_detail": first[name].stderr_tail.strip()[-300:] if first[name].exit_code else "",
            "instructions": measure.instructions(
                {"version": [cmd.argv[0], "--version"], "noop": cmd.argv}, cmd.env, workdir
            ),
        }
    floor_count = measure.instructions({"floor": floor_argv}, new_cmd.env, new_dir)
    result: dict[str, object] = dict(figures.pop("popkeep"))
    if isinstance(result["instructions"], dict) and isinstance(floor_count, dict):
        result["instructions"] = {**result["instructions"], **floor_count}
    result["floor_cpu_s"] = statistics.median(m.cpu_s for m in floor)
    result["runs"] = bench.args.startup_runs
    result["load"] = [min(loads), max(loads)]
    result["builds"] = figures
    bench.log(f"startup: {result}")
    for _, workdir in commands.values():
        measure.remove_tree(workdir)
    return result


def load1() -> float:
    """The 1-minute load average now: what else the machine was doing."""
    return os.getloadavg()[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenarios",
        default=None,
        help=f"comma list of {','.join(ALL_SCENARIOS)} (default: all; --quick: 2k,noop)",
    )
    p.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma list (default: all)")
    p.add_argument("--tls", choices=("plain", "tls", "both"), default="both")
    p.add_argument("--runs", type=int, default=None, help="runs per tool (default 3; --quick 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_COUNT} messages, 8 MB big message, 1 run",
    )
    p.add_argument("--skip-slow", action="store_true", help="skip getmail6 on 20k and noop")
    p.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="only write --results again from a saved bench/work/results.json",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=WORK,
        help="work tree; its dovecot/ and runs/ are wiped first (default bench/work)",
    )
    p.add_argument(
        "--keep-failed",
        action="store_true",
        help="keep the work dir of failed runs under bench/work/runs/",
    )
    p.add_argument("--no-startup", action="store_true", help="skip the popkeep startup figures")
    p.add_argument(
        "--startup-runs", type=int, default=10, help="start-up runs per command (default 10)"
    )
    p.add_argument(
        "--old-bin",
        metavar="POPKEEP",
        help="A/B: also run this popkeep build as tool popkeep-old, alternating with "
        "the new one (sets $POPKEEP_OLD_BIN)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    default_scen = "2k,noop" if args.quick else ",".join(ALL_SCENARIOS)
    args.scenarios = [s for s in (args.scenarios or default_scen).split(",") if s]
    args.tools = [t for t in args.tools.split(",") if t]
    if args.old_bin:
        os.environ["POPKEEP_OLD_BIN"] = str(Path(args.old_bin).resolve())
        if "popkeep-old" not in args.tools:
            args.tools.insert(args.tools.index("popkeep") + 1 if "popkeep" in args.tools else 0,
                              "popkeep-old")
    args.runs = args.runs or (1 if args.quick else 3)
    args.tls_modes = ["plain", "tls"] if args.tls == "both" else [args.tls]
    for s in args.scenarios:
        if s not in ALL_SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    for t in args.tools:
        if t not in tools.TOOLS:
            p.error(f"unknown tool {t!r}")
    return args


def rerender(saved_path: Path, results: Path) -> int:
    """Write RESULTS.md again from a results.json (e.g. after changing the report)."""
    saved = json.loads(saved_path.read_text())
    records = [Record(**r) for r in saved["records"]]
    args = argparse.Namespace(**saved.get("args", {}))
    for name, default in (
        ("scenarios", []),
        ("tools", []),
        ("runs", 0),
        ("quick", False),
        ("skip_slow", False),
        ("argv", []),
    ):
        if not hasattr(args, name):
            setattr(args, name, default)
    if not args.scenarios:
        args.scenarios = list(dict.fromkeys(r.scenario for r in records))
        args.tools = list(dict.fromkeys(r.tool for r in records))
        args.runs = max((r.run for r in records), default=0)
    text = report.render(
        args, records, saved.get("startup"), saved.get("elapsed", 0.0), saved.get("corpora", {})
    )
    results.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    global WORK  # one work tree per invocation
    args = parse_args(argv)
    if args.render is not None:
        return rerender(args.render, args.results)
    WORK = args.work.resolve()
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "dovecot", ignore_errors=True)
    measure.remove_tree(WORK / "runs")
    # A SIGTERM (timeout, ^C from a wrapper) still runs the finally below: no Dovecot left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dovecot = Dovecot.start(WORK / "dovecot", users=("small",), password=PASSWORD)
    bench = Bench(args, dovecot)
    for name in tools.POPKEEPS:
        popkeep = tools.TOOLS[name]
        if name in args.tools and isinstance(popkeep, tools.Popkeep) and not popkeep.available():
            popkeep.precompile()
    try:
        # 20k before noop, so the no-op poll reuses the bulk runs' primed state.
        for scenario in sorted(args.scenarios, key=ALL_SCENARIOS.index):
            for tls in args.tls_modes:
                (noop if scenario == "noop" else bulk)(bench, scenario, tls)
        start_fig = None if args.no_startup else startup(bench)
    finally:
        dovecot.stop()
        for workdir in bench.leftovers:
            measure.remove_tree(workdir)
    elapsed = time.time() - started
    described = {}
    for name, corpus in corpora(args.quick).items():
        exp = bench.expected.get(corpus.user)
        if exp is not None:
            described[name] = f"{exp.count:,} message(s), {exp.octets / 1e6:.1f} MB"
    saved = {
        "records": [asdict(r) for r in bench.records],
        "startup": start_fig,
        "elapsed": elapsed,
        "corpora": described,
        "args": {k: v for k, v in vars(args).items() if k not in ("results", "work")},
    }
    (WORK / "results.json").write_text(json.dumps(saved, indent=1))
    args.results.write_text(report.render(args, bench.records, start_fig, elapsed, described))
    bench.log(f"wrote {args.results} ({elapsed:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
