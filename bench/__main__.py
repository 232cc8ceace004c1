"""Runs every benchmark and prints one table. Not a test: nothing here fails on a slow machine."""

from __future__ import annotations

import importlib
import sys
import time
import traceback

SUITES = ("bench.status", "bench.alert_storm", "bench.backup")


def main() -> int:
    rows: list[tuple[str, str, str, str]] = []
    only = sys.argv[1:]
    for name in SUITES:
        if only and name.rsplit(".", 1)[-1] not in only:
            continue
        started = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        print(f"running {name} …", file=sys.stderr)
        try:
            rows += module.main()
        except Exception:
            traceback.print_exc()
            rows.append((name, "failed (see above)", "", ""))
        print(f"{name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(4)]
    for row in [HEADER, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


HEADER = ("scenario", "policy-bot", "peer (same machine, same run)", "bar (SPEC 4.1)")

if __name__ == "__main__":
    sys.exit(main())
