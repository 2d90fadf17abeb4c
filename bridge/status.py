"""Read-only views of the store for operators: `bridge status` and `bridge history`."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from bridge.config import Settings
from bridge.dn import InvalidDN, dn_key
from bridge.errors import UsageError
from bridge.mapper import principal_id
from bridge.model import Principal
from bridge.store import ChangeRow, RunRecord, Store

_PRINCIPAL_ID = re.compile(r"^p[0-9a-f]{32}$")


@dataclass
class Status:
    path: str
    exists: bool
    epoch: str
    state: str
    modseq: int
    pruned_through: int
    counts: dict[str, dict[str, int]]
    runs: list[RunRecord]
    last_ok: RunRecord | None
    last_ok_age: float | None  # seconds since the last successful run finished
    stale: bool  # no successful run within two schedule intervals
    readers: dict[str, str] = field(default_factory=dict)  # source → how its changes are read
    last_full: RunRecord | None = None  # the last successful full run


def status(settings: Settings, runs: int = 10) -> Status:
    with Store.open(settings.store.path, readonly=True) as store:
        last_ok = store.last_successful_run()
        age = _age(last_ok.finished_at) if last_ok else None
        return Status(path=settings.store.path, exists=not store.ephemeral, epoch=store.epoch,
                      state=store.state(),
                      modseq=store.modseq(), pruned_through=store.pruned_through(),
                      counts=store.counts(), runs=store.runs(runs), last_ok=last_ok,
                      last_ok_age=age, stale=age is None or age > 2 * settings.schedule.interval,
                      readers={name: cursor.reader for name, cursor in sorted(store.cursors().items())},
                      last_full=store.last_successful_run(mode="full"))


def _age(timestamp: str) -> float:
    return time.time() - datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@dataclass
class PrincipalHistory:
    id: str
    current: Principal | None
    rows: list[ChangeRow] = field(default_factory=list)


def history(settings: Settings, reference: str) -> list[PrincipalHistory]:
    """The change rows of the principal(s) named by an id, an entryUUID/objectGUID in UUID
    form, or a DN (a DN may have belonged to several entries over time)."""
    with Store.open(settings.store.path, readonly=True) as store:
        return [PrincipalHistory(pid, store.principal(pid), store.history(pid))
                for pid in _ids_for(store, reference.strip())]


def _ids_for(store: Store, reference: str) -> list[str]:
    if _PRINCIPAL_ID.match(reference):
        return [reference]
    try:
        return [principal_id(uuid.UUID(reference))]
    except ValueError:
        pass
    try:
        key = dn_key(reference)
    except InvalidDN:
        raise UsageError(f"{reference!r} is neither a principal id, a UUID nor a DN") from None
    return store.ids_with_dn(key)
