"""Account-state rules: when a directory entry says its account is disabled.

Each rule reads one attribute and is pure (the time is an argument), so flavors can list
them as data: OpenLDAP's ppolicy administrative lock, Active Directory's
userAccountControl ACCOUNTDISABLE bit and accountExpires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.model import RawEntry

#: accountExpires counts 100 ns intervals since 1601-01-01 UTC (a Windows FILETIME).
_FILETIME_EPOCH_OFFSET = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01
_FILETIME_TICKS = 10_000_000
#: accountExpires values that mean "never": 0 and the largest 64-bit integer.
NEVER_EXPIRES = frozenset({0, 0x7FFF_FFFF_FFFF_FFFF})


class AccountRule(Protocol):
    attribute: str

    def disables(self, entry: RawEntry, now: float) -> bool: ...


@dataclass(frozen=True)
class LockedValue:
    """Disabled while ``attribute`` holds exactly ``value`` (ppolicy's 000001010000Z)."""

    attribute: str
    value: str

    def disables(self, entry: RawEntry, now: float) -> bool:
        return self.value in entry.values(self.attribute)


@dataclass(frozen=True)
class FlagSet:
    """Disabled while the integer ``attribute`` has any bit of ``mask`` set (AD's
    userAccountControl 0x2): the bit is tested, never a list of whole values."""

    attribute: str
    mask: int

    def disables(self, entry: RawEntry, now: float) -> bool:
        return any(number & self.mask for number in _integers(entry, self.attribute))


@dataclass(frozen=True)
class ExpiredFiletime:
    """Disabled once the FILETIME in ``attribute`` has passed (AD's accountExpires)."""

    attribute: str

    def disables(self, entry: RawEntry, now: float) -> bool:
        return any(filetime_to_epoch(ticks) <= now for ticks in _integers(entry, self.attribute)
                   if ticks not in NEVER_EXPIRES)


def filetime_to_epoch(ticks: int) -> float:
    return ticks / _FILETIME_TICKS - _FILETIME_EPOCH_OFFSET


def epoch_to_filetime(seconds: float) -> int:
    return int((seconds + _FILETIME_EPOCH_OFFSET) * _FILETIME_TICKS)


def _integers(entry: RawEntry, attribute: str) -> list[int]:
    numbers = []
    for value in entry.values(attribute):
        try:
            numbers.append(int(value))
        except (TypeError, ValueError):
            continue  # not an integer: this rule cannot say anything about it
    return numbers
