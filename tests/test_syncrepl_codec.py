"""The RFC 4533 control and message values, against BER spelt out by hand from the
RFC's ASN.1 (not produced by the encoder under test)."""

from __future__ import annotations

import pytest

from bridge.directory import syncrepl
from bridge.errors import DirectorySearchError
from bridge.model import SearchQuery

UUID_A = bytes(range(16))
UUID_B = bytes(range(16, 32))
QUERY = SearchQuery("ou=people,dc=example,dc=org", "(objectClass=*)", ("cn",), "sub", frozenset())


def test_the_request_control_is_critical_refresh_only_with_the_cookie():
    assert syncrepl.request_control(b"abc") == (
        "1.3.6.1.4.1.4203.1.9.1.1", True, bytes.fromhex("3008" "0a0101" "0403616263"))
    # no cookie: the initial content; reloadHint FALSE is the default, so it is left out
    assert syncrepl.request_control(None)[2] == bytes.fromhex("3003" "0a0101")


def test_a_sync_id_set_with_refresh_deletes_names_deleted_entries():
    value = bytes.fromhex("a329" "0101ff" "3124" "0410") + UUID_A + bytes.fromhex("0410") + UUID_B
    assert list(syncrepl._sync_info(value)) == [syncrepl.Deleted((UUID_A, UUID_B))]


def test_a_sync_id_set_without_refresh_deletes_names_present_entries():
    value = bytes.fromhex("a319" "0403616263" "3112" "0410") + UUID_A
    assert list(syncrepl._sync_info(value)) == [syncrepl.Present((UUID_A,))]


@pytest.mark.parametrize("value", [bytes.fromhex("8003616263"),          # newcookie
                                   bytes.fromhex("a1050403616263"),      # refreshDelete
                                   bytes.fromhex("a2030101ff")])         # refreshPresent
def test_phase_markers_yield_nothing_in_refresh_only_mode(value):
    assert list(syncrepl._sync_info(value)) == []


def test_the_sync_done_control_gives_the_cookie_and_the_phase():
    done = syncrepl._decode(syncrepl._SyncDoneValue(), {syncrepl.SYNC_DONE: {"value": bytes.fromhex(
        "3008" "0403616263" "0101ff")}}, syncrepl.SYNC_DONE, "ldap://x", QUERY)
    assert (bytes(done["cookie"]), bool(done["refreshDeletes"])) == (b"abc", True)
    empty = syncrepl._decode(syncrepl._SyncDoneValue(),
                             {syncrepl.SYNC_DONE: {"value": bytes.fromhex("3000")}},
                             syncrepl.SYNC_DONE, "ldap://x", QUERY)
    assert not empty["cookie"].hasValue() and not bool(empty["refreshDeletes"])


def test_the_sync_state_control_gives_state_and_uuid():
    state = syncrepl._decode(syncrepl._SyncStateValue(), {syncrepl.SYNC_STATE: {"value": bytes.fromhex(
        "3015" "0a0103" "0410") + UUID_A}}, syncrepl.SYNC_STATE, "ldap://x", QUERY)
    assert (str(state["state"]), bytes(state["entryUUID"])) == ("delete", UUID_A)


def test_an_entry_without_a_sync_state_or_an_undecodable_one_is_an_error():
    with pytest.raises(DirectorySearchError, match="without its sync state"):
        syncrepl._decode(syncrepl._SyncStateValue(), {}, syncrepl.SYNC_STATE, "ldap://x", QUERY)
    with pytest.raises(DirectorySearchError, match="undecodable"):
        syncrepl._decode(syncrepl._SyncStateValue(), {syncrepl.SYNC_STATE: {"value": b"\x30\x05\x0a"}},
                         syncrepl.SYNC_STATE, "ldap://x", QUERY)
