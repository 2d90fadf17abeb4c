"""One sync run: read every source, map its entries, stage them, pass the safety valve and
apply everything in one transaction — or, in plan mode, only compute the diff.

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

from bridge.config import Settings
from bridge.directory import Directory, ServerInfo, open_directory
from bridge.errors import BridgeError, ConfigError, StoreError, SyncAborted
from bridge.mapper import Skipped, SourceMap, flavor_for, identifier_uuid, map_entry, principal_id, source_map
from bridge.nesting import add_server_nesting
from bridge.store import Plan, Resolution, Snapshot, Store

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


@dataclass
class SourceReport:
    name: str
    read: int = 0
    skipped: int = 0
    warnings: int = 0
    disabled: int = 0


@dataclass
class SyncReport:
    mode: str  # full
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
        return (f"{verb}: seen {self.seen}, created {self.created}, updated {self.updated}, "
                f"destroyed {self.destroyed}, skipped {self.skipped}, warnings {self.warnings}, "
                f"{self.duration:.2f}s, state {self.state}")


def run(settings: Settings, *, plan_only: bool = False, force: bool = False, full: bool = False,
        progress: Progress | None = None, samples: int = 10) -> SyncReport:
    """One run. Raises SyncAborted when the valve refuses, DirectoryError or StoreError on
    failure; either way nothing was written but a run record for `bridge status`.

    ``full`` asks for a complete re-read; every run is one until incremental readers exist.
    ``samples``: how many changes of each kind the plan lists.
    """
    del full  # every run reads everything for now
    if not settings.sources:
        raise ConfigError("no sources configured: add at least one [sources.NAME] table")
    started = time.time()
    report = SyncReport(mode="full", outcome="planned" if plan_only else "ok")
    with Store.open(settings.store.path, readonly=plan_only) as store, \
            (nullcontext() if plan_only else store.run_lock()):
        try:
            _run(settings, store, report, plan_only, force, progress, started, samples)
        except BridgeError as exc:
            report.duration = time.time() - started
            if not plan_only:
                _record_failure(store, report, started, exc)
            raise
    log.info("%s", report.summary())
    return report


def _run(settings: Settings, store: Store, report: SyncReport, plan_only: bool, force: bool,
         progress: Progress | None, started: float, samples: int) -> None:
    with store.snapshot() as snapshot:
        with open_directory(settings.directory) as directory:
            report.server = directory.info
            flavor = flavor_for(settings.directory.flavor, directory.info.flavor)
            smaps = [source_map(source, flavor, settings.directory.id_attribute)
                     for source in settings.sources]
            for smap in smaps:
                report.sources[smap.name] = _read_source(directory, smap, snapshot, progress, started)
            report.resolution = snapshot.resolve()
            if settings.sync.nested_groups == "auto":
                report.nesting = add_server_nesting(directory, snapshot, smaps)
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
            applied = snapshot.apply(valve, _run_fields(report, started),
                                     retention=settings.store.history_retention, samples=samples)
            report.plan = applied.plan
            report.state = store.state()
    plan = report.plan
    report.created, report.updated, report.destroyed = (
        plan.total(kind) for kind in ("created", "updated", "destroyed"))
    report.duration = time.time() - started


def _read_source(directory: Directory, smap: SourceMap, snapshot: Snapshot,
                 progress: Progress | None, now: float) -> SourceReport:
    counts = SourceReport(smap.name)
    disabled = _disabled_ids(directory, smap)
    for entry in directory.read(smap.query()):
        counts.read += 1
        mapped = map_entry(entry, smap, disabled, now)
        if isinstance(mapped, Skipped):
            counts.skipped += 1
            log.debug("skipped %s: %s", mapped.dn, mapped.reason)
        else:
            snapshot.add(mapped)
            counts.disabled += mapped.principal.disabled
            counts.warnings += len(mapped.warnings)
            for warning in mapped.warnings:
                log.debug("%s: %s", entry.dn, warning)
        if progress:
            progress(smap.name, counts.read)
    if progress:
        progress(smap.name, counts.read)
    return counts


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
    """Refuse a run whose deletions look like a broken read rather than a real change."""
    if force:
        return
    for name, diff in sorted(plan.sources.items()):
        if diff.previous and not diff.staged:
            why = ("is no longer configured" if name not in configured
                   else "returned no entries")
            raise SyncAborted(f"source '{name}' {why} but has {diff.previous} principals in the "
                              "store; nothing was written (use --force if this is intended)",
                              source=name)
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
