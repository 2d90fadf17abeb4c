"""JMAP's requirements on the HTTP envelope of a request (RFC 8620 §3.1, §3.6.1): the
media type, I-JSON, and the request-level limits, each as the RequestError to answer."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from bridge.jmap.errors import RequestError

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \uD800-\uDFFF, either case


def check_media_type(content_type: str) -> None:
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestError("notJSON", "the Content-Type must be application/json")


def too_large(limit: int) -> RequestError:
    return RequestError("limit", f"the request is larger than maxSizeRequest ({limit} octets)",
                        status=413, limit="maxSizeRequest")


def decode(body: bytes) -> Any:
    """I-JSON (RFC 7493): UTF-8 without lone surrogates, no duplicate member names, no NaN
    or Infinity; nesting deep enough to exhaust the parser is refused too."""
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_members,
                           parse_constant=_no_constant)
        if _SURROGATE_ESCAPE.search(body):  # UTF-8 cannot carry one: only an escape can
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone one fails here
    except (UnicodeError, ValueError) as exc:
        raise RequestError("notJSON", f"the body is not valid I-JSON: {exc}") from None
    except RecursionError:
        raise RequestError("notJSON", "the body is nested too deeply") from None
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class Concurrency:
    """At most ``limit`` API requests in flight per caller (maxConcurrentRequests). Past it
    the answer is 429, not the 400 of the other limits: the condition is transient."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}

    def enter(self, caller: str) -> None:
        with self._lock:
            if self._active.get(caller, 0) >= self._limit:
                raise RequestError("limit", f"more than {self._limit} concurrent requests",
                                   status=429, limit="maxConcurrentRequests")
            self._active[caller] = self._active.get(caller, 0) + 1

    def leave(self, caller: str) -> None:
        with self._lock:
            self._active[caller] -= 1
            if not self._active[caller]:
                del self._active[caller]
