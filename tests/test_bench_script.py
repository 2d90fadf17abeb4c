"""scripts/bench.py runs end to end at a tiny size and prints every row of its table with a
number. Timings are not asserted: a benchmark is not a timed test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
TINY = ["--people", "300", "--groups", "10", "--group-size", "5", "--rooms", "5", "--changes", "10",
        "--small-people", "100", "--requests", "50"]
ROWS = [
    "ldapsearch (C), paged, every source",
    "bare ldap3 paged read, every source",
    "full sync, cold (empty store)",
    "full sync, cold: stretch",
    "full re-sync, no change",
    "sync after 10 changes (incremental)",
    "sync after 10 changes vs re-sync",
    "peak RSS, full sync, 100 people",
    "peak RSS, full sync, 300 people",
    "bare Starlette JSON endpoint",
    "Principal/query, text filter",
    "Principal/query, query cache off",
    "Principal/changes, 10 changes",
    "/changes latency, 1,000 principals",
    "/changes latency, 315 principals",
]
VALUE = re.compile(r"\s(\d[\d,]*\.?\d*) (s|ms|MiB|rps)(\s|$)")
VERDICT = re.compile(r"\s(PASS|MISS)$")


def test_the_benchmark_runs_at_a_tiny_size_and_prints_every_row(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "slapd" in lines[1], done.stdout
    rules = [n for n, line in enumerate(lines) if line.startswith("-----")]
    table = lines[rules[0] + 1:rules[1]]
    assert len(table) == len(ROWS), done.stdout
    for row, label in zip(table, ROWS, strict=True):
        assert row.startswith(label), (label, row)
        assert VALUE.search(row), row
    verdicts = [VERDICT.search(row).group(1) for row in table if VERDICT.search(row)]
    assert len(verdicts) == 6, done.stdout  # one per target of the issue, stretch included


def test_a_size_that_cannot_be_measured_is_refused_before_anything_starts():
    done = subprocess.run([sys.executable, str(SCRIPT), "--requests", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "argument --requests: 0 is less than 1" in done.stderr
