"""Push (RFC 8620 §7.3): the subscription, the event stream's protocol, and the endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json

import ldap3
import pytest

from bridge import sync
from bridge.errors import StoreError
from bridge.jmap import push
from tests.support import ldif


@pytest.mark.parametrize("query, types, close, ping", [
    ({}, {"Principal", "ShareNotification"}, False, 0),
    ({"types": "*", "closeafter": "state", "ping": "0"}, {"Principal", "ShareNotification"}, True, 0),
    ({"types": "Principal,Email", "ping": "1"}, {"Principal"}, False, 1),
    ({"types": "ShareNotification", "ping": "99999"}, {"ShareNotification"}, False, 3600),
])
def test_subscriptions_and_ping_clamping(query, types, close, ping):
    wanted = push.subscription(query)
    assert (wanted.types, wanted.close_after_state, wanted.ping) == (types, close, ping)


@pytest.mark.parametrize("query", [{"closeafter": "maybe"}, {"ping": "-1"}, {"ping": "soon"}])
def test_bad_subscriptions(query):
    with pytest.raises(ValueError):
        push.subscription(query)


def run_stream(wanted, states_seq, last_event_id=None, wake_after=None, limit=5):
    """Collect a stream's frames; ``states_seq`` are the states each read returns, and
    each of ``wake_after`` commits moves the store's last change and pokes the watcher."""
    reads = iter(states_seq)
    last_change = [0]

    async def states():
        return next(reads)

    async def main():
        watcher = push.Watcher(lambda: last_change[0], interval=3600)
        frames = []

        async def collect():
            async for frame in push.stream(wanted, states, watcher, last_event_id):
                frames.append(frame)
                if len(frames) >= limit:
                    return

        task = asyncio.create_task(collect())
        for _ in range(wake_after or 0):
            await asyncio.sleep(0.05)
            last_change[0] += 1
            watcher.poke()
        await asyncio.wait_for(task, 5)
        return frames, watcher

    return asyncio.run(main())


S1 = {"Principal": "e-1", "ShareNotification": "e-0"}
S2 = {"Principal": "e-2", "ShareNotification": "e-0"}
S3 = {"Principal": "e-2", "ShareNotification": "e-3"}


def test_a_reconnecting_client_gets_what_it_missed_at_once():
    wanted = push.subscription({"closeafter": "state"})
    frames, watcher = run_stream(wanted, [S2], last_event_id=push.event_id(S1))

    assert frames == ["event: state\nid: Principal=e-2 ShareNotification=e-0\n"
                      'data: {"@type":"StateChange","changed":{"directory":{"Principal":"e-2"}}}\n\n']
    assert watcher.listeners == 0


def test_only_subscribed_types_are_sent_and_the_stream_ends_after_state():
    wanted = push.subscription({"types": "ShareNotification", "closeafter": "state"})
    frames, watcher = run_stream(wanted, [S1, S2, S3], wake_after=2)

    assert len(frames) == 1
    assert json.loads(frames[0].split("data: ")[1]) == {
        "@type": "StateChange", "changed": {"directory": {"ShareNotification": "e-3"}}}
    assert watcher.listeners == 0  # nothing left behind


def test_pings_carry_the_interval_and_no_id():
    wanted = push.Subscription(frozenset({"Principal"}), False, ping=1)
    frames, _ = run_stream(wanted, [S1], limit=1)
    assert frames == ['event: ping\ndata: {"interval":1}\n\n']


def watch(last_change, states, interval=0.02, rounds=10, on_frame=None):
    """Run one stream against a watcher polling ``last_change``; the states it read and
    the frames it sent after ``rounds`` poll intervals (or when ``on_frame`` says stop)."""
    reads, frames = [], []

    async def counted_states():
        reads.append(states())
        return reads[-1]

    async def main():
        watcher = push.Watcher(last_change, interval=interval)

        async def collect():
            async for frame in push.stream(push.subscription({}), counted_states, watcher, None):
                frames.append(frame)
                if on_frame and on_frame(watcher):
                    return

        task = asyncio.create_task(collect())
        await asyncio.sleep(interval * rounds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return watcher

    watcher = asyncio.run(main())
    return reads, frames, watcher


def test_a_poke_without_a_change_wakes_no_stream():
    async def main():
        watcher = push.Watcher(lambda: 7, interval=3600)
        reads = []

        async def states():
            reads.append(1)
            return S1

        task = asyncio.create_task(anext(push.stream(push.subscription({}), states, watcher, None)))
        await asyncio.sleep(0.05)
        for _ in range(20):  # read-only API calls
            watcher.poke()
            await asyncio.sleep(0.005)
        task.cancel()
        return reads

    assert asyncio.run(main()) == [1]  # the first read only: nobody was woken


def test_a_change_right_after_a_stream_reads_its_states_is_still_pushed():
    """The watcher's baseline is taken before the stream reads its states."""
    last_change = [0]

    def states():
        if last_change[0] == 0:
            last_change[0] = 1  # a commit lands just after this read
            return S1
        return S2

    reads, frames, _ = watch(lambda: last_change[0], states)
    assert reads == [S1, S2] and len(frames) == 1 and '"Principal":"e-2"' in frames[0]


def test_the_watcher_survives_a_failing_store_and_keeps_watching(caplog):
    calls = [0]

    def last_change():
        calls[0] += 1
        if calls[0] in (2, 3):
            raise StoreError("store: database is locked")
        return 0 if calls[0] < 5 else 1

    reads, frames, _ = watch(last_change, lambda: S1, interval=0.01, rounds=30)
    assert calls[0] > 5 and "cannot read the store" in caplog.text
    assert len(reads) == 2  # woken after the failures, once the change showed


def test_closing_the_watcher_ends_every_stream_cleanly():
    async def main():
        watcher = push.Watcher(lambda: 0, interval=3600)
        ended = []

        async def collect():
            async for _ in push.stream(push.subscription({"ping": "3600"}), _states, watcher, None):
                pass
            ended.append(True)

        tasks = [asyncio.create_task(collect()) for _ in range(3)]
        await asyncio.sleep(0.05)
        watcher.close_from_any_thread()
        await asyncio.wait_for(asyncio.gather(*tasks), 2)
        late = [frame async for frame in push.stream(push.subscription({}), _states, watcher, None)]
        return ended, late, watcher.listeners

    assert asyncio.run(main()) == ([True] * 3, [], 0)


async def _states():
    return S1


# -- the endpoint -------------------------------------------------------------------------


def test_the_endpoint_resumes_from_last_event_id(alice, slapd, synced):
    principal_state = alice.one("Principal/get", ids=[])["state"]
    notification_state = alice.one("ShareNotification/get", ids=[])["state"]
    slapd.admin().modify(ldif.person_dn("erin"), {"description": [(ldap3.MODIFY_ADD, ["new"])]})
    sync.run(synced)

    last = f"Principal={principal_state} ShareNotification={notification_state}"
    response = alice.client.get("/jmap/eventsource?types=*&closeafter=state&ping=0",
                                headers={**alice.headers, "Last-Event-ID": last})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = json.loads(response.text.split("data: ")[1])
    assert data["changed"]["directory"] == {"Principal": alice.one("Principal/get", ids=[])["state"]}


def test_the_endpoint_checks_its_parameters_and_credentials(alice, client):
    assert client.get("/jmap/eventsource?types=*&closeafter=no&ping=0").status_code == 401
    bad = alice.client.get("/jmap/eventsource?types=*&closeafter=perhaps&ping=0", headers=alice.headers)
    assert bad.status_code == 400 and "closeafter" in bad.json()["detail"]
