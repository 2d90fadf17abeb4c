"""The `bridge` command: one thin function per verb, errors turned into one line and an
exit code."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from bridge import check as checking
from bridge import config, sync
from bridge import status as views
from bridge.errors import EXIT_ABORTED, EXIT_BUSY, EXIT_CONFIG, EXIT_FAILED, EXIT_OK, BridgeError, UsageError

log = logging.getLogger(__name__)

EXIT_CODES = f"""exit codes:
  {EXIT_OK}  success
  {EXIT_FAILED}  failure: the directory or the store could not be used (nothing was written)
  {EXIT_CONFIG}  bad configuration or command line
  {EXIT_ABORTED}  sync refused by the safety valve (nothing was written; --force overrides)
  {EXIT_BUSY}  another sync run holds the store
"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # a server logs a line per request and per sync run; a command only what goes wrong
    _configure_logging(args.verbose + (1 if args.verb is cmd_serve else 0))
    try:
        settings = config.load(config.config_path(args.config))
        log.info("configuration from %s: %s", settings.origin or "the environment", settings.masked())
        return args.verb(settings, args)
    except BridgeError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bridge: interrupted; nothing was written by the interrupted run", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge", description="Mirror an LDAP directory into a JMAP Principals store.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE",
                        help=f"configuration file (default: ${config.CONFIG_ENV}, "
                             f"else ./{config.DEFAULT_CONFIG})")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more: -v for INFO, -vv for DEBUG (to stderr)")
    verbs = parser.add_subparsers(title="verbs", required=True, metavar="VERB")

    def verb(name: str, function, help_text: str, example: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text,
                               epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(verb=function)
        return sub

    sub = verb("sync", cmd_sync, "Read the directory once and apply the changes to the store.",
               "bridge --config /etc/bridge/bridge.toml sync --plan")
    sub.add_argument("--plan", action="store_true", help="print the diff and write nothing")
    sub.add_argument("--full", action="store_true",
                     help="read every source completely (a full reconcile), even where an "
                          "incremental run could go on")
    sub.add_argument("--force", action="store_true",
                     help="apply even if the safety valve would refuse (mass deletions, an emptied source)")
    sub.add_argument("--show", type=int, default=10, metavar="N",
                     help="with --plan: how many changes of each kind to list (default 10)")
    sub = verb("status", cmd_status, "Show recent runs, principal counts, staleness and state.",
               "bridge status --json")
    sub.add_argument("--runs", type=int, default=10, metavar="N", help="how many recent runs to list")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    verb("serve", cmd_serve,
         "Serve the JMAP API (uvicorn) and run the sync every schedule.interval.",
         "bridge --config /etc/bridge/bridge.toml serve")
    sub = verb("notify", cmd_notify,
               "Turn share events (a JSON array, see README) into ShareNotifications.",
               "bridge notify events.json")
    sub.add_argument("file", metavar="FILE", help="JSON file of share events; - for standard input")
    verb("check-config", cmd_check_config,
         "Validate the configuration, then bind to the directory and try every source.",
         "bridge --config bridge.toml check-config")
    sub = verb("history", cmd_history, "Show the change rows of one principal.",
               "bridge history 'uid=jane,ou=people,dc=example,dc=org'")
    sub.add_argument("reference", metavar="ID|UUID|DN", help="principal id, entry UUID, or DN")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _configure_logging(verbosity: int) -> None:
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- sync -------------------------------------------------------------------------------


class _Progress:
    """Entries read per source, redrawn on one terminal line at most five times a second."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._counts: dict[str, int] = {}
        self._drawn_at = 0.0

    def __call__(self, source: str, read: int) -> None:
        self._counts[source] = read
        now = time.monotonic()
        if now - self._drawn_at >= 0.2:
            self._drawn_at = now
            line = "  ".join(f"{name}: {count:,}" for name, count in self._counts.items())
            self._stream.write(f"\r\033[Kreading  {line}")
            self._stream.flush()

    def clear(self) -> None:
        if self._drawn_at:
            self._stream.write("\r\033[K")
            self._stream.flush()


def cmd_sync(settings: config.Settings, args: argparse.Namespace) -> int:
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = sync.run(settings, plan_only=args.plan, force=args.force, full=args.full,
                          progress=progress, samples=args.show)
    finally:
        if progress:
            progress.clear()
    if args.plan:
        _print_plan(report, args.show)
    print(report.summary())
    return EXIT_OK


def _print_plan(report: sync.SyncReport, show: int) -> None:
    plan = report.plan
    print("plan only: nothing was written")
    print(f"{'source':<16}{'previous':>9}{'read':>8}{'skipped':>9}{'created':>9}{'updated':>9}{'destroyed':>11}")
    for name, diff in sorted(plan.sources.items()):
        counts = report.sources.get(name)
        print(f"{name:<16}{diff.previous:>9}{counts.read if counts else 0:>8}"
              f"{counts.skipped if counts else 0:>9}{diff.created:>9}{diff.updated:>9}{diff.destroyed:>11}")
    for name, diff in sorted(plan.sources.items()):
        if diff.emptied:  # fields the updates would empty (sync.max_empty_ratio)
            emptied = ", ".join(f"{field} on {lost} of {had}"
                                for field, (lost, had) in sorted(diff.emptied.items()))
            print(f"  emptied   {name}: {emptied}")
    for kind in ("created", "updated", "destroyed"):
        for sample in plan.samples.get(kind, [])[:show]:
            fields = f"  [{', '.join(sample.fields)}]" if sample.fields else ""
            print(f"  {kind:<10}{sample.id}  {sample.dn}  ({sample.source}){fields}")
        more = plan.total(kind) - min(show, len(plan.samples.get(kind, [])))
        if more > 0:
            print(f"  {kind:<10}... and {more} more")
    if report.would_abort:
        print(f"a real run would be refused: {report.would_abort}")


# -- serve ------------------------------------------------------------------------------


def cmd_serve(settings: config.Settings, args: argparse.Namespace) -> int:
    from bridge import server  # uvicorn and Starlette load only for this verb

    server.serve(settings)
    return EXIT_OK


# -- notify ----------------------------------------------------------------------------


def cmd_notify(settings: config.Settings, args: argparse.Namespace) -> int:
    from bridge.jmap.ingest import events_of, ingest_in_batches
    from bridge.store import Store

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        events = events_of(json.loads(text))
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    with Store.open(settings.store.path) as store:
        outcomes = ingest_in_batches(events, store, settings)
    for outcome in outcomes:
        if outcome.status == "created":
            replaced = f" (replacing {', '.join(outcome.replaced)})" if outcome.replaced else ""
            print(f"{outcome.index}: created {', '.join(outcome.ids) or 'nothing: the change cancels out'}"
                  f"{replaced}")
        else:
            print(f"{outcome.index}: rejected: {outcome.reason}")
    rejected = sum(outcome.status == "rejected" for outcome in outcomes)
    print(f"notify: {len(outcomes) - rejected} created, {rejected} rejected")
    return EXIT_FAILED if rejected else EXIT_OK


# -- status -----------------------------------------------------------------------------


def cmd_status(settings: config.Settings, args: argparse.Namespace) -> int:
    found = views.status(settings, runs=args.runs)
    if args.json:
        print(json.dumps(asdict(found), indent=2))
        return EXIT_OK
    if not found.exists:
        print(f"store       {found.path} does not exist yet: run 'bridge sync'")
        return EXIT_OK
    print(f"store       {found.path} (epoch {found.epoch})")
    horizon = f", history kept after modseq {found.pruned_through}" if found.pruned_through else ""
    print(f"state       {found.state}{horizon}")
    counts = ", ".join(f"{c['total']} {kind}" + (f" ({c['disabled']} disabled)" if c["disabled"] else "")
                       for kind, c in found.counts.items()) or "none"
    print(f"principals  {counts}")
    stale = (f" — STALE: none within two intervals ({_span(2 * settings.schedule.interval)})"
             if found.stale else "")
    if found.last_ok:
        print(f"last sync   ok at {found.last_ok.finished_at}, {_ago(found.last_ok_age)}{stale}")
    else:
        print(f"last sync   never succeeded{stale}")
    if found.last_full:
        readers = ", ".join(f"{name}: {reader}" for name, reader in found.readers.items())
        print(f"last full   {found.last_full.finished_at}; "
              + (f"changes read by {readers}" if readers else "no incremental cursors: every run is full"))
    if found.runs and found.runs[0].outcome != "ok":
        latest = found.runs[0]
        print(f"LATEST RUN  {latest.outcome.upper()} at {latest.finished_at}: {latest.reason}")
    if found.runs:
        print("recent runs")
        for run in found.runs:
            print(f"  #{run.id:<5} {run.finished_at}  {run.mode:<11} {run.outcome:<8}"
                  f"seen {run.seen}, +{run.created} ~{run.updated} -{run.destroyed}, "
                  f"skipped {run.skipped}, {run.duration:.2f}s"
                  + (f"  {run.reason}" if run.reason else ""))
    return EXIT_OK


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{max(seconds, 0):.0f}s"


# -- check-config -----------------------------------------------------------------------


def cmd_check_config(settings: config.Settings, args: argparse.Namespace) -> int:
    print(f"config      {settings.origin or '(environment only)'}: valid")
    report = checking.check(settings)
    server = report.server
    print(f"directory   {server.url}, bound as {report.bind}, TLS: {report.tls}")
    print(f"server      {server.vendor} {server.vendor_version}".rstrip())
    print(f"contexts    {', '.join(server.naming_contexts) or '(none published)'}")
    print(f"controls    paged results: {_yes(server.supports_paging)}, "
          f"syncrepl: {_yes(server.supports_syncrepl)}, DirSync: {_yes(server.supports_dirsync)}")
    print(f"flavor      {report.flavor} ({report.flavor_source}), identifier {report.id_attribute}")
    sync_settings = settings.sync
    runs = (f"incremental runs, a full run at least every {_span(sync_settings.full_every)}"
            if sync_settings.incremental and sync_settings.full_every else
            "incremental runs after the first full one" if sync_settings.incremental else
            "a full read every run (sync.incremental = false)")
    print(f"will use    {runs}; paged reads of {settings.directory.page_size} entries per page")
    for problem in report.problems:
        print(f"PROBLEM     {problem}")
    for source in report.sources:
        verdict = f"PROBLEM: {source.problem}" if source.problem else \
            source.note or f"ok, e.g. {source.sample_dn}"
        print(f"source      {source.name} ({source.type}) {source.base} {source.filter}")
        print(f"            reads {', '.join(source.attributes)}")
        print(f"            {verdict}")
        if source.changes:
            print(f"            {source.changes}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# -- history ----------------------------------------------------------------------------


def cmd_history(settings: config.Settings, args: argparse.Namespace) -> int:
    found = views.history(settings, args.reference)
    if args.json:
        print(json.dumps([asdict(item) for item in found], indent=2, default=str))
        return EXIT_OK
    if not found or not any(item.rows or item.current for item in found):
        print(f"no history for {args.reference}")
        return EXIT_OK
    for item in found:
        where = item.current.dn if item.current else "(destroyed)"
        print(f"{item.id}  {where}")
        for row in item.rows:
            print(f"  {row.modseq:>8}  {row.at}  run {row.run_id or '-':<5} {row.kind:<10}"
                  f"{_describe(row.kind, row.detail)}")
    return EXIT_OK


def _describe(kind: str, detail: dict) -> str:
    if "overrides" in detail:  # a user's own edit through Principal/set
        old, new = detail["overrides"]
        changed = [f"{name}: {old.get(name, '(directory)')!r} -> {new.get(name)!r}"
                   for name in sorted(new) if old.get(name) != new.get(name) or name not in old]
        return f"edited by {detail.get('by', '?')}: " + "; ".join(changed)
    if kind == "updated":
        parts = []
        for name, change in detail.items():
            if isinstance(change, dict):
                parts.append(f"{name} +{len(change['added'])} -{len(change['removed'])}")
            else:
                parts.append(f"{name}: {change[0]!r} -> {change[1]!r}")
        return "; ".join(parts)
    shown = {k: v for k, v in detail.items() if v not in (None, [], False) and k != "dn_key"}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())
