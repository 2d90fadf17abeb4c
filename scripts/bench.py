#!/usr/bin/env python3
"""The bridge's end-to-end benchmark: sync speed, memory and API throughput at N people.

Builds a throw-away slapd (tests/support/slapd.py, syncprov with a session log) holding N
people (7 attributes each), G groups of S members and R rooms, then measures in one run:

- the same searches the bridge's sync makes (its filters and attribute lists), read by
  ``ldapsearch`` (C, paged, to /dev/null) and by a bare ldap3 paged read (the baselines);
- the bridge's full sync into an empty store, a no-change full re-sync, and an
  incremental sync after C changes made as the admin (80% modifies, 10% adds, 10%
  deletes; an eighth of the modifies add a new hire to a group);
- the peak RSS of a full sync (in a child process, a fresh store) at M and at N people;
- one uvicorn serving a bare Starlette JSON endpoint beside the bridge's app: requests per
  second of Principal/query (eight text filters in turn, with the query cache and without
  it) and Principal/changes against the bare endpoint (measured before and after them, the
  mean taken), and the latency of the same /changes at N principals and at about 1k.

It prints the machine, then one table of absolute values, ratios and the targets of the
incremental-sync issue with PASS / MISS. A missed target is not a failure (exit 0); a
measurement that cannot run is (non-zero).

    python scripts/bench.py [--people 100000] [--groups 2000] [--group-size 50]
        [--rooms 200] [--changes 100] [--small-people 10000] [--requests 2000]
        [--workdir DIR] [--profile]

``--profile`` adds, after the table, a cProfile of one cold full sync (in a child) and of
an incremental sync after C more changes, each with the SQL statements that took longest.
Timings are wall-clock on this machine; compare the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.slapd import (  # noqa: E402
    READER_DN,
    READER_PASSWORD,
    SLAPADD,
    SLAPD,
    SUFFIX,
    Slapd,
    free_port,
)

PEOPLE, GROUPS, ROOMS = (f"ou={ou},{SUFFIX}" for ou in ("people", "groups", "rooms"))
SOURCES = {"people": {"type": "individual", "base": PEOPLE},
           "groups": {"type": "group", "base": GROUPS},
           "rooms": {"type": "location", "base": ROOMS}}
PAGE_SIZE = 1000
TOKEN = "bench-service-token-0123456789"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:principals"]
CLIENT_THREADS = 4
SMALL_DIRECTORY = 1000  # principals of the /changes latency baseline

FIRST = ["Anna", "Björn", "Chloé", "Dmitri", "Eva", "François", "Grace", "Hiroshi", "Ines", "Jürgen",
         "Kwame", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Søren", "Tariq"]
LAST = ["Müller", "Smith", "García", "Nguyen", "Kowalski", "O'Brien", "Rossi", "Svensson", "Dubois",
        "Yamamoto", "Okafor", "Papadopoulos", "Horvat", "Novák", "Fernández", "Lindqvist"]
QUERY_TEXTS = ["rossi", "müller", "nguyen", "grace", "søren", "okafor", "lindq", "chloé"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the directory ------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What a bench directory holds: group g has the S people from index g*S on (wrapping)."""

    people: int
    groups: int
    group_size: int
    rooms: int

    @property
    def principals(self) -> int:
        return self.people + self.groups + self.rooms

    def members(self, group: int) -> list[int]:
        return list(dict.fromkeys((group * self.group_size + j) % self.people
                                  for j in range(self.group_size)))


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def uid_of(n: int) -> str:
    return f"p{n:06d}"


def person_attributes(n: int, uid: str) -> dict[str, str]:
    """Seven attributes, as the issue's directory has them (names with non-ASCII letters)."""
    first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
    local = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    return {"uid": uid, "cn": f"{first} {last} {n}", "sn": last, "givenName": first,
            "displayName": f"{first} {last} ({n})",
            "mail": f"{local.replace(chr(39), '').lower()}{n}@example.org",
            "description": f"Department {n % 97}"}


