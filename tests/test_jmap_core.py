"""RFC 8620 §3: the request envelope, request-level problems, method-level errors, result
references — through the real app (Starlette TestClient) and, for engine internals that no
Principal method reaches, the engine itself."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.jmap import errors as jmap_errors
from bridge.jmap.core import Context, Engine, Method, evaluate_pointer
from bridge.model import Caller
from tests.support.jmap import ACCOUNT, CORE, MEMBERSHIP, PRINCIPALS, USING

# RFC 8620 §3.6.1 and §3.6.2, RFC 9670 §2-3: every error type a server may send
RFC_REQUEST_ERRORS = {"unknownCapability", "notJSON", "notRequest", "limit"}
RFC_METHOD_ERRORS = {"serverUnavailable", "serverFail", "serverPartialFail", "unknownMethod",
                     "invalidArguments", "invalidResultReference", "forbidden", "accountNotFound",
                     "accountNotSupportedByMethod", "accountReadOnly", "requestTooLarge",
                     "stateMismatch", "cannotCalculateChanges", "anchorNotFound", "unsupportedSort",
                     "unsupportedFilter", "tooManyChanges", "fromAccountNotFound",
                     "fromAccountNotSupportedByMethod"}
RFC_SET_ERRORS = {"forbidden", "overQuota", "tooLarge", "rateLimit", "notFound", "invalidPatch",
                  "willDestroy", "invalidProperties", "singleton", "alreadyExists"}


def test_every_error_type_is_spelled_as_in_the_rfcs():
    assert set(jmap_errors.REQUEST_ERRORS) <= RFC_REQUEST_ERRORS
    assert jmap_errors.METHOD_ERRORS <= RFC_METHOD_ERRORS
    assert jmap_errors.SET_ERRORS <= RFC_SET_ERRORS
    with pytest.raises(ValueError):
        jmap_errors.MethodError("notJson")  # the misspelling two public libraries shipped


def problem_of(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:ietf:params:jmap:error:{kind}" and body["status"] == status
    return body


# -- request-level problems (RFC 8620 §3.6.1; DESIGN §5 status codes) ----------------------


def test_rfc8620_3_6_1_wrong_content_type_is_not_json(alice):
    response = alice.client.post("/jmap", content=b'{"using": [], "methodCalls": []}',
                                 headers={**alice.headers, "Content-Type": "text/plain"})
    problem_of(response, 400, "notJSON")


@pytest.mark.parametrize("body", [b"{not json", b'{"using": [], "using": [], "methodCalls": []}',
                                  b'{"using": [], "methodCalls": [], "x": NaN}', b"\xff\xfe"])
def test_rfc8620_3_6_1_invalid_i_json_is_not_json(alice, body):
    response = alice.client.post("/jmap", content=body,
                                 headers={**alice.headers, "Content-Type": "application/json"})
    problem_of(response, 400, "notJSON")


@pytest.mark.parametrize("body", [
    [], {"using": "core", "methodCalls": []}, {"using": [CORE]},
    {"using": [CORE], "methodCalls": [["Core/echo", {}]]},
    {"using": [CORE], "methodCalls": [["Core/echo", [], "0"]]},
    {"using": [CORE], "methodCalls": [], "createdIds": []},
])
def test_rfc8620_3_6_1_valid_json_that_is_no_request_is_not_request(alice, body):
    problem_of(alice.post(body), 400, "notRequest")


def test_rfc8620_3_6_1_unknown_capability(alice):
    body = problem_of(alice.post({"using": [CORE, "urn:example:nope"], "methodCalls": []}),
                      400, "unknownCapability")
    assert "urn:example:nope" in body["detail"]


def test_max_calls_in_request_is_a_limit_problem_naming_the_limit(alice):
    calls = [["Core/echo", {}, str(n)] for n in range(17)]
    body = problem_of(alice.post({"using": [CORE], "methodCalls": calls}), 400, "limit")
    assert body["limit"] == "maxCallsInRequest"


def test_max_size_request_is_refused_from_content_length(alice):
    big = json.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"x": "a" * 10_000_001}, "0"]]})
    body = problem_of(alice.client.post("/jmap", content=big.encode(), headers={
        **alice.headers, "Content-Type": "application/json"}), 413, "limit")
    assert body["limit"] == "maxSizeRequest"


def test_max_size_request_is_enforced_while_reading_a_body_of_unknown_length(client, alice):
    """Straight at the ASGI app, since TestClient buffers a body before sending it: 50 MB are
    on offer without a Content-Length, and reading must stop soon after 10 MB."""
    pulled, sent = [], []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b" " * 1_000_000, "more_body": len(pulled) < 50}

    async def send(message):
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in
               {**alice.headers, "Content-Type": "application/json"}.items()]
    scope = {"type": "http", "method": "POST", "path": "/jmap", "raw_path": b"/jmap",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("testserver", 80), "scheme": "http", "http_version": "1.1",
             "root_path": "", "asgi": {"version": "3.0"}}
    asyncio.run(client.app(scope, receive, send))

    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["limit"] == "maxSizeRequest"
    assert len(pulled) <= 12


def test_using_without_core_is_accepted(alice):
    responses = alice.call(("Principal/get", {"accountId": ACCOUNT, "ids": []}), using=[PRINCIPALS])
    assert responses[0][0] == "Principal/get"


# -- the response envelope ------------------------------------------------------------------


def test_rfc8620_4_core_echo_returns_its_arguments(alice):
    """The RFC's own example: ["Core/echo", {"hello": true, "high": 5}, "b3ff"]."""
    call = ["Core/echo", {"hello": True, "high": 5}, "b3ff"]
    response = alice.post({"using": [CORE], "methodCalls": [call]})
    assert response.json()["methodResponses"] == [call]


