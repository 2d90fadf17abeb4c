"""JMAP protocol code: the only place wire names (camelCase, RFC error strings) live.

``engine`` dispatches the methods of RFC 9670's Principal type; ``session`` builds the
Session object. Nothing here knows Starlette or SQL.
"""

from bridge.jmap.core import PRINCIPALS, Context, Engine, Method
from bridge.jmap.principal_query import principal_query, principal_query_changes
from bridge.jmap.principals import principal_changes, principal_get, principal_set

engine = Engine({
    "Principal/get": Method(PRINCIPALS, principal_get),
    "Principal/changes": Method(PRINCIPALS, principal_changes),
    "Principal/query": Method(PRINCIPALS, principal_query),
    "Principal/queryChanges": Method(PRINCIPALS, principal_query_changes),
    "Principal/set": Method(PRINCIPALS, principal_set),
})

__all__ = ["Context", "engine"]
