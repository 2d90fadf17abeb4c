"""Method arguments, checked strictly (RFC 8620 §3.9): an unknown argument, a missing
required one or a value of the wrong type is ``invalidArguments``, naming the argument."""

from __future__ import annotations

from typing import Any

from bridge.jmap.errors import MethodError, invalid_arguments
from bridge.query import valid_id as is_id

MAX_INT = 2**53 - 1
_MISSING = object()


class Args:
    """The arguments object of one call, read once per argument."""

    def __init__(self, raw: Any, allowed: set[str]) -> None:
        if not isinstance(raw, dict):
            raise invalid_arguments("the arguments must be an object")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise invalid_arguments(f"unknown argument {unknown[0]!r}")
        self._raw = raw

    def has(self, name: str) -> bool:
        return name in self._raw

    def _get(self, name: str, default: Any) -> Any:
        value = self._raw.get(name, default)
        if value is _MISSING:
            raise invalid_arguments(f"{name} is required")
        return value

    def id(self, name: str) -> str:
        value = self._get(name, _MISSING)
        if not is_id(value):
            raise invalid_arguments(f"{name} must be an Id")
        return value

    def ids(self, name: str, default: Any = _MISSING) -> list[str] | None:
        """A list of Ids, or null."""
        value = self._get(name, default)
        if value is None:
            return None
        if not isinstance(value, list) or not all(is_id(item) for item in value):
            raise invalid_arguments(f"{name} must be a list of Ids or null")
        return value

    def strings(self, name: str, default: Any = None) -> list[str] | None:
        value = self._get(name, default)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid_arguments(f"{name} must be a list of strings or null")
        return value

    def string(self, name: str, default: Any = _MISSING, nullable: bool = False) -> str | None:
        value = self._get(name, default)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise invalid_arguments(f"{name} must be a string" + (" or null" if nullable else ""))
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise invalid_arguments(f"{name} must be true or false")
        return value

    def integer(self, name: str, default: Any = _MISSING, minimum: int = -MAX_INT,
                nullable: bool = False) -> int | None:
        value = self._get(name, default)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
            what = "a positive Int" if minimum == 1 else "an UnsignedInt" if minimum == 0 else "an Int"
            raise invalid_arguments(f"{name} must be {what}" + (" or null" if nullable else ""))
        return value

    def object(self, name: str, default: Any = None) -> dict | None:
        value = self._get(name, default)
        if value is not None and not isinstance(value, dict):
            raise invalid_arguments(f"{name} must be an object or null")
        return value

    def list(self, name: str, default: Any = None) -> list | None:
        value = self._get(name, default)
        if value is not None and not isinstance(value, list):
            raise invalid_arguments(f"{name} must be a list or null")
        return value


class FilterSize:
    """The size one filter may have, for every type's /query: at most MOST conditions
    (operators count), nested at most DEEPEST deep; beyond, unsupportedFilter."""

    MOST, DEEPEST = 64, 8

    def __init__(self) -> None:
        self._left = self.MOST

    def count(self, depth: int) -> None:
        """One more condition, at ``depth`` (the top is 1)."""
        self._left -= 1
        if self._left < 0 or depth > self.DEEPEST:
            raise MethodError("unsupportedFilter", f"a filter may have at most {self.MOST} "
                              f"conditions, nested at most {self.DEEPEST} deep")
