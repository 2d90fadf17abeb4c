"""The methods this server answers, by name, with the capability each belongs to; /get and
/query are quick (indexed reads), /changes and /queryChanges rebuild past states in Python,
/set writes."""

from bridge.jmap.core import PRINCIPALS, Engine, Method
from bridge.jmap.principal_query import principal_query, principal_query_changes
from bridge.jmap.principals import principal_changes, principal_get, principal_set
from bridge.jmap.share_notifications import (
    notification_changes,
    notification_get,
    notification_query,
    notification_query_changes,
    notification_set,
)

engine = Engine({
    "Principal/get": Method(PRINCIPALS, principal_get, quick=True),
    "Principal/changes": Method(PRINCIPALS, principal_changes),
    "Principal/query": Method(PRINCIPALS, principal_query, quick=True),
    "Principal/queryChanges": Method(PRINCIPALS, principal_query_changes),
    "Principal/set": Method(PRINCIPALS, principal_set),
    "ShareNotification/get": Method(PRINCIPALS, notification_get, quick=True),
    "ShareNotification/changes": Method(PRINCIPALS, notification_changes),
    "ShareNotification/query": Method(PRINCIPALS, notification_query, quick=True),
    "ShareNotification/queryChanges": Method(PRINCIPALS, notification_query_changes),
    "ShareNotification/set": Method(PRINCIPALS, notification_set),
})
