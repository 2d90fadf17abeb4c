"""The JMAP request engine (RFC 8620 §3): check the Request object, run its method calls in
order, resolve result references, turn errors into method responses.

Protocol code only: it takes a decoded JSON value and a Context and returns the Response
object, or raises RequestError for the HTTP layer to answer with problem details. Any
unexpected exception in one method becomes ``serverFail`` for that call alone; the rest
of the batch still runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.config import Settings
from bridge.errors import ReadTimeUp
from bridge.jmap.errors import MethodError, RequestError, invalid_arguments
from bridge.jmap.query_cache import QueryCache
from bridge.model import Caller, Principal
from bridge.store import Store

log = logging.getLogger(__name__)

CORE = "urn:ietf:params:jmap:core"
PRINCIPALS = "urn:ietf:params:jmap:principals"
#: the bridge's own capability: group membership on Principal objects (DESIGN §3)
MEMBERSHIP = "https://ldap-jmap-bridge.github.io/jmap/membership"
CAPABILITIES = (CORE, PRINCIPALS, MEMBERSHIP)
ACCOUNT_ID = "directory"


@dataclass
class Context:
    caller: Caller
    store: Store
    settings: Settings
    using: frozenset[str] = frozenset()
    created_ids: dict[str, str] = field(default_factory=dict)
    query_cache: QueryCache | None = None  # recent Principal/query answers, by state
    view_key: str = ""  # view_key(settings), when the caller has it at hand

    def __post_init__(self) -> None:
        if not self.view_key:
            self.view_key = view_key(self.settings)

    def state(self, modseq: int | None = None) -> str:
        """The current state, or the one right after ``modseq``."""
        if modseq is None:
            return self.store.state(self.view_key)
        return self.store.state_at(modseq, self.view_key)

    def parse_state(self, token: str) -> int | None:
        """The modseq of one of our states; None if foreign; invalidArguments if no state."""
        try:
            return self.store.parse_state(token, self.view_key)
        except ValueError:
            raise invalid_arguments(f"{token!r} is not a state of this server") from None

    def check_time(self) -> None:
        """ReadTimeUp if this request runs under a time limit that has passed (between calls,
        and in loops that do much in Python)."""
        if self.store is not None:
            self.store.check_time_limit()

    def visible(self, principal: Principal | None) -> bool:
        """Whether clients see a principal: it exists and is not disabled (unless shown)."""
        return principal is not None and (self.settings.jmap.show_disabled or not principal.disabled)

    def account_capabilities(self) -> dict[str, dict]:
        """The directory account's capabilities for this caller (RFC 9670 §1.5)."""
        return {PRINCIPALS: {"currentUserPrincipalId": self.caller.principal_id}, MEMBERSHIP: {}}

    def check_account(self, account_id: str, capability: str) -> None:
        if account_id != ACCOUNT_ID:
            raise MethodError("accountNotFound", f"no account {account_id!r}")
        if capability not in self.account_capabilities():
            raise MethodError("accountNotSupportedByMethod")


def view_key(settings: Settings) -> str:
    """A short name for the settings that shape answers (visibility, accounts): part of
    every state, so changing them makes older states foreign to clients."""
    jmap = settings.jmap
    shape = json.dumps([jmap.show_disabled, jmap.account_id_template, jmap.accounts_visible,
                        sorted(jmap.account_capabilities)])
    return hashlib.sha256(shape.encode()).hexdigest()[:6]


MethodFunction = Callable[[Any, Context], dict]


@dataclass(frozen=True)
class Method:
    capability: str
    run: MethodFunction
    quick: bool = False  # reads by index, in well under a millisecond for ordinary arguments


class Engine:
    """Dispatches the method calls of one Request object."""

    def __init__(self, methods: dict[str, Method]) -> None:
        self.methods = {"Core/echo": Method(CORE, lambda args, ctx: args, quick=True), **methods}

    def quick(self, request: Any) -> bool:
        """Whether every call of a request is a quick read (worth trying on the event loop
        under a time limit); a request that is not even well-formed is not."""
        calls = request.get("methodCalls") if isinstance(request, dict) else None
        return isinstance(calls, list) and all(
            _is_invocation(call) and call[0] in self.methods and self.methods[call[0]].quick
            for call in calls)

    def handle(self, request: Any, context: Context, session_state: str) -> dict:
        using, calls, created_ids = _check_request(request, context.settings.jmap.max_calls_in_request)
        context.using = frozenset(using)
        context.created_ids = dict(created_ids or {})
        responses: list[list] = []
        for name, arguments, call_id in calls:
            responses.append(self._call(name, arguments, call_id, context, responses))
        response: dict[str, Any] = {"methodResponses": responses, "sessionState": session_state}
        if created_ids is not None:
            response["createdIds"] = context.created_ids
        return response

    def _call(self, name: str, arguments: dict, call_id: str, context: Context,
              earlier: list[list]) -> list:
        method = self.methods.get(name)
        try:
            context.check_time()
            if method is None or method.capability not in context.using | {CORE}:
                raise MethodError("unknownMethod", f"{name} is not a method of the capabilities in use")
            result = method.run(resolve_references(arguments, earlier), context)
            return [name, result, call_id]
        except MethodError as error:
            return ["error", error.response(), call_id]
        except ReadTimeUp:
            raise  # the whole request runs again where it may take its time
        except Exception:  # one failing call must not fail the batch (RFC 8620 §3.6.2)
            log.exception("%s failed for %s", name, context.caller.username)
            return ["error", MethodError("serverFail", "internal error; it has been logged")
                    .response(), call_id]


