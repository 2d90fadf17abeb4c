"""End to end: a real `bridge serve` (uvicorn, HTTPS with a test CA, the scheduler) against a
real slapd, driven by an independent JMAP client library (jmapc, from PyPI); a cron-style
`bridge sync` runs beside it on the same store."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import dataclasses_json
import ldap3
import pytest
import requests
from jmapc import Client
from jmapc.methods.base import Changes, ChangesResponse, Get, GetResponse, Query, QueryResponse
from jmapc.models import Comparator
from starlette.testclient import TestClient

from bridge import config, sync
from bridge.errors import ConfigError
from bridge.server import check_listener
from bridge.web import create_app
from tests.conftest import standard_sources, toml_text
from tests.support import ldif
from tests.support.jmap import basic
from tests.support.slapd import READER_DN, READER_PASSWORD, free_port

PRINCIPALS = "urn:ietf:params:jmap:principals"


# Principal methods in jmapc's own terms: its typed Query/Get/Changes, in our namespace

@dataclass
class PrincipalQuery(Query):
    method_namespace = "Principal"
    using = {PRINCIPALS}
    filter: dict | None = None


@dataclass
class PrincipalQueryResponse(QueryResponse):
    method_namespace = "Principal"


@dataclass
class PrincipalGet(Get):
    method_namespace = "Principal"
    using = {PRINCIPALS}


@dataclass
class PrincipalGetResponse(GetResponse):
    method_namespace = "Principal"
    data: list[dict] = field(default_factory=list, metadata=dataclasses_json.config(field_name="list"))


@dataclass
class PrincipalChanges(Changes):
    method_namespace = "Principal"
    using = {PRINCIPALS}


@dataclass
class PrincipalChangesResponse(ChangesResponse):
    method_namespace = "Principal"


class DirectoryClient(Client):
    """jmapc looks for a primary account of core or mail, and its Session model drops the
    other keys; ours is the principals one, read from the session itself."""

    @functools.cached_property
    def account_id(self) -> str:
        url = f"https://{self._host}/.well-known/jmap"
        return self.requests_session.get(url, timeout=10).json()["primaryAccounts"][PRINCIPALS]


NOTIFY_TOKEN = "groupware-notify-token-01"


@pytest.fixture
def served(slapd, tmp_path, tls_files):
    port = free_port()
    path, tokens = tmp_path / "serve.toml", tmp_path / "tokens.toml"
    tokens.write_text(f'[[token]]\nname = "groupware"\ntoken = "{NOTIFY_TOKEN}"\nscopes = ["notify"]\n')
    path.write_text(toml_text({
        "directory": {"urls": [slapd.url], "bind_dn": READER_DN, "bind_password": READER_PASSWORD},
        "store": {"path": str(tmp_path / "serve.db")},
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"https://localhost:{port}",
                   "tls_cert": str(tls_files["good"].cert), "tls_key": str(tls_files["good"].key),
                   "token_file": str(tokens)},
        "jmap": {"max_event_streams": 2},
        "schedule": {"interval": "1h"},
        "sources": standard_sources(),
    }))
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "bridge", "--config", str(path), "serve"],
                               stdout=log, stderr=subprocess.STDOUT)
    ca = str(tls_files["good"].ca)
    try:
        _wait_ready(f"https://localhost:{port}/readyz", ca, process, tmp_path / "serve.log")
        yield {"port": port, "config": path, "ca": ca, "log": tmp_path / "serve.log", "process": process}
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _wait_ready(url: str, ca: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bridge serve exited: {log.read_text()}")
        try:
            if requests.get(url, verify=ca, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"bridge serve was not ready in 30 s: {log.read_text()}")


def test_a_jmap_client_discovers_queries_fetches_and_follows_changes(served, slapd, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", served["ca"])  # jmapc speaks https only
    client = DirectoryClient.create_with_password(f"localhost:{served['port']}", "alice",
                                                  ldif.PASSWORDS["alice"])

    session = client.jmap_session
    assert PRINCIPALS in session.capabilities.urns
    assert session.api_url == f"https://localhost:{served['port']}/jmap"

    found = client.request(PrincipalQuery(filter={"text": "room"}, sort=[Comparator(property="name")]))
    assert isinstance(found, PrincipalQueryResponse) and len(found.ids) == 2
    rooms = client.request(PrincipalGet(ids=found.ids))
    assert [p["name"] for p in rooms.data] == ["Boardroom", "Room 4B"]
    state = rooms.state

    slapd.admin().modify(f"cn=Room 4B,{ldif.ROOMS}", {"description": [(ldap3.MODIFY_REPLACE, ["Closed"])]})
    cron = subprocess.run([sys.executable, "-m", "bridge", "--config", str(served["config"]), "sync"],
                          capture_output=True, text=True, timeout=60)
    assert cron.returncode == 0, cron.stderr

    changes = client.request(PrincipalChanges(since_state=state))
    assert isinstance(changes, PrincipalChangesResponse)
    assert changes.updated == [found.ids[1]] and changes.created == changes.destroyed == []
    again = client.request(PrincipalGet(ids=changes.updated))
    assert again.data[0]["description"] == "Closed"


@dataclass
class NotificationGet(Get):
    method_namespace = "ShareNotification"
    using = {PRINCIPALS}


@dataclass
class NotificationGetResponse(GetResponse):
    method_namespace = "ShareNotification"
    data: list[dict] = field(default_factory=list, metadata=dataclasses_json.config(field_name="list"))


def listen(client: Client, events: queue.Queue) -> None:
    """Hold the client's EventSource open, queueing what arrives, until the server goes."""
    with contextlib.suppress(Exception):  # the server stopping ends the stream any which way
        for event in client.events:
            events.put(event)