def test_session_state_is_in_every_response_and_created_ids_come_back_when_sent(alice):
    session_state = alice.session()["state"]
    plain = alice.post({"using": USING, "methodCalls": []}).json()
    with_ids = alice.post({"using": USING, "methodCalls": [], "createdIds": {"k1": "p1"}}).json()

    assert plain == {"methodResponses": [], "sessionState": session_state}
    assert with_ids["createdIds"] == {"k1": "p1"}


def test_calls_run_in_order_and_keep_their_call_ids(alice):
    responses = alice.call(("Core/echo", {"n": 1}), ("Core/echo", {"n": 2}), ("Core/echo", {"n": 3}))
    assert [(r[1]["n"], r[2]) for r in responses] == [(1, "0"), (2, "1"), (3, "2")]


# -- method-level errors (RFC 8620 §3.6.2) ------------------------------------------------


def test_an_unknown_method_is_unknown_method_and_the_batch_goes_on(alice):
    responses = alice.call(("Principal/frobnicate", {}), ("Core/echo", {"ok": True}))
    assert responses[0][:1] == ["error"] and responses[0][1]["type"] == "unknownMethod"
    assert responses[1] == ["Core/echo", {"ok": True}, "1"]


def test_a_method_whose_capability_is_not_in_using_is_unknown_method(alice):
    error = alice.error("Principal/get", using=[CORE], ids=[])
    assert error["type"] == "unknownMethod"


@pytest.mark.parametrize("arguments, fragment", [
    ({"ids": [], "bogus": 1}, "unknown argument 'bogus'"),
    ({"ids": "p1"}, "ids must be a list of Ids"),
    ({"ids": ["not an id!"]}, "ids must be a list of Ids"),
    ({"ids": [], "properties": [1]}, "properties must be a list of strings"),
])
def test_invalid_arguments_name_the_argument(alice, arguments, fragment):
    error = alice.error("Principal/get", **arguments)
    assert error["type"] == "invalidArguments" and fragment in error["description"]


def test_an_unknown_account_is_account_not_found(alice):
    (response,) = alice.call(("Principal/get", {"accountId": "nope", "ids": []}))
    assert response[1]["type"] == "accountNotFound"


def test_account_not_supported_by_method():
    engine = Engine({"Example/get": Method("urn:example:other", lambda args, ctx: (
        ctx.check_account(args["accountId"], "urn:example:other") or {}))})
    context = Context(Caller("u"), None, _jmap_settings(), using=frozenset())
    response = engine.handle({"using": [CORE, MEMBERSHIP], "methodCalls": []}, context, "s")
    assert response["methodResponses"] == []
    engine.methods["Example/get"] = Method(MEMBERSHIP, engine.methods["Example/get"].run)
    response = engine.handle({"using": [CORE, MEMBERSHIP], "methodCalls": [
        ["Example/get", {"accountId": ACCOUNT}, "0"]]}, context, "s")
    assert response["methodResponses"][0][1]["type"] == "accountNotSupportedByMethod"


def test_an_unexpected_exception_is_server_fail_for_that_call_only(caplog):
    def broken(args, ctx):
        raise ZeroDivisionError("boom")

    engine = Engine({"Example/broken": Method(CORE, broken)})
    context = Context(Caller("u"), None, _jmap_settings())
    response = engine.handle({"using": [CORE], "methodCalls": [
        ["Example/broken", {}, "a"], ["Core/echo", {"still": "here"}, "b"]]}, context, "s")

    assert response["methodResponses"][0] == ["error", {"type": "serverFail", "description":
                                                        "internal error; it has been logged"}, "a"]
    assert response["methodResponses"][1] == ["Core/echo", {"still": "here"}, "b"]
    assert "ZeroDivisionError" in caplog.text


def _jmap_settings():
    from bridge import config
    return config.load(None, environ={})