def ldif_entry(dn: str, object_classes: list[str], attributes: dict[str, str | list[str]]) -> str:
    lines = [ldif_line("dn", dn), *(f"objectClass: {oc}" for oc in object_classes)]
    for name, values in attributes.items():
        lines += [ldif_line(name, v) for v in (values if isinstance(values, list) else [values])]
    return "\n".join(lines) + "\n\n"


def ldif_line(name: str, value: str) -> str:
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def write_ldif(path: Path, shape: Shape) -> None:
    """The directory as LDIF, streamed to ``path`` (never one string of the whole)."""
    with path.open("w") as out:
        out.write(ldif_entry(SUFFIX, ["dcObject", "organization"], {"o": "Bench", "dc": "example"}))
        out.write(ldif_entry(READER_DN, ["organizationalRole", "simpleSecurityObject"],
                             {"cn": "bridge", "userPassword": READER_PASSWORD}))
        for base in (PEOPLE, GROUPS, ROOMS):
            out.write(ldif_entry(base, ["organizationalUnit"], {"ou": base.split(",")[0][3:]}))
        for n in range(shape.people):
            out.write(ldif_entry(person_dn(uid_of(n)), ["inetOrgPerson"], person_attributes(n, uid_of(n))))
        for g in range(shape.groups):
            members = [person_dn(uid_of(m)) for m in shape.members(g)]
            out.write(ldif_entry(f"cn=group{g:05d},{GROUPS}", ["groupOfNames"],
                                 {"cn": f"group{g:05d}", "description": f"Team {g}", "member": members}))
        for r in range(shape.rooms):
            out.write(ldif_entry(f"cn=Room {r:04d},{ROOMS}", ["room"],
                                 {"cn": f"Room {r:04d}", "roomNumber": f"{r // 20}.{r % 20:02d}",
                                  "description": f"Floor {r // 20}, {4 + r % 12} seats"}))


@contextmanager
def running_directory(workdir: Path, shape: Shape) -> Iterator[Slapd]:
    """A started slapd holding ``shape``, with syncprov and a session log, removed after."""
    started = time.perf_counter()
    server = Slapd(workdir, syncprov=1000)
    try:
        ldif = workdir / "bench.ldif"
        write_ldif(ldif, shape)
        # Slapd.load takes one string; -q (quick mode) for a large offline load
        subprocess.run([SLAPADD, "-q", "-f", str(server.config), "-l", str(ldif)], check=True,
                       capture_output=True, text=True)
        ldif.unlink()
        server.start()
        log(f"slapd with {shape.principals:,} principals ready in {time.perf_counter() - started:.1f}s")
        yield server
    finally:
        server.cleanup()


# -- the changes --------------------------------------------------------------------------


@dataclass
class ChangePlan:
    """C changes: people modified, new hires added (and put in groups), people deleted.
    Deleted people and group changes each fall in a different group, so the same C gives
    the same number of changed principals at any directory size."""

    modified: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    grown: list[int] = field(default_factory=list)  # groups a new member joins


