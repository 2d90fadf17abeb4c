"""One sync run: read every source, map its entries, stage them, pass the safety valve and
apply everything in one transaction — or, in plan mode, only compute the diff.

A run is full (every source read completely; absence is deletion) or incremental (each
source's reader, bridge/readers.py, delivers what changed since its cursor, and the store
completes the delta). It is incremental when a full run finished within
``sync.full_every``, no stored source was dropped from the configuration, and some source
has a cursor for the search it has now; a source without one (new, redefined, or whose
reader cannot start) is read completely within the incremental run. A reader that cannot
go on from its cursor turns the run into a full one. The cursors are written in the same
transaction as the data they produced.

Error is not absence: any directory error aborts the run before anything is written, and
so does a source that comes back empty after having had entries, or a run that would
destroy more than the configured share of a source (unless forced).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from bridge.config import Settings
from bridge.directory import Directory, ServerInfo, open_directory
from bridge.errors import BridgeError, ConfigError, StoreError, SyncAborted
from bridge.mapper import Skipped, SourceMap, flavor_for, identifier_uuid, map_entry, principal_id, source_map
from bridge.model import RawEntry
from bridge.nesting import add_server_nesting
from bridge.readers import Reader, RefreshRequired, fingerprint, reader_for
from bridge.store import Cursor, Plan, Resolution, Snapshot, Store

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


@dataclass
class SourceReport:
    name: str
    read: int = 0
    skipped: int = 0
    warnings: int = 0
    disabled: int = 0
    deleted: int = 0  # deletions an incremental reader reported
    reader: str = ""  # how changes are read: syncrepl | usn | timestamp (none: full only)
    complete: bool = True  # read completely (in a full run, or new or changed in an incremental one)


@dataclass
class SyncReport:
    mode: str  # full | incremental
    outcome: str  # ok | planned
    seen: int = 0
    created: int = 0
    updated: int = 0
    destroyed: int = 0
    skipped: int = 0
    warnings: int = 0
    duration: float = 0.0
    state: str = ""
    nesting: str = "client"  # how nested groups were resolved: in-chain | client
    would_abort: str = ""  # plan mode: why a real run would be refused
    plan: Plan | None = None
    resolution: Resolution | None = None
    server: ServerInfo | None = None
    sources: dict[str, SourceReport] = field(default_factory=dict)

    def summary(self) -> str:
        """The one line a run ends with."""
        verb = "plan" if self.outcome == "planned" else f"sync {self.outcome}"
        if self.mode == "incremental":
            verb += " (incremental)"
        return (f"{verb}: seen {self.seen}, created {self.created}, updated {self.updated}, "
                f"destroyed {self.destroyed}, skipped {self.skipped}, warnings {self.warnings}, "
                f"{self.duration:.2f}s, state {self.state}")


def run(settings: Settings, *, plan_only: bool = False, force: bool = False, full: bool = False,
        progress: Progress | None = None, samples: int = 10) -> SyncReport:
    """One run. Raises SyncAborted when the valve refuses, DirectoryError or StoreError on
    failure; either way nothing was written but a run record for `bridge status`.

    ``full`` forces a complete read; otherwise the run is incremental where it can be.
    ``samples``: how many changes of each kind the plan lists.
    """
    if not settings.sources:
        raise ConfigError("no sources configured: add at least one [sources.NAME] table")
    started = time.time()
    report = SyncReport(mode="full", outcome="planned" if plan_only else "ok")
    with Store.open(settings.store.path, readonly=plan_only) as store, \
            (nullcontext() if plan_only else store.run_lock()):
        try:
            _run(settings, store, report, plan_only, force, progress, started, samples, full)
        except BridgeError as exc:
            report.duration = time.time() - started
            if not plan_only:
                _record_failure(store, report, started, exc)
            raise
    log.info("%s", report.summary())
    return report


@dataclass
class _Run:
    """What one run works with, whichever way it reads."""

    settings: Settings
    store: Store
    directory: Directory
    smaps: list[SourceMap]
    readers: dict[str, Reader]
    report: SyncReport
    progress: Progress | None
    started: float


def _run(settings: Settings, store: Store, report: SyncReport, plan_only: bool, force: bool,
         progress: Progress | None, started: float, samples: int, full: bool) -> None:
    with open_directory(settings.directory) as directory:
        report.server = directory.info
        flavor = flavor_for(settings.directory.flavor, directory.info.flavor)
        smaps = [source_map(source, flavor, settings.directory.id_attribute) for source in settings.sources]
        readers = {smap.name: reader_for(directory.info, smap, settings.sync.timestamp_overlap)
                   for smap in smaps}
        current = _Run(settings, store, directory, smaps, readers, report, progress, started)
        if not full and _may_go_on(current):
            try:
                _read_and_apply(current, plan_only, force, samples, incremental=True)
                return
            except RefreshRequired as exc:
                log.info("an incremental read is not possible (%s): reading everything", exc)
                report.sources.clear()
        _read_and_apply(current, plan_only, force, samples, incremental=False)


def _may_go_on(run: _Run) -> bool:
    """Whether every source can be read from its cursor in this run."""
    sync_settings = run.settings.sync
    if not sync_settings.incremental:
        return False
    cursors = run.store.cursors()
    if not run.store.sources_in_store() <= {smap.name for smap in run.smaps}:
        return False  # a source was dropped: only a full run may remove its principals
    if not any(_usable(cursors.get(smap.name), run.readers[smap.name], smap) for smap in run.smaps):
        return False
    last_full = run.store.last_successful_run(mode="full")
    if last_full is None:
        return False
    finished = datetime.fromisoformat(last_full.finished_at.replace("Z", "+00:00")).timestamp()
    return not sync_settings.full_every or run.started - finished < sync_settings.full_every


def _usable(cursor: Cursor | None, reader: Reader, smap: SourceMap) -> bool:
    """Whether ``reader`` can go on from ``cursor`` for the source as it is defined now."""
    return (cursor is not None and cursor.reader == reader.name
            and cursor.fingerprint == fingerprint(reader.name, smap))


def _read_and_apply(run: _Run, plan_only: bool, force: bool, samples: int, incremental: bool) -> None:
    report, settings, store = run.report, run.settings, run.store
    report.mode = "incremental" if incremental else "full"
    stored = store.cursors() if incremental else {}
    cursors: dict[str, Cursor] = {}
    with store.snapshot(complete=not incremental) as snapshot:
        for smap in run.smaps:
            reader = run.readers[smap.name]
            counts = report.sources[smap.name] = SourceReport(smap.name, reader=reader.name)
            if incremental and _usable(cursor := stored.get(smap.name), reader, smap):
                counts.complete = False
                position = _read_changes(run, smap, reader, cursor.position, snapshot, counts)
            else:
                position = _start_position(run, smap, reader)
                _read_source(run, smap, snapshot, counts)
                if incremental:  # what this read did not find is gone
                    snapshot.only_present(smap.name)
            if position is not None:
                cursors[smap.name] = Cursor(reader.name, fingerprint(reader.name, smap), position)
        if incremental and settings.sync.nested_groups == "auto" and run.directory.info.flavor == "ad":
            snapshot.widen()  # Active Directory: in-chain memberships are asked for every group
        report.resolution = snapshot.resolve()
        if settings.sync.nested_groups == "auto":
            report.nesting = add_server_nesting(run.directory, snapshot, run.smaps)
            report.resolution = snapshot.resolve()  # resolved again if nesting widened it
        _tally(report)
        configured = [source.name for source in settings.sources]

        def valve(plan: Plan) -> None:
            check_safety(plan, configured, settings.sync, force)

        if plan_only:
            report.plan = snapshot.plan(samples)
            try:
                valve(report.plan)
            except SyncAborted as refusal:
                report.would_abort = refusal.reason
            report.state = "(no store yet)" if store.ephemeral else store.state()
        else:
            applied = snapshot.apply(valve, _run_fields(report, run.started),
                                     retention=settings.store.history_retention, samples=samples,
                                     cursors=cursors if settings.sync.incremental else {})
            report.plan = applied.plan
            report.state = store.state()
    plan = report.plan
    report.created, report.updated, report.destroyed = (
        plan.total(kind) for kind in ("created", "updated", "destroyed"))
    report.duration = time.time() - run.started


def _start_position(run: _Run, smap: SourceMap, reader: Reader) -> dict | None:
    """Where the next incremental read of ``smap`` starts: taken before this full read, so
    that a change during it is read again, never missed. None: incremental is off, or
    this reader cannot start here (every run of this source then reads it completely)."""
    if not run.settings.sync.incremental:
        return None
    try:
        return reader.start(run.directory, smap, run.started)
    except RefreshRequired as exc:
        log.info("source '%s' will be read completely every run: %s", smap.name, exc)
        return None


class _SourceDelta:
    """A reader's findings for one source, staged (the readers.Delta of sync)."""

    def __init__(self, run: _Run, smap: SourceMap, snapshot: Snapshot, counts: SourceReport) -> None:
        self._stage = _Stager(run, smap, snapshot, counts)
        self._smap, self._snapshot, self._counts = smap, snapshot, counts

    def changed(self, entry: RawEntry) -> None:
        self._stage(entry)

    def deleted(self, principal_id: str) -> None:
        self._counts.deleted += 1
        self._snapshot.delete(principal_id, self._smap.name)

    def present(self, principal_ids: list[str]) -> None:
        self._snapshot.present(self._smap.name, principal_ids)

    def only_present(self) -> None:
        self._snapshot.only_present(self._smap.name)


