#!/usr/bin/env python3
"""Principal/query latency and throughput at N principals (default 100,000).

Builds a throw-away store of synthetic people, groups and rooms through the store's own
snapshot path, then runs Principal/query through the real JMAP engine (no HTTP) for a
set of typical filters, and, as the baseline measured in the same run, the same text
filters answered the way the bridge must not: casefold every row in Python per request.

    python scripts/bench_query.py [--principals 100000] [--repeat 50]

Prints a table of median / p95 latency, queries per second, and the speed-up over the
baseline. Timings are wall-clock on this machine; compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge import config  # noqa: E402
from bridge.jmap.core import Context  # noqa: E402
from bridge.jmap.methods import engine  # noqa: E402
from bridge.model import Caller, MappedEntry, Principal, PrincipalType  # noqa: E402
from bridge.store import Store  # noqa: E402

FIRST = ["Anna", "Björn", "Chloé", "Dmitri", "Eva", "François", "Grace", "Hiroshi", "Ines", "Jürgen",
         "Kwame", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Søren", "Tariq"]
LAST = ["Müller", "Smith", "García", "Nguyen", "Kowalski", "O'Brien", "Rossi", "Svensson", "Dubois",
        "Yamamoto", "Okafor", "Papadopoulos", "Horvat", "Novák", "Fernández", "Lindqvist"]
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:principals"]
QUERIES = {
    "text, 3+ chars (trigram)": {"filter": {"text": "müll"}, "limit": 50},
    "name, 5 chars, sorted": {"filter": {"name": "rossi"}, "sort": [{"property": "name"}], "limit": 50},
    "email, one match": {"filter": {"email": "4217@example"}, "limit": 50},
    "email, 2 chars (scan)": {"filter": {"email": "ko"}, "limit": 50},
    "type + name sort, page": {"filter": {"type": "location"}, "sort": [{"property": "name"}],
                               "position": 100, "limit": 50},
    "OR of two names, total": {"filter": {"operator": "OR", "conditions": [{"name": "grace"},
                                                                            {"name": "tariq"}]},
                               "limit": 50, "calculateTotal": True},
}


def principals(count: int) -> list[MappedEntry]:
    rng = random.Random(7)
    entries = []
    for n in range(count):
        kind = PrincipalType.LOCATION if n % 50 == 0 else PrincipalType.GROUP if n % 25 == 0 \
            else PrincipalType.INDIVIDUAL
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"Room {n}" if kind is PrincipalType.LOCATION else f"{first} {last} {n}"
        email = f"{first}.{last}{n}@example.org".lower() if kind is PrincipalType.INDIVIDUAL else None
        entries.append(MappedEntry(Principal(
            id=f"p{n:032x}", source="bench", type=kind, dn=f"uid=u{n},dc=example,dc=org",
            dn_key=f"uid=u{n},dc=example,dc=org", name=name, email=email,
            description=f"Department {n % 97}", login=f"u{n}")))
    return entries


def build(path: str, entries: list[MappedEntry]) -> float:
    started = time.perf_counter()
    with Store.open(path) as store, store.snapshot() as snapshot:
        for entry in entries:
            snapshot.add(entry)
        snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full", "seen": len(entries),
                                           "skipped": 0, "warnings": 0})
    return time.perf_counter() - started


def timed(function, repeat: int) -> list[float]:
    function()  # warm up caches
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def naive(store: Store, text: str, field: str):
    """The baseline: every row casefolded and scanned in Python, per request."""
    needle = text.casefold()
    rows = store._db.execute("SELECT id, name, email, description FROM principal_view").fetchall()
    columns = {"name": (1,), "email": (2,), "text": (1, 2, 3)}[field]
    return [row[0] for row in rows if any(row[c] and needle in row[c].casefold() for c in columns)][:50]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        path = f"{temporary}/bench.db"
        seconds = build(path, principals(args.principals))
        print(f"store of {args.principals:,} principals built in {seconds:.1f}s (one snapshot apply)")
        settings = config.load(None, environ={"BRIDGE_STORE__PATH": path})
        with Store.open(path) as store:
            context = Context(Caller("bench"), store, settings)

            def query(arguments: dict):
                request = {"using": USING, "methodCalls": [
                    ["Principal/query", {"accountId": "directory", **arguments}, "0"]]}
                response = engine.handle(request, context, "s")["methodResponses"][0]
                assert response[0] == "Principal/query", response
                return response[1]["ids"]

            print(f"\n{'Principal/query':<28}{'median':>9}{'p95':>9}{'per s':>9}"
                  f"{'baseline':>10}{'speed-up':>10}")
            for label, arguments in QUERIES.items():
                samples = timed(lambda a=arguments: query(a), args.repeat)
                median, p95 = statistics.median(samples), sorted(samples)[int(0.95 * len(samples)) - 1]
                condition = arguments["filter"]
                field = next((k for k in ("text", "name", "email") if k in condition), None)
                baseline = ""
                if field:
                    base = statistics.median(timed(lambda c=condition, f=field: naive(store, c[f], f),
                                                   max(5, args.repeat // 5)))
                    baseline = f"{base * 1000:>8.1f}ms{base / median:>9.1f}x"
                print(f"{label:<28}{median * 1000:>7.2f}ms{p95 * 1000:>7.2f}ms{1 / median:>9.0f}"
                      f"{baseline:>20}")


if __name__ == "__main__":
    main()
