"""JMAP error types, spelled exactly as RFC 8620 and RFC 9670 spell them, and the exceptions
that carry them out of the protocol code.

Request-level problems become RFC 7807 problem details (``urn:ietf:params:jmap:error:`` +
type, with an HTTP status); method-level errors become ``["error", {...}, callId]``;
SetErrors stay inside a /set response. Constructing any of them with a type not listed
here is a programming error (ValueError), so a misspelt type cannot reach a client.
"""

from __future__ import annotations

from typing import Any

PROBLEM_PREFIX = "urn:ietf:params:jmap:error:"

#: RFC 8620 §3.6.1 request-level errors → the HTTP status the bridge answers with
REQUEST_ERRORS = {"unknownCapability": 400, "notJSON": 400, "notRequest": 400, "limit": 400}

#: RFC 8620 §3.6.2 (any method) and the per-method errors of §5 used by Principal methods
METHOD_ERRORS = frozenset({
    "serverUnavailable", "serverFail", "serverPartialFail", "unknownMethod", "invalidArguments",
    "invalidResultReference", "forbidden", "accountNotFound", "accountNotSupportedByMethod",
    "accountReadOnly", "requestTooLarge", "stateMismatch", "cannotCalculateChanges",
    "anchorNotFound", "unsupportedSort", "unsupportedFilter", "tooManyChanges",
})

#: RFC 8620 §5.3 SetError types
SET_ERRORS = frozenset({
    "forbidden", "overQuota", "tooLarge", "rateLimit", "notFound", "invalidPatch", "willDestroy",
    "invalidProperties", "singleton",
})


class RequestError(Exception):
    """The whole request is refused: answered with problem details and an HTTP status."""

    def __init__(self, kind: str, detail: str, *, status: int | None = None, limit: str = "") -> None:
        if kind not in REQUEST_ERRORS:
            raise ValueError(f"not a JMAP request-level error: {kind}")
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status or REQUEST_ERRORS[kind]
        self.limit = limit

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": PROBLEM_PREFIX + self.kind, "status": self.status,
                                "detail": self.detail}
        if self.limit:
            body["limit"] = self.limit
        return body


class MethodError(Exception):
    """One method call fails; the rest of the request goes on."""

    def __init__(self, kind: str, description: str = "", **extra: Any) -> None:
        if kind not in METHOD_ERRORS:
            raise ValueError(f"not a JMAP method-level error: {kind}")
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.extra = extra

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind, **self.extra}
        if self.description:
            body["description"] = self.description
        return body


def set_error(kind: str, description: str = "", **extra: Any) -> dict[str, Any]:
    """A SetError object for notCreated / notUpdated / notDestroyed."""
    if kind not in SET_ERRORS:
        raise ValueError(f"not a JMAP SetError type: {kind}")
    return {"type": kind, "description": description or None, **extra}


def invalid_arguments(description: str) -> MethodError:
    return MethodError("invalidArguments", description)