def first_event(events: queue.Queue, kind: str, unlike: str, seconds: float = 10):
    """The first event whose id carries a ``kind`` state other than ``unlike``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        states = dict(part.split("=", 1) for part in (event.id or "").split())
        if states.get(kind, unlike) != unlike:
            return event, states[kind]
    raise AssertionError(f"no {kind} state event within {seconds}s")


def test_push_reaches_a_client_after_a_cron_sync_and_after_ingestion(served, slapd, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", served["ca"])
    host = f"localhost:{served['port']}"
    reader = DirectoryClient.create_with_password(host, "alice", ldif.PASSWORDS["alice"])
    principal_state = reader.request(PrincipalGet(ids=[])).state
    notification_state = reader.request(NotificationGet(ids=[])).state
    listener = DirectoryClient.create_with_password(host, "alice", ldif.PASSWORDS["alice"])
    events: queue.Queue = queue.Queue()
    threading.Thread(target=listen, args=(listener, events), daemon=True).start()
    time.sleep(1)  # the stream is open and watching before anything changes

    # another process commits; nobody calls the API until the event is in
    slapd.admin().modify(f"cn=Room 4B,{ldif.ROOMS}", {"description": [(ldap3.MODIFY_REPLACE, ["Moved"])]})
    cron = subprocess.run([sys.executable, "-m", "bridge", "--config", str(served["config"]), "sync"],
                          capture_output=True, text=True, timeout=60)
    assert cron.returncode == 0, cron.stderr
    after_sync, pushed = first_event(events, "Principal", unlike=principal_state)
    assert set(after_sync.data.changed) == {"directory"}
    assert pushed == reader.request(PrincipalGet(ids=[])).state

    ingested = requests.post(f"https://{host}/notify", timeout=10, headers={
        "Authorization": f"Bearer {NOTIFY_TOKEN}"}, json=[{
            "recipient": "alice", "changedBy": {"name": "Bob", "email": None, "principalId": None},
            "objectType": "Calendar", "objectAccountId": "a1", "objectId": "c1", "oldRights": None,
            "newRights": {"mayRead": True}, "name": "Team"}])
    assert ingested.json()["results"][0]["status"] == "created"
    _, pushed = first_event(events, "ShareNotification", unlike=notification_state)
    assert pushed == reader.request(NotificationGet(ids=[])).state


def test_a_stream_that_resumes_gets_what_it_missed(served, slapd, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", served["ca"])
    host = f"localhost:{served['port']}"
    reader = DirectoryClient.create_with_password(host, "alice", ldif.PASSWORDS["alice"])
    principal_state = reader.request(PrincipalGet(ids=[])).state
    notification_state = reader.request(NotificationGet(ids=[])).state
    slapd.admin().modify(f"cn=Room 4B,{ldif.ROOMS}", {"description": [(ldap3.MODIFY_REPLACE, ["Gone"])]})
    cron = subprocess.run([sys.executable, "-m", "bridge", "--config", str(served["config"]), "sync"],
                          capture_output=True, text=True, timeout=60)
    assert cron.returncode == 0, cron.stderr

    listener = DirectoryClient.create_with_password(
        host, "alice", ldif.PASSWORDS["alice"],
        last_event_id=f"Principal={principal_state} ShareNotification={notification_state}")
    events: queue.Queue = queue.Queue()
    threading.Thread(target=listen, args=(listener, events), daemon=True).start()

    _, pushed = first_event(events, "Principal", unlike=principal_state)
    assert pushed == reader.request(PrincipalGet(ids=[])).state


def open_stream(served, query: str) -> requests.Response:
    return requests.get(f"https://localhost:{served['port']}/jmap/eventsource?{query}", stream=True,
                        verify=served["ca"], auth=("alice", ldif.PASSWORDS["alice"]), timeout=10)


def test_pings_keep_the_stream_alive_without_an_id(served):
    with open_stream(served, "types=*&closeafter=no&ping=1") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        frame = [next(lines), next(lines), next(lines)]

    assert frame == ["event: ping", 'data: {"interval":1}', ""]


def test_streams_per_user_are_limited_and_closing_one_frees_it(served):
    first, second = open_stream(served, "types=*&closeafter=no&ping=0"), \
        open_stream(served, "types=*&closeafter=no&ping=0")
    refused = open_stream(served, "types=*&closeafter=no&ping=0")
    assert (first.status_code, second.status_code, refused.status_code) == (200, 200, 429)
    first.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = open_stream(served, "types=*&closeafter=no&ping=0")
        if again.status_code == 200:
            break
        again.close()
        time.sleep(0.2)
    assert again.status_code == 200  # the closed stream left nothing behind
    for stream in (second, again, refused):
        stream.close()


def share_events(count: int, prefix: str) -> list[dict]:
    return [{"recipient": "alice", "changedBy": {"name": "Bob", "email": None, "principalId": None},
             "objectType": "Calendar", "objectAccountId": "a1", "objectId": f"{prefix}{n}",
             "oldRights": None, "newRights": {"mayRead": True}, "name": "Team"} for n in range(count)]


def test_concurrent_ingestion_and_requests_all_get_answered(served):
    base = f"https://localhost:{served['port']}"
    answers: dict[str, int] = {}

    def post(name: str) -> None:
        response = requests.post(f"{base}/notify", json=share_events(20, name), verify=served["ca"],
                                 headers={"Authorization": f"Bearer {NOTIFY_TOKEN}"}, timeout=15)
        answers[name] = response.status_code

    threads = [threading.Thread(target=post, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    health = requests.get(f"{base}/healthz", verify=served["ca"], timeout=5)
    for thread in threads:
        thread.join(20)
    assert health.status_code == 200
    assert sorted(answers.values()) == [200, 200, 200] or 429 in answers.values(), answers
    notifications = requests.post(f"{base}/jmap", verify=served["ca"], timeout=10,
                                  auth=("alice", ldif.PASSWORDS["alice"]), json={
        "using": ["urn:ietf:params:jmap:core", PRINCIPALS],
        "methodCalls": [["ShareNotification/query", {"accountId": "directory"}, "0"]]})
    created = notifications.json()["methodResponses"][0][1]["ids"]
    assert len(created) == 20 * sum(code == 200 for code in answers.values())


def test_a_stopping_server_ends_its_push_streams_cleanly(served):
    session = requests.Session()
    stream = session.get(f"https://localhost:{served['port']}/jmap/eventsource?types=*&ping=0",
                         stream=True, verify=served["ca"], auth=("alice", ldif.PASSWORDS["alice"]),
                         timeout=10)
    assert stream.status_code == 200
    time.sleep(0.5)
    started = time.monotonic()
    served["process"].terminate()

    body = b"".join(stream.iter_content(chunk_size=None))  # ends cleanly: no ChunkedEncodingError
    ended = time.monotonic() - started
    # a client that keeps the idle TLS connection would hold the exit for the grace period;
    # requests lets go of the socket only once the response is collected
    stream.close()
    session.close()
    del stream, session
    gc.collect()

    served["process"].wait(timeout=10)
    assert body == b"" and ended < 2 and time.monotonic() - started < 4
    assert "graceful shutdown exceeded" not in served["log"].read_text()


def test_serve_logs_requests_and_the_scheduled_sync(served, monkeypatch):
    response = requests.get(f"https://localhost:{served['port']}/jmap/session", verify=served["ca"],
                            auth=("alice", ldif.PASSWORDS["alice"]), timeout=10)
    assert response.status_code == 200
    time.sleep(0.2)
    log = served["log"].read_text()
    assert "scheduled sync ok: seen 34, created 34" in log
    assert "127.0.0.1 alice GET /jmap/session 200" in log


def test_plain_http_basic_off_loopback_is_refused():
    settings = config.load(None, environ={"BRIDGE_SERVER__LISTEN": "0.0.0.0:8080"})
    with pytest.raises(ConfigError, match="neither HTTPS nor on loopback"):
        check_listener(settings)
    check_listener(config.load(None, environ={"BRIDGE_SERVER__LISTEN": "0.0.0.0:8080",
                                              "BRIDGE_SERVER__ALLOW_PLAIN_HTTP_BASIC": "true"}))
    check_listener(config.load(None, environ={"BRIDGE_SERVER__LISTEN": "[::1]:8080"}))


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(slapd, make_settings, caplog):
    lines = []
    for trusted in ([], ["127.0.0.1"]):
        settings = make_settings(slapd, server={"trusted_proxies": trusted})
        sync.run(settings)
        client = TestClient(create_app(settings), client=("127.0.0.1", 4711))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bridge.web"):
            client.get("/jmap/session", headers={**basic("alice", ldif.PASSWORDS["alice"]),
                                                 "X-Forwarded-For": "203.0.113.9"})
        lines.append(caplog.records[-1].getMessage())

    assert lines[0].startswith("127.0.0.1 alice GET /jmap/session 200")
    assert lines[1].startswith("203.0.113.9 alice GET /jmap/session 200")