def plan_changes(shape: Shape, count: int, batch: int = 0) -> ChangePlan:
    """The ``batch``-th set of ``count`` changes (each batch touches other groups and people)."""
    adds = deletes = round(count * 0.1)
    modifies = count - adds - deletes
    grown = modifies // 8
    first = batch * (grown + deletes)  # the first group this batch touches
    if first + grown + deletes > shape.groups or modifies + deletes >= shape.people:
        raise SystemExit(f"{count} changes need at least {first + grown + deletes} groups and "
                         f"{modifies + deletes + 1} people")
    deleted = [(g * shape.group_size) % shape.people for g in range(first + grown, first + grown + deletes)]
    step = max(1, shape.people // (modifies - grown + deletes + 1))
    spread = (n for k in range(shape.people) if (n := (k * step + 1 + batch) % shape.people) not in deleted)
    modified = list(dict.fromkeys(spread))[: modifies - grown]
    added = [shape.people + 10_000 + batch * adds + k for k in range(adds)]
    return ChangePlan(modified=modified, added=added, deleted=deleted,
                      grown=list(range(first, first + grown)))


def apply_changes(server: Slapd, shape: Shape, plan: ChangePlan) -> None:
    import ldap3
    admin = server.admin()
    try:
        for n in plan.added:
            admin.add(person_dn(f"new{n}"), ["inetOrgPerson"], person_attributes(n, f"new{n}"))
        for k, group in enumerate(plan.grown):
            joiner = person_dn(f"new{plan.added[k % len(plan.added)]}") if plan.added \
                else person_dn(uid_of(shape.people - 1))
            admin.modify(f"cn=group{group:05d},{GROUPS}", {"member": [(ldap3.MODIFY_ADD, [joiner])]})
        for n in plan.modified:
            admin.modify(person_dn(uid_of(n)), {
                "description": [(ldap3.MODIFY_REPLACE, [f"Moved to department {(n + 1) % 97}"])],
                "displayName": [(ldap3.MODIFY_REPLACE, [f"{person_attributes(n, '')['cn']} (moved)"])]})
        for n in plan.deleted:
            admin.delete(person_dn(uid_of(n)))
    finally:
        admin.unbind()


# -- the bridge's settings ----------------------------------------------------------------


def write_settings(workdir: Path, server: Slapd, store: Path) -> Path:
    tokens = workdir / "tokens.toml"
    tokens.write_text(f'[[token]]\nname = "bench"\ntoken = "{TOKEN}"\nscopes = ["jmap"]\n')
    tables = {
        "directory": {"urls": [server.url], "bind_dn": READER_DN, "bind_password": READER_PASSWORD,
                      "page_size": PAGE_SIZE},
        "store": {"path": str(store)},
        "server": {"token_file": str(tokens)},
        "jmap": {"max_concurrent_requests": 2 * CLIENT_THREADS},
    }
    lines = []
    for name, table in tables.items():
        lines += [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    for name, table in SOURCES.items():
        lines += [f"[sources.{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    path = workdir / f"{store.stem}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def load_settings(path: Path, environ: dict | None = None):
    from bridge import config
    return config.load(str(path), environ=environ or {})


def source_queries(settings) -> list:
    """The searches a full sync makes: each source's base, filter and attribute list."""
    from bridge.mapper import FLAVORS, source_map
    return [source_map(source, FLAVORS["openldap"], settings.directory.id_attribute).query()
            for source in settings.sources]


def principal_state(settings) -> str:
    """The current Principal state, as the API tells a service client."""
    from bridge.jmap import Service
    from bridge.model import Caller
    request = {"using": USING, "methodCalls": [["Principal/get", {"accountId": "directory", "ids": []}, "0"]]}
    response = Service(settings).handle(request, Caller("bench", is_service=True))
    name, arguments, _ = response["methodResponses"][0]
    assert name == "Principal/get", response
    return arguments["state"]


# -- the read baselines -------------------------------------------------------------------


def ldapsearch_read(server: Slapd, queries: list) -> float:
    """Seconds for ``ldapsearch`` to dump every source, paged, to /dev/null."""
    started = time.perf_counter()
    for query in queries:
        subprocess.run(["ldapsearch", "-x", "-LLL", "-H", server.url, "-D", READER_DN,
                        "-w", READER_PASSWORD, "-b", query.base, "-s", query.scope,
                        "-E", f"pr={PAGE_SIZE}/noprompt", query.filter, *query.attributes],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def ldap3_read(server: Slapd, queries: list) -> tuple[float, int]:
    """Seconds and entries for a minimal ldap3 client: default Server and Connection, the
    paged_search generator, SUBTREE, page size 1000."""
    import ldap3
    started = time.perf_counter()
    connection = ldap3.Connection(ldap3.Server(server.url), READER_DN, READER_PASSWORD, auto_bind=True)
    entries = 0
    for query in queries:
        for answer in connection.extend.standard.paged_search(
                query.base, query.filter, ldap3.SUBTREE, attributes=list(query.attributes),
                paged_size=PAGE_SIZE, generator=True):
            entries += answer["type"] == "searchResEntry"
        if connection.result["result"] != 0:
            raise RuntimeError(f"ldap3 read of {query.base}: {connection.result}")
    connection.unbind()
    return time.perf_counter() - started, entries


# -- syncs ----------------------------------------------------------------------------------


def timed_sync(settings, *, full: bool):
    from bridge import sync
    started = time.perf_counter()
    report = sync.run(settings, full=full)
    return time.perf_counter() - started, report


def child_sync(config_path: str, profile: bool) -> None:
    """--child-sync: one full sync; its report and this process's peak RSS as JSON on
    stdout, or, with ``profile``, a cProfile of it."""
    from bridge import sync
    settings = load_settings(Path(config_path))
    if profile:
        print(profiled("one cold full sync", lambda: sync.run(settings, full=True)))
        return
    report = sync.run(settings, full=True)
    print(json.dumps({"mode": report.mode, "seen": report.seen, "duration": report.duration,
                      "peak_rss_kib": peak_rss_kib()}))


def profiled(title: str, run_sync) -> str:
    """The top 25 functions of ``run_sync()`` by cumulative and by own time, and the SQL
    statements it spent most time executing."""
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    with statement_times() as statements:
        report = profiler.runcall(run_sync)
    out = io.StringIO()
    out.write(f"cProfile of {title} ({report.mode}, {report.seen:,} entries read, "
              f"{report.duration:.2f}s under the profiler)\n")
    for order in ("cumulative", "tottime"):
        out.write(f"\n--- top 25 by {order} ---\n")
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(25)
    out.write("--- SQL statements by time spent in execute/executemany (top 12) ---\n")
    for sql, (seconds, calls) in sorted(statements.items(), key=lambda item: -item[1][0])[:12]:
        out.write(f"{seconds:8.3f}s {calls:7,} calls  {sql[:150]}\n")
    return out.getvalue()


class _TimedConnection(sqlite3.Connection):
    """A connection that adds up the time of each statement it executes."""

    times: dict[str, list] = {}

    def execute(self, sql, *args):
        return self._timed(super().execute, sql, *args)

    def executemany(self, sql, *args):
        return self._timed(super().executemany, sql, *args)

    @classmethod
    def _timed(cls, run, sql: str, *args):
        started = time.perf_counter()
        try:
            return run(sql, *args)
        finally:
            entry = cls.times.setdefault(" ".join(sql.split()), [0.0, 0])
            entry[0] += time.perf_counter() - started
            entry[1] += 1


@contextmanager
def statement_times() -> Iterator[dict[str, list]]:
    """Every sqlite3 connection opened inside is a _TimedConnection; yields its times."""
    connect = sqlite3.connect
    _TimedConnection.times = {}
    sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=_TimedConnection, **kwargs)
    try:
        yield _TimedConnection.times
    finally:
        sqlite3.connect = connect


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM, KiB). Not ru_maxrss: Linux carries the
    parent's RSS at fork into the child's ru_maxrss across exec, so a child spawned by a
    big parent reports at least the parent's size (os.wait4 and RUSAGE_CHILDREN alike)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def sync_in_child(config_path: Path, profile: bool = False) -> str:
    """Run --child-sync in a fresh interpreter; its output."""
    command = [sys.executable, __file__, "--child-sync", str(config_path)]
    done = subprocess.run(command + (["--profile"] if profile else []), stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"child sync failed with {done.returncode}: {done.stdout[-2000:]}")
    return done.stdout


def fresh_store_config(workdir: Path, server: Slapd, name: str) -> Path:
    store = workdir / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    return write_settings(workdir, server, store)


def peak_rss(workdir: Path, server: Slapd) -> float:
    """MiB at the peak of a cold full sync in a child process."""
    report = json.loads(sync_in_child(fresh_store_config(workdir, server, "rss")))
    return report["peak_rss_kib"] / 1024


# -- the API ------------------------------------------------------------------------------


def child_serve(port: int, big_config: str, small_config: str) -> None:
    """--child-serve: one uvicorn: /bare a trivial JSON endpoint, /k1/... the bridge over
    the ~1k store, /nc/... the bridge over the N store with its query cache off, everything
    else the bridge over the N store."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from bridge.web import create_app

    async def bare_endpoint(request):
        await request.body()
        return JSONResponse({"ok": True})

    bare = Starlette(routes=[Route("/bare", bare_endpoint, methods=["POST"])])
    big = create_app(load_settings(Path(big_config)))
    small = create_app(load_settings(Path(small_config)))
    uncached = create_app(load_settings(Path(big_config), {"BRIDGE_JMAP__QUERY_CACHE_IDS": "0"}))

    def under(prefix: bytes, inner):
        async def app(scope, receive, send):
            raw_path = scope["raw_path"][len(prefix):]
            await inner(dict(scope, path=raw_path.decode(), raw_path=raw_path), receive, send)
        return app

    prefixed = {"/k1/": under(b"/k1", small), "/nc/": under(b"/nc", uncached)}

    async def app(scope, receive, send):
        path = scope.get("path", "")
        if path == "/bare":
            await bare(scope, receive, send)
        else:
            await prefixed.get(path[:4], big)(scope, receive, send)

    # as `bridge serve` configures it (bridge/server.py), minus TLS and the scheduler
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_config=None,
                server_header=False, lifespan="off")


class Client:
    """One keep-alive HTTP/1.1 connection with as little client work as possible."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return int(head[9:12]), rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def http_request(port: int, method: str, path: str, body: object = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


def jmap_request(port: int, path: str, account: str, method: str, arguments: dict) -> bytes:
    return http_request(port, "POST", path, {"using": USING, "methodCalls": [
        [method, {"accountId": account, **arguments}, "0"]]})


def checked(status: int, body: bytes) -> bytes:
    if status != 200 or b'["error"' in body:
        raise RuntimeError(f"request failed: {status} {body[:300]!r}")
    return body


def throughput(port: int, requests: list[bytes], total: int) -> float:
    """Requests per second of ``total`` requests (cycling through ``requests``) from
    CLIENT_THREADS keep-alive connections."""
    clients = [Client(port) for _ in range(CLIENT_THREADS)]
    for raw in requests[:20] * 2:
        checked(*clients[0].send(raw))  # warm-up
    barrier, failures = threading.Barrier(CLIENT_THREADS + 1), []

    def work(client: Client, share: int, offset: int) -> None:
        barrier.wait()
        try:
            for n in range(share):
                checked(*client.send(requests[(offset + n) % len(requests)]))
        except Exception as exc:  # reported by the main thread
            failures.append(exc)

    shares = [total // CLIENT_THREADS + (k < total % CLIENT_THREADS) for k in range(CLIENT_THREADS)]
    threads = [threading.Thread(target=work, args=(client, share, k))
               for k, (client, share) in enumerate(zip(clients, shares, strict=True))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    if failures:
        raise failures[0]
    return total / elapsed


def latency(port: int, raw: bytes, count: int) -> float:
    """Median milliseconds of one call, one at a time on one connection."""
    client = Client(port)
    for _ in range(20):
        checked(*client.send(raw))
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        checked(*client.send(raw))
        samples.append(time.perf_counter() - started)
    client.close()
    return statistics.median(samples) * 1000


@contextmanager
def api_server(big_config: Path, small_config: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--child-serve", str(port),
                                str(big_config), str(small_config)])
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the API server exited with {process.returncode}")
            try:
                client = Client(port)
                checked(*client.send(http_request(port, "POST", "/bare", {})))
                client.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def account_of(port: int) -> str:
    client = Client(port)
    session = json.loads(checked(*client.send(http_request(port, "GET", "/.well-known/jmap"))))
    client.close()
    return session["primaryAccounts"]["urn:ietf:params:jmap:principals"]


def changes_count(port: int, raw: bytes) -> int:
    client = Client(port)
    response = json.loads(checked(*client.send(raw)))["methodResponses"][0]
    client.close()
    assert response[0] == "Principal/changes" and not response[1]["hasMoreChanges"], response
    return sum(len(response[1][kind]) for kind in ("created", "updated", "destroyed"))


# -- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    value: float
    unit: str  # s, ms, MiB, rps
    ratio: float | None = None
    baseline: str = ""
    target: tuple[str, float] | None = None  # ("<=" | ">=", bound)
    percent: bool = False  # show the ratio as a percentage

    def cells(self) -> list[str]:
        digits = {"s": 2, "ms": 2, "MiB": 1, "rps": 0}[self.unit]
        ratio = "" if self.ratio is None else \
            f"{self.ratio:.1%}" if self.percent else f"{self.ratio:.2f}x"
        target = result = ""
        if self.target:
            op, bound = self.target
            target = f"{op} {bound:.0%}" if self.percent else f"{op} {bound:g}x"
            met = self.ratio <= bound if op == "<=" else self.ratio >= bound
            result = "PASS" if met else "MISS"
        return [self.label, f"{self.value:,.{digits}f} {self.unit}", ratio, self.baseline, target, result]


def print_table(rows: list[Row]) -> None:
    header = ["measurement", "value", "ratio", "baseline", "target", "result"]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[k]) for line in table) for k in range(len(header))]
    align = ["<", ">", ">", "<", "<", "<"]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    print("\n".join([line(header), rule, *(line(cells) for cells in table[1:]), rule]))


