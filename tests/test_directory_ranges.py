"""bridge.directory.ranges: AD range retrieval, replayed from responses shaped like Windows
AD's (MaxValRange 1,500). Samba never ranges a plain read, so the automatic case is
exercised here; tests/test_ad_samba.py runs the same code against Samba with an explicit
first range."""

from __future__ import annotations

import pytest

from bridge.directory.ranges import complete_ranges, is_ranged
from bridge.errors import DirectorySearchError
from bridge.model import RawEntry

DN = "CN=Everyone,OU=Groups,DC=example,DC=test"
MEMBERS = tuple(f"CN=user{n:04},OU=People,DC=example,DC=test" for n in range(3200))


class RecordedServer:
    """Answers slice requests the way AD does: at most ``max_values`` per answer, the
    attribute named ``member;range=LOW-HIGH`` (``*`` on the last slice)."""

    def __init__(self, values: tuple[str, ...] = MEMBERS, max_values: int = 1500) -> None:
        self.values = values
        self.max_values = max_values
        self.asked: list[str] = []

    def first(self) -> RawEntry:
        return RawEntry(DN, {"objectguid": (b"g" * 16,), **self.slice(0)})

    def slice(self, low: int) -> dict:
        high = low + self.max_values - 1
        if high >= len(self.values) - 1:
            return {f"member;range={low}-*": self.values[low:]}
        return {f"member;range={low}-{high}": self.values[low:high + 1]}

    def read_slice(self, dn: str, attribute: str) -> RawEntry | None:
        self.asked.append(attribute)
        low = int(attribute.split("=")[1].split("-")[0])
        return RawEntry(dn, self.slice(low))


def test_a_ranged_member_attribute_is_completed_under_its_plain_name():
    server = RecordedServer()
    entry = complete_ranges(server.first(), server.read_slice)
    assert entry.values("member") == MEMBERS
    assert server.asked == ["member;range=1500-*", "member;range=3000-*"]
    assert not any(is_ranged(key) for key in entry.attributes)
    assert entry.values("objectGUID") == (b"g" * 16,)


def test_an_unranged_entry_is_returned_as_it_is():
    entry = RawEntry(DN, {"member": MEMBERS[:3]})
    assert complete_ranges(entry, pytest.fail) is entry


def test_a_small_group_answered_with_an_open_range_needs_no_further_read():
    entry = RawEntry(DN, {"member;range=0-*": MEMBERS[:3]})
    assert complete_ranges(entry, pytest.fail).values("member") == MEMBERS[:3]


def test_a_group_of_exactly_one_slice_ends_with_an_empty_open_slice():
    server = RecordedServer(MEMBERS[:1500])
    first = RawEntry(DN, {"member;range=0-1499": MEMBERS[:1500]})
    answers = iter([RawEntry(DN, {"member;range=1500-*": ()})])
    entry = complete_ranges(first, lambda dn, attribute: next(answers))
    assert entry.values("member") == server.values


@pytest.mark.parametrize("answer, why", [
    (None, "vanished"),
    (RawEntry(DN, {}), "got no values"),  # the slice did not come back: never "no members"
    (RawEntry(DN, {"member;range=1600-*": MEMBERS[1600:]}), "from 1500 on"),  # a gap
    (RawEntry(DN, {"member;range=1500-*": (), "member;range=0-*": ()}), "from 1500 on"),
])
def test_a_missing_or_inconsistent_slice_fails_the_read(answer, why):
    first = RawEntry(DN, {"member;range=0-1499": MEMBERS[:1500]})
    with pytest.raises(DirectorySearchError) as caught:
        complete_ranges(first, lambda dn, attribute: answer, url="ldap://dc1")
    assert why in str(caught.value) and DN in str(caught.value) and "refused" in str(caught.value)
    assert caught.value.url == "ldap://dc1"


def test_a_slice_shorter_than_its_range_says_fails_the_read():
    first = RawEntry(DN, {"member;range=0-1499": MEMBERS[:1499]})
    with pytest.raises(DirectorySearchError, match="1499 values"):
        complete_ranges(first, RecordedServer().read_slice)


def test_a_first_slice_not_starting_at_zero_fails_the_read():
    with pytest.raises(DirectorySearchError, match="does not start at 0"):
        complete_ranges(RawEntry(DN, {"member;range=1500-*": MEMBERS[1500:]}), pytest.fail)


def test_a_plain_and_a_ranged_copy_of_one_attribute_fail_the_read():
    entry = RawEntry(DN, {"member": MEMBERS[:2], "member;range=0-*": MEMBERS[:2]})
    with pytest.raises(DirectorySearchError, match="both member"):
        complete_ranges(entry, pytest.fail)


def test_a_read_error_during_the_slices_propagates():
    def broken(dn: str, attribute: str) -> RawEntry:
        raise DirectorySearchError("connection lost", url="ldap://dc1")

    with pytest.raises(DirectorySearchError, match="connection lost"):
        complete_ranges(RecordedServer().first(), broken)


def test_attribute_options_are_kept_and_names_compare_without_case():
    first = RawEntry(DN, {"member;binary;range=0-1": ("a", "b")})
    answers = iter([RawEntry(DN, {"Member;Binary;Range=2-*": ("c",)})])
    entry = complete_ranges(first, lambda dn, attribute: next(answers))
    assert entry.attributes["member;binary"] == ("a", "b", "c")