def _read_changes(run: _Run, smap: SourceMap, reader: Reader, position: dict, snapshot: Snapshot,
                  counts: SourceReport) -> dict:
    position = reader.changes(run.directory, smap, position, _SourceDelta(run, smap, snapshot, counts),
                              run.started)
    if run.progress:
        run.progress(smap.name, counts.read)
    return position


def _read_source(run: _Run, smap: SourceMap, snapshot: Snapshot, counts: SourceReport) -> None:
    stage = _Stager(run, smap, snapshot, counts)
    for entry in run.directory.read(smap.query()):
        stage(entry)
    if run.progress:
        run.progress(smap.name, counts.read)


class _Stager:
    """Maps one entry of a source and stages it, counting."""

    def __init__(self, run: _Run, smap: SourceMap, snapshot: Snapshot, counts: SourceReport) -> None:
        self._run, self._smap, self._snapshot, self._counts = run, smap, snapshot, counts
        self._disabled = _disabled_ids(run.directory, smap)

    def __call__(self, entry: RawEntry) -> None:
        counts, smap = self._counts, self._smap
        counts.read += 1
        mapped = map_entry(entry, smap, self._disabled, self._run.started)
        if isinstance(mapped, Skipped):
            counts.skipped += 1
            log.debug("skipped %s: %s", mapped.dn, mapped.reason)
        else:
            self._snapshot.add(mapped)
            counts.disabled += mapped.principal.disabled
            counts.warnings += len(mapped.warnings)
            for warning in mapped.warnings:
                log.debug("%s: %s", entry.dn, warning)
        if self._run.progress:
            self._run.progress(smap.name, counts.read)


