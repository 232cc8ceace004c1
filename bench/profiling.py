"""Where the time goes: an opt-in cProfile of a benchmark step (`make bench PROFILE=1`), and
for a whole command (its threads and imports too) py-spy's samples, when py-spy is installed.

cProfile sees only the thread it runs on, in the process it runs in: the event loop's thread,
where the bot's handlers, rendering and JSON work run (the status service, the relay); work
handed to threads (the store's SQLite calls, the kubernetes client) shows only as the loop
waiting. Idle waits are left out of the listing and summed apart. The profiler's overhead
lands on the profiled run: its timings are not the bench's timings.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The switch: `PROFILE=1 python -m bench` (or `make bench PROFILE=1`).
ENABLED = os.environ.get("PROFILE", "") not in ("", "0")

#: Top frames kept per profile, printed at the end of the bench.
TOP = 10

_collected: list[tuple[str, str]] = []


#: Frames where the event loop or a thread waits: time spent there is idle, not work.
IDLE = ("poll' of 'select.", "select' of 'select.", "acquire' of '_thread.", "time.sleep")

#: pstats' raw form: (file, line, function) -> (primitive calls, calls, own s, cumulative s, …)
Frame = tuple[str, int, str]
Raw = Mapping[Frame, tuple[Any, ...]]


def busiest(raw: Raw, *, limit: int = TOP) -> list[tuple[str, int, float, float]]:
    """The `limit` frames with the most own time, idle waits left out, as (frame name, calls,
    own seconds, cumulative seconds); a built-in's name is pstats' `{…}` form."""
    rows = []
    for (file, line, function), (_, calls, own, cumulative, *_) in raw.items():
        name = function if file == "~" else f"{os.path.basename(file)}:{line}({function})"
        if any(marker in name for marker in IDLE):
            continue
        rows.append((name, int(calls), float(own), float(cumulative)))
    rows.sort(key=lambda r: r[2], reverse=True)
    return rows[:limit]


def top_frames(profile: cProfile.Profile, *, limit: int = TOP) -> str:
    """The frames with the most own time (idle waits left out), one line each."""
    raw: Raw = pstats.Stats(profile, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    return format_frames(raw, limit=limit)


def format_frames(raw: Raw, *, limit: int = TOP) -> str:
    idle = sum(v[2] for (f, _, n), v in raw.items() if any(m in n for m in IDLE) and f == "~")
    busy = sum(v[2] for v in raw.values()) - idle
    lines = [f"  {busy:.2f} s busy on the profiled thread ({idle:.2f} s idle waits left out)"]
    lines.append(f"  {'own s':>8} {'cum s':>8} {'calls':>8}  frame")
    for name, calls, own, cumulative in busiest(raw, limit=limit):
        lines.append(f"  {own:8.3f} {cumulative:8.3f} {calls:8d}  {name}")
    return "\n".join(lines)


@contextmanager
def profiled(title: str, *, enabled: bool = ENABLED) -> Iterator[None]:
    """Profile the block when profiling is on; its top frames are kept under `title`."""
    if not enabled:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        _collected.append((title, top_frames(profile)))


def collected() -> list[tuple[str, str]]:
    """(title, top frames) of every profile taken in this process so far."""
    return list(_collected)


def py_spy() -> str | None:
    """py-spy's executable (on PATH or beside this interpreter), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def sampled(argv: Sequence[str], *, cwd: Path, rate: int = 250, limit: int = TOP) -> str | None:
    """Run `argv` under py-spy, every thread sampled `rate` times a second; its busiest frames
    (`summarise`). None when py-spy is not installed. The sampling slows the command down: its
    timings are not the bench's timings."""
    spy = py_spy()
    if spy is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-py-spy-") as tmp:
        raw = Path(tmp) / "samples.txt"
        command = [spy, "record", "--threads", "-r", str(rate), "-f", "raw", "-o", str(raw)]
        subprocess.run(
            [*command, "--", *argv],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=600,
        )
        return summarise(raw.read_text(), rate=rate, limit=limit)


#: Leaf frames where a thread waits (a pool worker for work, a loop in select, a lock): idle.
SPY_IDLE = (
    "_worker (concurrent/futures/thread.py",
    "select (selectors.py",
    "wait (threading.py",
    "_wait_for_tstate_lock (threading.py",
)


def summarise(raw: str, *, rate: int, limit: int = TOP) -> str:
    """py-spy's raw samples (`thread;frame;…;frame count` per line) as the busy time per
    thread, the time under imports, and the `limit` frames with the most samples of their
    own; waits (`SPY_IDLE`, and a thread with no Python frame) are left out and summed apart."""
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    imports = total = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples = int(count)
        if len(frames) < 2 or any(m in frames[-1] for m in SPY_IDLE):
            idle += samples
            continue
        total += samples
        threads[frames[0].partition(": ")[2] or frames[0]] += samples
        own[frames[-1]] += samples
        if any(f.startswith("_find_and_load ") for f in frames):
            imports += samples
    busy = ", ".join(f"{name} {n / rate:.2f} s" for name, n in threads.most_common(6))
    lines = [
        f"  {total / rate:.2f} s busy in all threads ({busy}); imports {imports / rate:.2f} s;"
        f" {idle / rate:.2f} s idle waits left out",
        f"  {'own s':>8} {'share':>6}  frame",
    ]
    for frame, samples in own.most_common(limit):
        lines.append(f"  {samples / rate:8.3f} {samples / max(1, total):6.1%}  {frame}")
    return "\n".join(lines)
