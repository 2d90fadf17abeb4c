"""The JMAP Session object (RFC 8620 §2) for one caller, and its ``state``: a hash of
everything else in it, so it changes exactly when the session content changes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bridge.jmap.core import ACCOUNT_ID, CORE, MEMBERSHIP, PRINCIPALS, Context
from bridge.query import COLLATIONS

API_PATH = "/jmap"
EVENT_SOURCE_PATH = "/jmap/eventsource"
DOWNLOAD_PATH = "/jmap/download"
UPLOAD_PATH = "/jmap/upload"


def session(context: Context) -> dict[str, Any]:
    jmap, base = context.settings.jmap, context.settings.server.public_url
    body: dict[str, Any] = {
        "capabilities": {
            CORE: {
                # the bridge holds no blobs: nothing can be uploaded
                "maxSizeUpload": 0,
                "maxConcurrentUpload": 1,
                "maxSizeRequest": jmap.max_size_request,
                "maxConcurrentRequests": jmap.max_concurrent_requests,
                "maxCallsInRequest": jmap.max_calls_in_request,
                "maxObjectsInGet": jmap.max_objects_in_get,
                "maxObjectsInSet": jmap.max_objects_in_set,
                "collationAlgorithms": list(COLLATIONS),
            },
            PRINCIPALS: {},
            MEMBERSHIP: {},
        },
        "accounts": {
            ACCOUNT_ID: {
                "name": "Directory",
                "isPersonal": False,
                "isReadOnly": False,
                "accountCapabilities": context.account_capabilities(),
            },
        },
        "primaryAccounts": {PRINCIPALS: ACCOUNT_ID, MEMBERSHIP: ACCOUNT_ID},
        "username": context.caller.username,
        "apiUrl": base + API_PATH,
        "downloadUrl": base + DOWNLOAD_PATH + "/{accountId}/{blobId}/{name}?type={type}",
        "uploadUrl": base + UPLOAD_PATH + "/{accountId}/",
        "eventSourceUrl": base + EVENT_SOURCE_PATH + "?types={types}&closeafter={closeafter}&ping={ping}",
    }
    body["state"] = _state_of(body)
    return body


def session_state(context: Context) -> str:
    return session(context)["state"]


def _state_of(body: dict[str, Any]) -> str:
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
