"""Where the time goes: an opt-in cProfile of a benchmark step (`make bench PROFILE=1`).

cProfile sees only the Python process it runs in; the bench profiles the bot's own code in
that process (the status service, the relay), so the figures are the bot's, with the
profiler's overhead on top: a profiled run's timings are not the bench's timings.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
from collections.abc import Iterator
from contextlib import contextmanager

#: The switch: `PROFILE=1 python -m bench` (or `make bench PROFILE=1`).
ENABLED = os.environ.get("PROFILE", "") not in ("", "0")

#: Top frames kept per profile, printed at the end of the bench.
TOP = 10

_collected: list[tuple[str, str]] = []


def top_frames(profile: cProfile.Profile, *, limit: int = TOP, sort: str = "tottime") -> str:
    """The `limit` frames with the most own time (`tottime`), as pstats prints them."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    text = out.getvalue()
    # pstats opens with a summary and a blank line; keep the count line and the frames.
    lines = [line for line in text.splitlines() if line.strip()]
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