def _disabled_ids(directory: Directory, smap: SourceMap) -> frozenset[str]:
    """Ids of the source's entries that also match its disabled filter (the server
    evaluates the filter, so any LDAP filter works)."""
    if not smap.disabled_filter:
        return frozenset()
    query = smap.query(f"(&{smap.filter}{smap.disabled_filter})", (smap.id_attribute,))
    return frozenset(principal_id(identifier_uuid(smap.id_attribute, values[0]))
                     for entry in directory.read(query)
                     if (values := entry.values(smap.id_attribute)))


def check_safety(plan: Plan, configured: list[str], sync_settings, force: bool) -> None:
    """Refuse a run whose deletions, or emptied fields, look like a broken read rather than a
    real change."""
    if force:
        return
    for name, diff in sorted(plan.sources.items()):
        if diff.previous and not diff.staged:
            why = ("is no longer configured" if name not in configured
                   else "returned no entries")
            raise SyncAborted(f"source '{name}' {why} but has {diff.previous} principals in the "
                              "store; nothing was written (use --force if this is intended)",
                              source=name)
        _check_emptied(name, diff, sync_settings)
        if not diff.destroyed:
            continue
        limit = sync_settings.max_delete_count
        if limit and diff.destroyed > limit:
            raise SyncAborted(f"source '{name}': {diff.destroyed} principals would be destroyed, "
                              f"more than max_delete_count {limit}; nothing was written "
                              "(use --force if this is intended)", source=name)
        share = diff.destroyed / diff.previous
        if diff.destroyed > sync_settings.max_delete_ratio_grace and share > sync_settings.max_delete_ratio:
            raise SyncAborted(f"source '{name}': {diff.destroyed} of {diff.previous} principals "
                              f"({share:.0%}) would be destroyed, more than max_delete_ratio "
                              f"{sync_settings.max_delete_ratio:.0%}; nothing was written "
                              "(use --force if this is intended)", source=name)


