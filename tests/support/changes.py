"""What changed between a modseq and now, from the store's primitives (window and
states_at), classified by existence as RFC 8620 §5.2 collapses it."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.store import Store


@dataclass(frozen=True)
class Changes:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    destroyed: tuple[str, ...]


def changes_since(store: Store, since: int) -> Changes | None:
    window = store.window(since, 10**9)
    if window is None:
        return None
    ids = list(window.ids)
    before, after = store.states_at(ids, since), store.states_at(ids, window.until)
    return Changes(
        created=tuple(i for i in ids if before[i] is None and after[i] is not None),
        updated=tuple(i for i in ids if before[i] is not None and after[i] is not None),
        destroyed=tuple(i for i in ids if before[i] is not None and after[i] is None))