def machine() -> list[str]:
    import importlib.util

    import ldap3
    import uvicorn
    found = importlib.util.find_spec
    http = f"{'httptools' if found('httptools') else 'h11'}, {'uvloop' if found('uvloop') else 'asyncio'}"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    slapd = subprocess.run([SLAPD, "-VV"], capture_output=True, text=True).stderr.strip().splitlines()
    slapd_version = slapd[0].split("slapd", 1)[-1].split("(")[0].strip() if slapd else "unknown"
    return [f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
            f"python {platform.python_version()}, slapd {slapd_version}, SQLite {sqlite3.sqlite_version}, "
            f"ldap3 {ldap3.__version__}, uvicorn {uvicorn.__version__} ({http})"]


# -- the run --------------------------------------------------------------------------------


def scaled(shape: Shape, principals: int, least_groups: int = 1) -> Shape:
    """``shape`` at about ``principals`` principals: groups and rooms in proportion, no
    person in two groups."""
    share = principals / shape.principals
    groups = max(round(shape.groups * share), least_groups)
    rooms = max(round(shape.rooms * share), 1)
    people = principals - groups - rooms
    return Shape(people, groups, max(1, min(shape.group_size, people // groups)), rooms)


@dataclass
class SyncDirectory:
    """A bench directory synced into its store, changed by a plan, and synced again."""

    settings_path: Path
    cold: float = 0.0
    again: float = 0.0
    incremental: float = 0.0
    mode: str = ""
    before_changes: str = ""  # the Principal state the changes start from


def sync_and_change(workdir: Path, server: Slapd, shape: Shape, count: int) -> SyncDirectory:
    settings_path = write_settings(workdir, server, workdir / "bridge.db")
    settings = load_settings(settings_path)
    result = SyncDirectory(settings_path)
    result.cold, report = timed_sync(settings, full=True)
    if report.created != shape.principals:
        raise RuntimeError(f"the cold sync created {report.created} principals, not {shape.principals}")
    log(f"cold full sync of {report.seen:,} entries: {result.cold:.2f}s")
    result.again, report = timed_sync(settings, full=True)
    if report.created or report.updated or report.destroyed:
        raise RuntimeError(f"a no-change re-sync changed something: {report.summary()}")
    log(f"no-change full re-sync: {result.again:.2f}s")
    result.before_changes = principal_state(settings)
    plan = plan_changes(shape, count)
    apply_changes(server, shape, plan)
    result.incremental, report = timed_sync(settings, full=False)
    result.mode = report.mode
    expected = (len(plan.added), len(plan.modified) + len(plan.grown) + len(plan.deleted), len(plan.deleted))
    if (report.created, report.updated, report.destroyed) != expected:
        log(f"WARNING: the sync after the changes found created/updated/destroyed "
            f"{report.created}/{report.updated}/{report.destroyed}, not {'/'.join(map(str, expected))}")
    log(f"{report.mode} sync after {count} changes: {result.incremental:.3f}s")
    return result


@dataclass
class Results:
    shape: Shape
    small: Shape | None = None  # the directory of the RSS baseline
    k1: Shape | None = None  # the directory of the /changes latency baseline
    searched: float = 0.0
    read: float = 0.0
    big: SyncDirectory | None = None
    rss_big: float = 0.0
    rss_small: float = 0.0
    api: dict = field(default_factory=dict)
    profile: str = ""


def measure(args: argparse.Namespace, workdir: Path) -> Results:
    shape = Shape(args.people, args.groups, args.group_size, args.rooms)
    plan = plan_changes(shape, args.changes)  # fails early when the sizes cannot take C changes
    results = Results(shape)
    results.small = scaled(shape, round(shape.principals * args.small_people / shape.people))
    results.k1 = scaled(shape, SMALL_DIRECTORY, least_groups=len(plan.grown) + len(plan.deleted))
    with running_directory(workdir / "big", shape) as server:
        results.searched, results.read = read_baselines(workdir / "big", server, shape)
        results.big = big = sync_and_change(workdir / "big", server, shape, args.changes)
        results.rss_big = peak_rss(workdir / "big", server)
        log(f"peak RSS of a full sync at {shape.people:,} people: {results.rss_big:.1f} MiB")
        with running_directory(workdir / "small", results.small) as small:
            results.rss_small = peak_rss(workdir / "small", small)
        log(f"peak RSS of a full sync at {results.small.people:,} people: {results.rss_small:.1f} MiB")
        with running_directory(workdir / "k1", results.k1) as k1_server:
            k1 = sync_and_change(workdir / "k1", k1_server, results.k1, args.changes)
        with api_server(big.settings_path, k1.settings_path) as port:
            results.api = measure_api(port, big.before_changes, k1.before_changes, args.requests)
        if args.profile:  # last: its changes move the store on
            results.profile = profiles(workdir / "big", server, shape, args.changes)
    return results


def read_baselines(workdir: Path, server: Slapd, shape: Shape) -> tuple[float, float]:
    """Seconds for ldapsearch (best of two, after a warm-up) and for one bare ldap3 read."""
    queries = source_queries(load_settings(write_settings(workdir, server, workdir / "unused.db")))
    ldapsearch_read(server, queries)  # warm-up: every page of the database in memory
    searched = min(ldapsearch_read(server, queries) for _ in range(2))
    log(f"ldapsearch: {searched:.2f}s")
    read, entries = ldap3_read(server, queries)
    if entries != shape.principals:
        raise RuntimeError(f"the ldap3 read found {entries} entries, not {shape.principals}")
    log(f"bare ldap3 paged read: {read:.2f}s")
    return searched, read


def rows(args: argparse.Namespace, r: Results) -> list[Row]:
    big, api, changed = r.big, r.api, f"{args.changes} changes"
    return [
        Row("ldapsearch (C), paged, every source", r.searched, "s"),
        Row("bare ldap3 paged read, every source", r.read, "s"),
        Row("full sync, cold (empty store)", big.cold, "s", big.cold / r.read, "bare ldap3 read",
            ("<=", 1.25)),
        Row("full sync, cold: stretch", big.cold, "s", big.cold / r.searched, "ldapsearch", ("<=", 3)),
        Row("full re-sync, no change", big.again, "s", big.again / r.read, "bare ldap3 read"),
        Row(f"sync after {changed} ({big.mode})", big.incremental, "s", big.incremental / big.cold,
            "full sync, cold", ("<=", 0.02), percent=True),
        Row(f"sync after {changed} vs re-sync", big.incremental, "s", big.incremental / big.again,
            "full re-sync", percent=True),
        Row(f"peak RSS, full sync, {r.small.people:,} people", r.rss_small, "MiB"),
        Row(f"peak RSS, full sync, {r.shape.people:,} people", r.rss_big, "MiB", r.rss_big / r.rss_small,
            f"at {r.small.people:,} people", ("<=", 1.5)),
        Row("bare Starlette JSON endpoint", api["bare"], "rps"),
        Row("Principal/query, text filter", api["query"], "rps", api["query"] / api["bare"],
            "bare endpoint", (">=", 0.5)),
        Row("Principal/query, query cache off", api["uncached"], "rps", api["uncached"] / api["bare"],
            "bare endpoint"),
        Row(f"Principal/changes, {changed}", api["changes"], "rps", api["changes"] / api["bare"],
            "bare endpoint"),
        Row(f"/changes latency, {r.k1.principals:,} principals ({api['k1_ids']} ids)",
            api["k1_latency"], "ms"),
        Row(f"/changes latency, {r.shape.principals:,} principals ({api['big_ids']} ids)",
            api["big_latency"], "ms", api["big_latency"] / api["k1_latency"],
            f"at {r.k1.principals:,} principals", ("<=", 1.2)),
    ]


def profiles(workdir: Path, server: Slapd, shape: Shape, count: int) -> str:
    """A cold full sync profiled in a child, and an incremental sync after another batch of
    changes profiled here."""
    from bridge import sync
    full = sync_in_child(fresh_store_config(workdir, server, "profile"), profile=True)
    apply_changes(server, shape, plan_changes(shape, count, batch=1))
    settings = load_settings(workdir / "bridge.toml")
    return full + "\n" + profiled(f"the sync after {count} more changes", lambda: sync.run(settings))


def measure_api(port: int, big_state: str, k1_state: str, count: int) -> dict:
    account = account_of(port)
    queries = [jmap_request(port, "/jmap", account, "Principal/query",
                            {"filter": {"text": text}, "limit": 50}) for text in QUERY_TEXTS]
    big = jmap_request(port, "/jmap", account, "Principal/changes", {"sinceState": big_state})
    k1 = jmap_request(port, "/k1/jmap", account, "Principal/changes", {"sinceState": k1_state})
    # the bare endpoint reads the same request bodies
    bare = [raw.replace(b"POST /jmap ", b"POST /bare ", 1) for raw in queries]
    uncached = [raw.replace(b"POST /jmap ", b"POST /nc/jmap ", 1) for raw in queries]
    result = {"big_ids": changes_count(port, big), "k1_ids": changes_count(port, k1)}
    for name, requests in (("bare", bare), ("query", queries), ("uncached", uncached),
                           ("changes", [big]), ("bare again", bare)):
        result[name] = throughput(port, requests, count)
        log(f"{name}: {result[name]:,.0f} requests/s")
    result["bare"] = (result["bare"] + result.pop("bare again")) / 2  # before and after: less drift
    result["k1_latency"] = latency(port, k1, count)
    result["big_latency"] = latency(port, big, count)
    log(f"/changes latency: {result['k1_latency']:.2f}ms at ~1k, {result['big_latency']:.2f}ms at N")
    return result


def at_least(least: int):
    """An argparse type: an integer no smaller than ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is less than {least}")
        return value
    return parse


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=at_least(1), default=100_000, help="people in the directory (N)")
    parser.add_argument("--groups", type=at_least(1), default=2000, help="groups (G)")
    parser.add_argument("--group-size", type=at_least(1), default=50, help="members per group (S)")
    parser.add_argument("--rooms", type=at_least(0), default=200, help="rooms (R)")
    parser.add_argument("--changes", type=at_least(0), default=100,
                        help="changes before the incremental sync (C): 80%% modifies, 10%% adds, "
                        "10%% deletes")
    parser.add_argument("--small-people", type=at_least(1), default=10_000,
                        help="people of the smaller directory the peak RSS is compared with (M)")
    parser.add_argument("--requests", type=at_least(1), default=2000,
                        help="HTTP requests per API measurement (K)")
    parser.add_argument("--workdir", type=Path, help="where the directories and stores go (kept); "
                        "default: a temporary directory, removed after")
    parser.add_argument("--profile", action="store_true",
                        help="after the table, cProfiles of a cold full sync and of an incremental one")
    parser.add_argument("--child-sync", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--child-serve", nargs=3, metavar=("PORT", "CONFIG", "CONFIG_1K"),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = arguments()
    if args.child_sync:
        return child_sync(args.child_sync, args.profile)
    if args.child_serve:
        port, big, small = args.child_serve
        return child_serve(int(port), big, small)
    print("\n".join(machine()))
    print(f"directory: {args.people:,} people (7 attributes), {args.groups:,} groups of "
          f"{args.group_size}, {args.rooms:,} rooms; {args.changes} changes; "
          f"{args.requests:,} requests per API measurement, {CLIENT_THREADS} client connections\n",
          flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    try:
        results = measure(args, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows(args, results))
    if results.profile:
        print("\n" + results.profile)


if __name__ == "__main__":
    main()
