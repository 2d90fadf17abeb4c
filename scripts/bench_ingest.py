#!/usr/bin/env python3
"""Share-event ingestion speed at N principals (default 100,000).

Builds a throw-away store of synthetic principals (as scripts/bench_query.py does), then
ingests batches of share events through the real ingestion code (no HTTP): recipients by
principal id (the baseline, measured in the same run: a primary-key lookup), by login and
by email (indexed case-insensitive lookups), and one recipient far over the per-recipient
cap (every event trims the oldest). Prints time per event, the ratio to the baseline,
and the longest write transaction (how long other writers may wait).

    python scripts/bench_ingest.py [--principals 100000] [--events 1000]

Timings are wall-clock on this machine; compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_query import build, principals  # noqa: E402

from bridge import config  # noqa: E402
from bridge.jmap.ingest import ingest  # noqa: E402
from bridge.store import Store  # noqa: E402


def events(recipients: list[str], tag: str) -> list[dict]:
    return [{"recipient": recipient, "changedBy": {"name": "Bench", "email": None, "principalId": None},
             "objectType": "Calendar", "objectAccountId": "a1", "objectId": f"{tag}{n}",
             "oldRights": None, "newRights": {"mayRead": True}, "name": "Team calendar"}
            for n, recipient in enumerate(recipients)]


class LongestTransaction:
    """Wraps Store.add_notifications to time each write transaction."""

    def __init__(self, store: Store) -> None:
        self.longest = 0.0
        self._add = store.add_notifications
        store.add_notifications = self

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._add(*args, **kwargs)
        finally:
            self.longest = max(self.longest, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    entries = principals(args.principals)
    people = [e.principal for e in entries if e.principal.email][: args.events]
    with tempfile.TemporaryDirectory() as temporary:
        path = f"{temporary}/bench.db"
        seconds = build(path, entries)
        print(f"store of {args.principals:,} principals built in {seconds:.1f}s")
        settings = config.load(None, environ={"BRIDGE_STORE__PATH": path,
                                              "BRIDGE_NOTIFICATIONS__MAX_PER_RECIPIENT": "50"})
        batches = {
            "by principal id (baseline)": events([p.id for p in people], "i"),
            "by login": events([p.login.upper() for p in people], "l"),
            "by email": events([p.email.title() for p in people], "e"),
            "one recipient, over the cap": events([people[0].id] * len(people), "c"),
        }
        print(f"\n{len(people):,} events per batch{'':<12}{'per event':>10}{'vs baseline':>13}"
              f"{'longest write':>15}")
        baseline = None
        for label, batch in batches.items():
            with Store.open(path) as store:
                timer = LongestTransaction(store)
                started = time.perf_counter()
                outcomes = ingest(batch, store, settings)
                elapsed = time.perf_counter() - started
            assert all(o.status == "created" for o in outcomes), outcomes[0]
            per_event = elapsed / len(batch)
            baseline = baseline or per_event
            print(f"{label:<34}{per_event * 1000:>8.2f}ms{per_event / baseline:>12.1f}x"
                  f"{timer.longest * 1000:>13.0f}ms")


if __name__ == "__main__":
    main()
