"""py-spy's raw samples summarised: busy time per thread, imports, busiest frames."""

from __future__ import annotations

from bench.profiling import summarise

RAW = """\
thread (11): MainThread;<module> (bot/__main__.py:1);_find_and_load (<frozen importlib._bootstrap>:1176);exec (x) 50
thread (11): MainThread;main (bot/app/cli.py:9);dump_yaml (bot/backup/serialization.py:60) 30
thread (12): kube-bench_0;_pages (bot/kube/gateway.py:300);raw_decode (json/decoder.py:353) 20
thread (13): kube-bench_1;_bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:81) 40
thread (11): MainThread 10
not a sample line
"""


def test_summary_names_threads_imports_and_the_busiest_frames() -> None:
    text = summarise(RAW, rate=100, limit=2)
    lines = text.splitlines()
    assert lines[0] == (
        "  1.00 s busy in all threads (MainThread 0.80 s, kube-bench_0 0.20 s); imports 0.50 s;"
        " 0.50 s idle waits left out"
    )
    assert lines[2].split() == ["0.500", "50.0%", "exec", "(x)"]
    assert lines[3].endswith("dump_yaml (bot/backup/serialization.py:60)")
    assert len(lines) == 4  # the limit


def test_no_samples_is_a_summary_too() -> None:
    assert summarise("", rate=250).startswith("  0.00 s busy in all threads ();")
