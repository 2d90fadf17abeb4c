"""The store: the only package that speaks SQL. Principals, the change log (one global
modseq, tombstones as ``destroyed`` rows, retention), membership closure, and sync runs.

sqlite3 errors leave this package as bridge.errors.StoreError.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bridge.errors import StoreError, SyncBusy
from bridge.model import Principal
from bridge.query import Filter, SortKey
from bridge.store import changes as log
from bridge.store import reconstruct, view
from bridge.store.changes import ChangeRow, format_state, parse_state
from bridge.store.db import (
    allow_time_limits,
    check_time_limit,
    connect,
    sql_errors,
    time_limit,
    utc_now,
    write_transaction,
)
from bridge.store.edits import apply_edit
from bridge.store.notification_store import NotificationStore
from bridge.store.notifications import Notification, Retention
from bridge.store.reconstruct import Window
from bridge.store.records import COLUMNS, from_row
from bridge.store.schema import SCHEMA_VERSION, migrate
from bridge.store.snapshot import Applied, Cursor, Plan, Sample, Snapshot, SourceDiff, stored_cursors
from bridge.store.staging import Resolution

__all__ = ["Applied", "ChangeRow", "Cursor", "Notification", "Plan", "Retention", "Resolution", "RunRecord",
           "Sample", "Snapshot", "SourceDiff", "Store", "Window", "parse_state"]


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: str
    finished_at: str
    mode: str
    outcome: str  # ok | aborted | failed
    reason: str
    seen: int
    created: int
    updated: int
    destroyed: int
    skipped: int
    warnings: int
    duration: float
    modseq: int | None
    detail: dict


class Store(NotificationStore):
    """One SQLite database. ``Store.open(path)`` creates and migrates it as needed;
    ``readonly=True`` never writes (a missing file reads as an empty store)."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        missing = path != ":memory:" and not os.path.exists(path)
        self.ephemeral = readonly and missing  # an empty stand-in; nothing on disk
        self._limitable = False  # see allow_time_limits
        self._db = connect(":memory:" if readonly and missing else path, readonly and not missing)
        with sql_errors(f"preparing {path}"):
            self._db.execute("PRAGMA temp_store = FILE")
            if not readonly or missing:
                migrate(self._db.conn)
            else:
                self._check_version()
            self.epoch = self._db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]

    @classmethod
    def open(cls, path: str, readonly: bool = False) -> Store:
        return cls(path, readonly)

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema {version}, this bridge uses "
                             f"{SCHEMA_VERSION}; run 'bridge sync' once to migrate it")

    def close(self) -> None:
        self._db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    @contextmanager
    def snapshot(self, complete: bool = True) -> Iterator[Snapshot]:
        """A staging area for one read: a complete one (absence means deletion), or with
        ``complete=False`` a delta of changed entries and explicit deletions."""
        staged = Snapshot(self._db, complete)
        try:
            yield staged
        finally:
            staged.close()

    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Hold the store's run lock (a lock file beside it), so that two sync runs —
        from `serve` and from cron — never apply at once. Raises SyncBusy if taken."""
        if self.path == ":memory:":
            yield
            return
        try:
            handle = open(self.path + ".lock", "a+")  # noqa: SIM115 (held for the block)
        except OSError as exc:
            raise StoreError(f"store: cannot open {self.path}.lock: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SyncBusy(f"another sync run is using {self.path}") from None
            yield
        finally:
            handle.close()

    def record_run(self, run: dict, outcome: str, reason: str) -> int:
        """Record a run that wrote nothing (aborted or failed), for `bridge status`."""
        with sql_errors("recording the run"):
            return self._db["sync_runs"].insert({
                "started_at": utc_now(run["started"]), "finished_at": utc_now(),
                "mode": run["mode"], "outcome": outcome, "reason": reason,
                "seen": run.get("seen", 0), "skipped": run.get("skipped", 0),
                "warnings": run.get("warnings", 0), "duration": run.get("duration", 0),
                "modseq": log.current_modseq(self._db),
                "detail": json.dumps(run.get("detail", {}))}).last_pk

    # -- reading -------------------------------------------------------------------------

    def modseq(self, scope: str = log.PRINCIPAL) -> int:
        with sql_errors("reading the state"):
            return log.current_modseq(self._db, scope)

    def state(self, view: str = "", scope: str = log.PRINCIPAL) -> str:
        """The state token of a scope (Principal, or one recipient's ShareNotifications):
        ``<epoch>-<modseq>``, or ``<epoch>.<view>-<modseq>`` where ``view`` names settings
        that shape what clients see (a change of them makes older tokens foreign, so
        clients refetch instead of keeping stale answers)."""
        return format_state(self._prefix(view), self.modseq(scope))

    def last_change(self) -> int:
        """The modseq of the latest change of any kind (what push watches)."""
        with sql_errors("reading the state"):
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0

    def state_at(self, modseq: int, view: str = "") -> str:
        """The token of an intermediate state (a /changes page)."""
        return format_state(self._prefix(view), modseq)

    def parse_state(self, token: str, view: str = "") -> int | None:
        """The modseq of a token of this database and view; None for a foreign one;
        ValueError when it is not a state token at all."""
        return parse_state(self._prefix(view), token)

    def _prefix(self, view: str) -> str:
        return f"{self.epoch}.{view}" if view else self.epoch

    def pruned_through(self) -> int:
        """The newest modseq pruned from the log (of any scope)."""
        with sql_errors("reading the history horizon"):
            return log.pruned_through(self._db)

    def principal(self, principal_id: str) -> Principal | None:
        with sql_errors("reading a principal"):
            row = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM principals WHERE id = ?",
                                   [principal_id]).fetchone()
        return from_row(dict(zip(COLUMNS, row, strict=True))) if row else None

    def principals(self) -> list[Principal]:
        with sql_errors("reading principals"):
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM principals ORDER BY id").fetchall()
        return [from_row(dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per type: ``{"individual": {"total": 25, "disabled": 2}}``."""
        with sql_errors("counting principals"):
            rows = self._db.execute("SELECT type, count(*), sum(disabled) FROM principals "
                                    "GROUP BY type ORDER BY type").fetchall()
        return {kind: {"total": total, "disabled": disabled or 0} for kind, total, disabled in rows}

    def history(self, record_id: str) -> list[ChangeRow]:
        with sql_errors("reading history"):
            return log.history(self._db, record_id)

    def change_rows(self, since: int) -> list[ChangeRow]:
        """Every change row after modseq ``since``, oldest first (uncollapsed)."""
        with sql_errors("reading changes"):
            return log.rows_since(self._db, since)

    def ids_with_dn(self, dn_key: str) -> list[str]:
        with sql_errors("looking up a DN"):
            return log.records_with_dn(self._db, dn_key)

    def runs(self, limit: int = 10) -> list[RunRecord]:
        """The most recent runs, newest first."""
        return self._runs("", [], limit)

    def cursors(self) -> dict[str, Cursor]:
        """Each source's incremental cursor, as the last applied run left it."""
        with sql_errors("reading the sync cursors"):
            return stored_cursors(self._db)

    def sources_in_store(self) -> set[str]:
        with sql_errors("reading the sources"):
            return {row[0] for row in self._db.execute("SELECT DISTINCT source FROM principals")}

    def last_successful_run(self, mode: str | None = None) -> RunRecord | None:
        """The latest run that applied (of ``mode``, full or incremental, if given)."""
        where, params = ("WHERE outcome = 'ok'", []) if mode is None else \
            ("WHERE outcome = 'ok' AND mode = ?", [mode])
        found = self._runs(where, params, 1)
        return found[0] if found else None

    def _runs(self, where: str, params: list, limit: int) -> list[RunRecord]:
        with sql_errors("reading sync runs"):
            rows = self._db.execute(
                "SELECT id, started_at, finished_at, mode, outcome, reason, seen, created, updated, "
                f"destroyed, skipped, warnings, duration, modseq, detail FROM sync_runs {where} "
                "ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
        return [RunRecord(*row[:-1], detail=json.loads(row[-1])) for row in rows]

    # -- what clients see ------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One consistent snapshot for several reads (a WAL read transaction): a sync that
        commits meanwhile is not seen half-way."""
        with sql_errors("starting a read"):
            self._db.conn.execute("BEGIN")
        try:
            yield
        finally:
            with sql_errors("ending a read"):
                self._db.conn.execute("COMMIT")

    def allow_time_limits(self, longest: float) -> None:
        """Make this store's reads obey time_limit (see db.allow_time_limits); for a store
        used only under limits of at most ``longest`` seconds, like the event loop's."""
        allow_time_limits(self._db.conn, longest)
        self._limitable = True

    def time_limit(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Reads inside raise ReadTimeUp once ``seconds`` have passed (for reads run on the
        event loop, which must not hold it long)."""
        if not self._limitable:
            raise RuntimeError("allow_time_limits first")
        return time_limit(self._db.conn, seconds)

    check_time_limit = staticmethod(check_time_limit)  # for work done outside SQLite

    def views(self, ids: list[str]) -> dict[str, Principal]:
        """The principals that exist among ``ids``, with their users' edits applied."""
        own = [c for c in COLUMNS if c not in view.OVERRIDABLE]
        columns = [f"p.{c}" for c in own] + [f"v.{c}" for c in view.OVERRIDABLE]
        with sql_errors("reading principals"):
            rows = self._db.execute(
                f"SELECT {', '.join(columns)} FROM principals p JOIN principal_view v ON v.id = p.id "
                "WHERE p.id IN (SELECT value FROM json_each(?))", [json.dumps(ids)]).fetchall()
        names, found = [*own, *view.OVERRIDABLE], {}
        for row in rows:
            check_time_limit()  # one huge member list takes milliseconds to decode
            found[row[0]] = from_row(dict(zip(names, row, strict=True)))
        return found

    def query(self, condition: Filter | None, keys: tuple[SortKey, ...], include_disabled: bool,
              offset: int = 0, limit: int | None = None) -> list[str]:
        """Ids of the principals matching ``condition``, in ``keys`` order (then id)."""
        with sql_errors("querying principals"):
            return view.query_ids(self._db, condition, keys, _visible(include_disabled), offset, limit)

    def count(self, condition: Filter | None, include_disabled: bool) -> int:
        with sql_errors("counting principals"):
            return view.count(self._db, condition, _visible(include_disabled))

    def window(self, since: int, max_ids: int) -> Window | None:
        """The stretch of history after ``since`` with at most ``max_ids`` changed ids;
        None when it cannot be told (pruned, or a state this database never had)."""
        with sql_errors("reading changes"):
            if not log.can_tell_changes(self._db, log.PRINCIPAL, since):
                return None
            return reconstruct.window(self._db, since, log.current_modseq(self._db), max_ids)

    def changed_since(self, since: int) -> list[str] | None:
        """Every id changed after ``since`` (None when that cannot be told)."""
        with sql_errors("reading changes"):
            if not log.can_tell_changes(self._db, log.PRINCIPAL, since):
                return None
            return reconstruct.changed_since(self._db, since)

    def states_at(self, ids: list[str], modseq: int) -> dict[str, Principal | None]:
        """Each principal as clients saw it right after ``modseq`` (None: did not exist)."""
        with sql_errors("reconstructing principals"):
            return reconstruct.states_at(self._db, ids, modseq)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE) around several reads and writes, e.g. a
        state check, an edit and the new state of one Principal/set."""
        with sql_errors("writing"), write_transaction(self._db):
            yield

    def edit(self, principal_id: str, values: dict[str, str | None], actor: str,
             remote: str = "") -> bool:
        """Lay a user's own edits over their principal (a new state, an audit row per
        field); False when nothing changed. Joins a surrounding ``writing()``."""
        if self._db.conn.in_transaction:
            with sql_errors("saving an edit"):
                return apply_edit(self._db, principal_id, values, actor, remote)
        with sql_errors("saving an edit"), write_transaction(self._db):
            return apply_edit(self._db, principal_id, values, actor, remote)

    def audit(self, principal_id: str) -> list[dict]:
        with sql_errors("reading the audit log"):
            rows = self._db.execute("SELECT at, actor, field, old, new, remote FROM audit_log "
                                    "WHERE principal_id = ? ORDER BY id", [principal_id]).fetchall()
        return [dict(zip(("at", "actor", "field", "old", "new", "remote"), row, strict=True))
                for row in rows]

    def groups_of(self, principal_id: str) -> set[str]:
        """The groups a principal belongs to, directly or through nesting."""
        with sql_errors("reading memberships"):
            rows = self._db.execute("SELECT group_id FROM effective_members WHERE member_id = ?",
                                    [principal_id]).fetchall()
        return {row[0] for row in rows}

    def ids_of_dns(self, dn_keys: list[str]) -> set[str]:
        with sql_errors("looking up DNs"):
            rows = self._db.execute("SELECT id FROM principals WHERE dn_key IN "
                                    "(SELECT value FROM json_each(?))", [json.dumps(dn_keys)]).fetchall()
        return {row[0] for row in rows}

    def ids_of_emails(self, email: str) -> list[str]:
        """Principals with this email, case-insensitively."""
        with sql_errors("looking up emails"):
            rows = self._db.execute("SELECT id FROM principal_view WHERE email_fold = casefold(?)",
                                    [email]).fetchall()
        return [row[0] for row in rows]

    def members_of(self, group_id: str) -> set[str]:
        """The enabled individuals in a group, directly or through nesting."""
        with sql_errors("reading memberships"):
            rows = self._db.execute(
                "SELECT e.member_id FROM effective_members e JOIN principals p ON p.id = e.member_id "
                "WHERE e.group_id = ? AND p.type = 'individual' AND p.disabled = 0", [group_id]).fetchall()
        return {row[0] for row in rows}

    def ids_of_login(self, login: str) -> list[str]:
        """Individuals with this login, case-insensitively (several when logins clash)."""
        with sql_errors("looking up logins"):
            # +type: the login index, never the type index (which matches most rows)
            rows = self._db.execute("SELECT id FROM principal_view WHERE login_fold = casefold(?) "
                                    "AND +type = 'individual' ORDER BY id", [login]).fetchall()
        return [row[0] for row in rows]


def _visible(include_disabled: bool) -> str:
    return "1" if include_disabled else "v.disabled = 0"
