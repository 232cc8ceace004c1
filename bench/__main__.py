"""Runs every benchmark and prints one table. Not a test: nothing here fails on a slow machine.

`python -m bench [status] [alert_storm] [backup]` runs those suites only; `PROFILE=1` adds
cProfile's top frames of a cold `/policy status` and of the storm's relay process, and, when
py-spy is installed, its samples of a cold `python -m bot backup` (every thread, imports too);
`STORM_SPREAD_S` shortens the spread storm's window (300 s of real time by default).

The table ends with the targets (ratios of figures measured in this run, PASS or MISS), the
versions the peers ran as their binaries report them, and what else the machine was running,
since a shared machine's figures are only as quiet as its neighbours.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench import versions
from bench.figures import Target, table

SUITES = ("bench.status", "bench.alert_storm", "bench.backup")
HEADER = ("scenario", "policy-bot", "peer (same machine, same run)", "bar")


def neighbours() -> str:
    """Load average and the heavy processes the bench did not start (by command name)."""
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    mine = {os.getpid()}
    counts: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        for name in ("pytest", "kube-apiserver", "etcd", "postgres", "kyverno", "alertmanager"):
            if name in text and "bench" not in text:
                counts[name] = counts.get(name, 0) + 1
                break
    running = ", ".join(f"{n}× {name}" for name, n in sorted(counts.items())) or "nothing heavy"
    return f"load average {load}; other processes: {running}"


def main() -> int:
    rows: list[tuple[str, str, str, str]] = []
    targets: list[Target] = []
    found: list[str] = [versions.read("python", sys.executable)]
    profiles: list[tuple[str, str]] = []
    only = sys.argv[1:]
    before = neighbours()
    began = time.perf_counter()
    for name in SUITES:
        if only and name.rsplit(".", 1)[-1] not in only:
            continue
        started = time.perf_counter()
        module = importlib.import_module(name)
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            rows += module.main()
        except Exception:
            traceback.print_exc()
            rows.append((name, "failed (see above)", "", ""))
        targets += getattr(module, "TARGETS", [])
        found += getattr(module, "VERSIONS", [])
        profiles += getattr(module, "PROFILES", [])
        print(f"{name} took {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - began
    print(table(HEADER, rows))
    print("\nTargets (ratios of figures measured in this run):")
    for target in targets:
        print("  " + target.line())
    for title, text in profiles:
        print(f"\nWhere the time goes, {title}, top frames by own time:\n{text}")
    print("\nVersions run:")
    for line in dict.fromkeys(found):
        print("  " + line)
    print(f"\nMachine: {os.cpu_count()} cores, {platform.platform()}")
    print(f"  at the start: {before}")
    print(f"  at the end:   {neighbours()}")
    print(f"make bench took {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