def _check_request(request: Any, max_calls: int) -> tuple[list[str], list, dict | None]:
    if not isinstance(request, dict):
        raise RequestError("notRequest", "the body is not a JMAP Request object")
    using, calls = request.get("using"), request.get("methodCalls")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        raise RequestError("notRequest", "using must be an array of capability strings")
    unknown = [u for u in using if u not in CAPABILITIES]
    if unknown:
        raise RequestError("unknownCapability", f"unknown capability {unknown[0]}")
    if not isinstance(calls, list) or not all(_is_invocation(c) for c in calls):
        raise RequestError("notRequest", "methodCalls must be an array of [name, arguments, callId]")
    if len(calls) > max_calls:
        raise RequestError("limit", f"more than {max_calls} method calls", limit="maxCallsInRequest")
    created_ids = request.get("createdIds")
    if created_ids is not None and not (isinstance(created_ids, dict)
                                        and all(isinstance(v, str) for v in created_ids.values())):
        raise RequestError("notRequest", "createdIds must be an object of ids")
    return using, calls, created_ids


def _is_invocation(call: Any) -> bool:
    return (isinstance(call, list) and len(call) == 3 and isinstance(call[0], str)
            and isinstance(call[1], dict) and isinstance(call[2], str))


# -- result references (RFC 8620 §3.7) ----------------------------------------------------


def resolve_references(arguments: dict, earlier: list[list]) -> dict:
    """Replace every ``#name`` argument by the value its ResultReference points at."""
    resolved = {}
    for key, value in arguments.items():
        if not key.startswith("#"):
            resolved[key] = value
            continue
        plain = key[1:]
        if plain in arguments:
            raise invalid_arguments(f"{plain} is given both plainly and as a reference")
        resolved[plain] = _follow(value, earlier)
    return resolved


def _follow(reference: Any, earlier: list[list]) -> Any:
    if not (isinstance(reference, dict) and set(reference) == {"resultOf", "name", "path"}
            and all(isinstance(v, str) for v in reference.values())):
        raise MethodError("invalidResultReference", "a ResultReference has resultOf, name and path")
    source = next((r for r in earlier if r[2] == reference["resultOf"]), None)
    if source is None:
        raise MethodError("invalidResultReference", f"no earlier call {reference['resultOf']!r}")
    if source[0] != reference["name"]:
        raise MethodError("invalidResultReference",
                          f"call {reference['resultOf']!r} answered {source[0]}, not {reference['name']}")
    try:
        return evaluate_pointer(source[1], reference["path"])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise MethodError("invalidResultReference", f"path {reference['path']!r}: {exc}") from None


def evaluate_pointer(document: Any, path: str) -> Any:
    """RFC 6901 JSON Pointer with JMAP's ``*``: applied to an array, the rest of the path
    runs on every element and the results are collected (arrays flattened one level)."""
    if path == "":
        return document
    if not path.startswith("/"):
        raise ValueError("a pointer starts with '/'")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]
    return _walk(document, tokens)


def _walk(value: Any, tokens: list[str]) -> Any:
    if not tokens:
        return value
    token, rest = tokens[0], tokens[1:]
    if isinstance(value, list):
        if token == "*":
            collected: list = []
            for item in value:
                found = _walk(item, rest)
                collected.extend(found) if isinstance(found, list) else collected.append(found)
            return collected
        if not token.isdigit() or (token != "0" and token.startswith("0")):
            raise ValueError(f"{token!r} is not an array index")
        return _walk(value[int(token)], rest)
    if isinstance(value, dict):
        return _walk(value[token], rest)
    raise TypeError(f"cannot descend into {type(value).__name__} with {token!r}")
