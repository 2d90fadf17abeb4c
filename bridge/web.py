"""The HTTP layer: Starlette routes that authenticate, limit, parse and serialise, then hand
plain values to bridge.jmap. It only translates; one handler per kind of failure turns
it into RFC 7807 problem details.

    GET  /.well-known/jmap, /jmap/session   the Session object
    POST /jmap                              the API (maxSizeRequest enforced while reading)
    POST /notify                            share events from groupware (token, notify scope)
    GET  /jmap/eventsource                  push: state events as the caller's states move
    GET  /healthz, /readyz                  liveness, and readiness (store + a good sync)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bridge.auth import Authenticator, AuthFailure
from bridge.config import Settings
from bridge.errors import StoreError
from bridge.jmap import Service, push
from bridge.jmap.envelope import Concurrency, check_media_type, decode, too_large
from bridge.jmap.errors import RequestError
from bridge.jmap.ingest import events_of, ingest
from bridge.model import Caller

log = logging.getLogger(__name__)

_NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate"}
_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


class Bridge:
    """The endpoints, sharing settings, the JMAP service and the authenticator."""

    def __init__(self, settings: Settings, authenticator: Authenticator | None = None) -> None:
        self.settings = settings
        self.jmap = Service(settings)
        self.authenticator = authenticator or Authenticator(settings, self.jmap.store)
        self.concurrency = Concurrency(settings.jmap.max_concurrent_requests)
        self.watcher = push.Watcher(self.jmap.last_change)
        self.lock = threading.Lock()
        self.streams: dict[str, int] = {}
        self.opening = False  # the loop's Store is being opened

    async def caller(self, request: Request, scope: str = "jmap") -> Caller:
        remote = request.client.host if request.client else ""
        authorization = request.headers.get("authorization")
        if self.authenticator.may_block(authorization):
            caller = await run_in_threadpool(self.authenticator.authenticate, authorization, remote, scope)
        else:
            caller = self.authenticator.authenticate(authorization, remote, scope)
        request.state.user = caller.username
        return caller

    async def session(self, request: Request) -> Response:
        caller = await self.caller(request)
        return JSONResponse(self.jmap.session(caller), headers=_NO_CACHE)

    async def api(self, request: Request) -> Response:
        caller = await self.caller(request)
        check_media_type(request.headers.get("content-type", ""))
        key = caller.principal_id or caller.username
        self.concurrency.enter(key)  # before the body: a body held in memory is a request
        try:
            data = decode(await read_limited(request, self.settings.jmap.max_size_request))
            # quick reads are answered on the loop (a thread hand-over costs more than they
            # do), under a time limit that sends a slow one on to a worker thread
            await self._open_loop_store()
            response = self.jmap.handle_quickly(data, caller)
            if response is None:
                response = await run_in_threadpool(self.jmap.handle, data, caller)
                # a /set may have changed something: tell the streams now (the quick reads
                # answered above change nothing, and a check costs a thread hand-over)
                self.watcher.poke()
        finally:
            self.concurrency.leave(key)
        return JSONResponse(response)

    async def _open_loop_store(self) -> None:
        """Give the event loop its Store, opened in a worker thread (opening may wait on a
        lock); requests arriving meanwhile go to worker threads."""
        if self.jmap.loop_store is not None or self.opening or not self.settings.jmap.inline_read_ms:
            return
        self.opening = True
        try:
            await run_in_threadpool(self.jmap.open_loop_store)
        except StoreError as exc:  # the worker thread will say what is wrong, if it still is
            log.warning("cannot open the event loop's store (quick reads wait): %s", exc)
        finally:
            self.opening = False

    async def notify(self, request: Request) -> Response:
        """Share events from a groupware server (a token with the notify scope)."""
        caller = await self.caller(request, scope="notify")
        check_media_type(request.headers.get("content-type", ""))
        key = f"notify:{caller.username}"
        self.concurrency.enter(key)
        try:
            body = decode(await read_limited(request, self.settings.jmap.max_size_request))
            try:
                events = events_of(body)
            except ValueError as exc:
                return problem(400, str(exc))
            most = self.settings.notifications.max_events
            if len(events) > most:
                return problem(400, f"{len(events)} events in one request; at most {most} "
                               "(notifications.max_events): send smaller batches")
            # the store is the worker thread's own: a connection is never shared
            outcomes = await run_in_threadpool(lambda: ingest(events, self.jmap.store(), self.settings))
        finally:
            self.concurrency.leave(key)
        self.watcher.poke()
        return JSONResponse({"results": [outcome.wire() for outcome in outcomes]})

    async def eventsource(self, request: Request) -> Response:
        """Push (RFC 8620 §7.3); at most jmap.max_event_streams open per user."""
        caller = await self.caller(request)
        try:
            wanted = push.subscription(request.query_params)
        except ValueError as exc:
            return problem(400, str(exc))
        key = caller.principal_id or caller.username
        with self.lock:
            if self.streams.get(key, 0) >= self.settings.jmap.max_event_streams:
                return problem(429, f"at most {self.settings.jmap.max_event_streams} event streams "
                               "per user", headers={"Retry-After": "30"})
            self.streams[key] = self.streams.get(key, 0) + 1

        async def states() -> dict[str, str]:
            return await run_in_threadpool(self.jmap.push_states, caller)

        body = push.stream(wanted, states, self.watcher, request.headers.get("last-event-id"))
        return EventStream(body, on_close=lambda: self._stream_closed(key))

    def shutdown(self) -> None:
        """The server is stopping: end every push stream cleanly (safe from a signal handler)."""
        self.watcher.close_from_any_thread()

    def _stream_closed(self, key: str) -> None:
        with self.lock:
            self.streams[key] -= 1
            if not self.streams[key]:
                del self.streams[key]

    async def no_blobs(self, request: Request) -> Response:
        await self.caller(request)
        return problem(404, "this server holds no blobs: nothing can be uploaded or downloaded")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        last = await run_in_threadpool(self.jmap.last_sync)
        if last is None:
            return JSONResponse({"status": "waiting for the first successful sync"}, status_code=503)
        return JSONResponse({"status": "ok", "lastSync": last})


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` octets (never buffered whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


# -- problems -----------------------------------------------------------------------------


def problem(status: int, detail: str, kind: str = "about:blank", headers: dict | None = None,
            **extra: Any) -> Response:
    body = {"type": kind, "title": _REASONS.get(status, "Error"), "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers,
                        media_type="application/problem+json")


async def _request_error(request: Request, exc: RequestError) -> Response:
    body = exc.problem()
    return JSONResponse(body, status_code=exc.status, media_type="application/problem+json")


async def _auth_failure(request: Request, exc: AuthFailure) -> Response:
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="JMAP", charset="UTF-8"'
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    return problem(exc.status, exc.message, headers=headers)


async def _store_error(request: Request, exc: StoreError) -> Response:
    log.error("store failure on %s: %s", request.url.path, exc)
    return problem(503, "the store is not available", headers={"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected failure on %s", request.url.path)
    return problem(500, "internal error; it has been logged")


class EventStream(StreamingResponse):
    """text/event-stream that runs ``on_close`` however the response ends (a client that
    leaves before the first event included), so a closed stream leaves nothing behind."""

    def __init__(self, body, on_close) -> None:
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class AccessLog:
    """One INFO line per request: client, user, method, path, status, milliseconds."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), [0]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = (scope.get("client") or ("-",))[0]
            user = scope.get("state", {}).get("user", "-")
            log.info("%s %s %s %s %s %.0fms", client, user, scope["method"], scope["path"], status[0],
                     (time.monotonic() - started) * 1000)


def create_app(settings: Settings, authenticator: Authenticator | None = None) -> Starlette:
    bridge = Bridge(settings, authenticator)
    routes = [
        Route("/.well-known/jmap", bridge.session, methods=["GET"]),
        Route("/jmap/session", bridge.session, methods=["GET"]),
        Route("/jmap", bridge.api, methods=["POST"]),
        Route("/notify", bridge.notify, methods=["POST"]),
        Route("/jmap/eventsource", bridge.eventsource, methods=["GET"]),
        Route("/jmap/download/{rest:path}", bridge.no_blobs, methods=["GET"]),
        Route("/jmap/upload/{rest:path}", bridge.no_blobs, methods=["POST"]),
        Route("/healthz", bridge.healthz, methods=["GET"]),
        Route("/readyz", bridge.readyz, methods=["GET"]),
    ]
    middleware = [Middleware(AccessLog)]
    if settings.server.trusted_proxies:
        middleware.append(Middleware(ProxyHeadersMiddleware,
                                     trusted_hosts=list(settings.server.trusted_proxies)))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={
        RequestError: _request_error, AuthFailure: _auth_failure, StoreError: _store_error,
        Exception: _unexpected})
    app.state.bridge = bridge
    return app
