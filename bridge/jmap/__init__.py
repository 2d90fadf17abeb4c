"""JMAP protocol code: the only place wire names (camelCase, RFC error strings) live.

``Service`` is what the HTTP layer talks to: sessions, requests, readiness. Nothing here
knows Starlette; SQL stays in bridge.store.
"""

from bridge.jmap.service import Service

__all__ = ["Service"]