# -- result references (RFC 8620 §3.7) ----------------------------------------------------


def test_rfc8620_3_7_query_then_get_by_reference(alice):
    responses = alice.call(
        ("Principal/query", {"accountId": ACCOUNT, "filter": {"type": "location"},
                             "sort": [{"property": "name"}]}),
        ("Principal/get", {"accountId": ACCOUNT, "properties": ["name"],
                           "#ids": {"resultOf": "0", "name": "Principal/query", "path": "/ids"}}))
    assert [p["name"] for p in responses[1][1]["list"]] == ["Boardroom", "Room 4B"]


def test_star_in_a_path_collects_and_flattens(alice):
    using = [*USING, MEMBERSHIP]
    responses = alice.call(
        ("Principal/query", {"accountId": ACCOUNT, "filter": {"type": "group"}}),
        ("Principal/get", {"accountId": ACCOUNT, "properties": ["members"],
                           "#ids": {"resultOf": "0", "name": "Principal/query", "path": "/ids"}}),
        ("Principal/get", {"accountId": ACCOUNT, "properties": ["name"],
                           "#ids": {"resultOf": "1", "name": "Principal/get", "path": "/list/*/members"}}),
        using=using)
    members = [m for p in responses[1][1]["list"] for m in p["members"]]
    assert sorted(p["id"] for p in responses[2][1]["list"]) == sorted(set(members))
    assert responses[2][1]["notFound"] == []


@pytest.mark.parametrize("reference, fragment", [
    ({"resultOf": "9", "name": "Principal/query", "path": "/ids"}, "no earlier call"),
    ({"resultOf": "0", "name": "Principal/get", "path": "/ids"}, "answered Principal/query"),
    ({"resultOf": "0", "name": "Principal/query", "path": "/nope"}, "path '/nope'"),
    ({"resultOf": "0", "name": "Principal/query"}, "resultOf, name and path"),
])
def test_a_reference_that_does_not_resolve_is_invalid_result_reference(alice, reference, fragment):
    responses = alice.call(("Principal/query", {"accountId": ACCOUNT}),
                           ("Principal/get", {"accountId": ACCOUNT, "#ids": reference}))
    assert responses[1][1]["type"] == "invalidResultReference"
    assert fragment in responses[1][1]["description"]


def test_a_reference_to_an_error_response_does_not_resolve(alice):
    responses = alice.call(("Principal/query", {"accountId": "nope"}),
                           ("Principal/get", {"accountId": ACCOUNT, "#ids": {
                               "resultOf": "0", "name": "Principal/query", "path": "/ids"}}))
    assert responses[1][1]["type"] == "invalidResultReference"


def test_an_argument_given_plainly_and_by_reference_is_invalid_arguments(alice):
    responses = alice.call(("Principal/query", {"accountId": ACCOUNT}),
                           ("Principal/get", {"accountId": ACCOUNT, "ids": [], "#ids": {
                               "resultOf": "0", "name": "Principal/query", "path": "/ids"}}))
    assert responses[1][1]["type"] == "invalidArguments"


@pytest.mark.parametrize("path, value", [
    ("", {"a": [{"b": [1, 2]}, {"b": [3]}], "c~d/e": 4}),
    ("/a/0/b/1", 2),
    ("/a/*/b", [1, 2, 3]),
    ("/c~0d~1e", 4),
])
def test_rfc6901_pointers_with_the_jmap_star(path, value):
    document = {"a": [{"b": [1, 2]}, {"b": [3]}], "c~d/e": 4}
    assert evaluate_pointer(document, path) == value


@pytest.mark.parametrize("path", ["a", "/a/01", "/a/9", "/a/x", "/c~0d~1e/deeper"])
def test_pointers_that_do_not_resolve(path):
    with pytest.raises((KeyError, IndexError, ValueError, TypeError)):
        evaluate_pointer({"a": [1], "c~d/e": 4}, path)


@pytest.mark.parametrize("body", [b'{"using": ["\\ud800"], "methodCalls": []}', b"[" * 100_000])
def test_lone_surrogates_and_absurd_nesting_are_not_json(alice, body):
    response = alice.client.post("/jmap", content=body,
                                 headers={**alice.headers, "Content-Type": "application/json"})
    problem_of(response, 400, "notJSON")


def test_max_concurrent_requests_per_caller():
    from bridge.jmap.envelope import Concurrency
    from bridge.jmap.errors import RequestError

    limit = Concurrency(2)
    limit.enter("a")
    limit.enter("a")
    limit.enter("b")
    with pytest.raises(RequestError) as refused:
        limit.enter("a")
    assert (refused.value.status, refused.value.limit) == (429, "maxConcurrentRequests")
    limit.leave("a")
    limit.enter("a")  # a slot came free