_FIELD_NAMES = {"email": "an email", "description": "a description", "time_zone": "a time zone",
                "members": "members"}


def _check_emptied(name: str, diff, sync_settings) -> None:
    """Refuse a run that empties one field on many principals at once (see store/losses.py)."""
    for emptied, (lost, holders) in sorted(diff.emptied.items()):
        share = lost / holders if holders else 1.0
        if lost > sync_settings.max_empty_grace and share > sync_settings.max_empty_ratio:
            raise SyncAborted(f"source '{name}': {lost} of the {holders} principals read with "
                              f"{_FIELD_NAMES[emptied]} would lose it ({share:.0%}), more than "
                              f"max_empty_ratio {sync_settings.max_empty_ratio:.0%}; may the service "
                              "account still read that attribute? Nothing was written (use --force "
                              "if this is intended)", source=name)


def _tally(report: SyncReport) -> None:
    sources = report.sources.values()
    report.seen = sum(s.read for s in sources)
    report.skipped = sum(s.skipped for s in sources) + len(report.resolution.duplicates)
    report.warnings = sum(s.warnings for s in sources)
    if report.resolution.duplicates:
        log.warning("%d entries appear in more than one source; the first source keeps them "
                    "(first: %s)", len(report.resolution.duplicates), report.resolution.duplicates[0])
    if report.resolution.unresolved_members:
        log.info("%d member values name no principal of any source",
                 report.resolution.unresolved_members)
    if report.resolution.ambiguous_members:
        log.warning("%d memberUid values match the login of several people; each resolves to "
                    "the first id", report.resolution.ambiguous_members)


def _run_fields(report: SyncReport, started: float) -> dict:
    detail = {"server": report.server.url if report.server else "",
              "flavor": report.server.flavor if report.server else "",
              "nesting": report.nesting,
              "sources": {name: vars(counts) for name, counts in report.sources.items()}}
    if report.resolution:
        detail["unresolved_members"] = report.resolution.unresolved_members
        detail["ambiguous_members"] = report.resolution.ambiguous_members
        detail["duplicates"] = len(report.resolution.duplicates)
        detail["resolved"] = report.resolution.principals
    return {"started": started, "mode": report.mode, "seen": report.seen,
            "skipped": report.skipped, "warnings": report.warnings, "detail": detail}


def _record_failure(store: Store, report: SyncReport, started: float, exc: BridgeError) -> None:
    outcome = "aborted" if isinstance(exc, SyncAborted) else "failed"
    fields = _run_fields(report, started) | {"duration": round(report.duration, 3)}
    try:
        store.record_run(fields, outcome, str(exc))
    except StoreError:
        log.exception("could not record the %s run", outcome)
    log.info("sync %s: %s", outcome, exc)
