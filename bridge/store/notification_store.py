"""The Store's ShareNotification methods: one recipient's notifications, their state
tokens, changes since a state, and retention (see notifications.py for the rows).

A recipient's state token names the type and the recipient (``<epoch>[.<view>].n<tag>-<modseq>``,
the tag a hash of the recipient), so a Principal state, or another user's, is a foreign
token here: cannotCalculateChanges, never someone else's changes.
"""

from __future__ import annotations

import hashlib
import time

from bridge.store import changes as log
from bridge.store import notifications as notes
from bridge.store import reconstruct
from bridge.store.db import sql_errors, utc_now, write_transaction
from bridge.store.notifications import Notification, Retention
from bridge.store.reconstruct import Window


class NotificationStore:
    """Mixed into Store, whose connection (``_db``) and token prefix it uses."""

    def notification_state(self, recipient: str, view: str = "", modseq: int | None = None) -> str:
        """The recipient's current state token, or the one right after ``modseq``."""
        if modseq is None:
            with sql_errors("reading the state"):
                modseq = log.current_modseq(self._db, notes.scope(recipient))
        return log.format_state(self._notification_prefix(recipient, view), modseq)

    def parse_notification_state(self, recipient: str, token: str, view: str = "") -> int | None:
        """The modseq of one of the recipient's tokens; None for any other token (another
        user's, a Principal state, another database); ValueError when not a state."""
        return log.parse_state(self._notification_prefix(recipient, view), token)

    def _notification_prefix(self, recipient: str, view: str) -> str:
        tag = hashlib.sha256(recipient.encode()).hexdigest()[:12]
        return f"{self._prefix(view)}.n{tag}"

    def notifications_of(self, recipient: str) -> list[Notification]:
        with sql_errors("reading notifications"):
            return notes.of_recipient(self._db, recipient)

    def notifications_by_ids(self, recipient: str, ids: list[str]) -> dict[str, Notification]:
        with sql_errors("reading notifications"):
            return notes.by_ids(self._db, recipient, ids)

    def add_notifications(self, items: list[tuple[str, dict]], retention: Retention,
                          now: float | None = None) -> list[tuple[str | None, list[str]]]:
        """Store a batch, one transaction: for each (recipient, fields) the new id (None if
        coalescing cancelled it) and the ids retention destroyed to make room."""
        moment = time.time() if now is None else now
        with sql_errors("storing notifications"), write_transaction(self._db):
            return [notes.add(self._db, recipient, fields, retention, moment) for recipient, fields in items]

    def destroy_notifications(self, notifications: list[Notification]) -> None:
        """Within ``writing()``, or on its own."""
        with sql_errors("destroying notifications"):
            if self._db.conn.in_transaction:
                notes.destroy(self._db, notifications)
                return
            with write_transaction(self._db):
                notes.destroy(self._db, notifications)

    def expire_notifications(self, older_than: float) -> int:
        """Destroy every notification older than ``older_than`` seconds; how many."""
        with sql_errors("expiring notifications"), write_transaction(self._db):
            return notes.expire(self._db, utc_now(time.time() - older_than))

    def notification_window(self, recipient: str, since: int, max_ids: int) -> Window | None:
        """Like Store.window(), for one recipient's notifications."""
        scope = notes.scope(recipient)
        with sql_errors("reading notification changes"):
            if not log.can_tell_changes(self._db, scope, since):
                return None
            return reconstruct.window(self._db, since, log.current_modseq(self._db, scope), max_ids,
                                      (notes.TYPE, scope))

    def notification_changes(self, recipient: str, since: int,
                             until: int | None = None) -> list[tuple[str, str, str, dict]] | None:
        """(id, first kind, last kind, record) changed in (since, until] for one recipient;
        None when that cannot be told (pruned history, or not a state of theirs)."""
        with sql_errors("reading notification changes"):
            if not log.can_tell_changes(self._db, notes.scope(recipient), since):
                return None
            return notes.changed(self._db, recipient, since, until)

    def notifications_as_of(self, recipient: str, since: int) -> list[Notification]:
        with sql_errors("reading notifications"):
            return notes.as_of(self._db, recipient, since)
