"""The methods this server answers, by name, with the capability each belongs to."""

from bridge.jmap.core import PRINCIPALS, Engine, Method
from bridge.jmap.principal_query import principal_query, principal_query_changes
from bridge.jmap.principals import principal_changes, principal_get, principal_set

engine = Engine({
    "Principal/get": Method(PRINCIPALS, principal_get),
    "Principal/changes": Method(PRINCIPALS, principal_changes),
    "Principal/query": Method(PRINCIPALS, principal_query),
    "Principal/queryChanges": Method(PRINCIPALS, principal_query_changes),
    "Principal/set": Method(PRINCIPALS, principal_set),
})
