"""Who is calling: HTTP Basic with the user's directory credentials, or a static bearer
token for service clients; and whether they may use JMAP.

Basic: the login is looked up in the individual sources by their login attributes (the
input escaped, never injected into the filter), then the password is checked by binding
as that entry. A success is remembered for ``auth.cache_ttl`` as a salted scrypt hash, so
API calls do not each bind; ``auth.max_failures`` failures within ``auth.failure_window``
lock the login (429) for the rest of the window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn

from bridge.config import Settings
from bridge.directory import any_equal, open_directory
from bridge.dn import dn_key
from bridge.errors import ConfigError, DirectoryAuthError, DirectoryError
from bridge.mapper import flavor_for, identifier_uuid, principal_id, source_map
from bridge.model import Caller, PrincipalType
from bridge.store import Store

log = logging.getLogger(__name__)

_SCRYPT = {"n": 2**12, "r": 8, "p": 1}  # ~5 ms: a cache hit stays cheap, a dump stays costly


class AuthFailure(Exception):
    """The request is not let in: 401 (who are you?), 403 (not you), 429 (locked), 503."""

    def __init__(self, status: int, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Token:
    name: str
    digest: bytes  # sha256 of the token
    scopes: frozenset[str]


@dataclass
class _Remembered:
    caller: Caller
    salt: bytes
    digest: bytes
    expires: float


class Authenticator:
    """Thread-safe; one per process. ``store`` gives the calling thread its Store."""

    def __init__(self, settings: Settings, store: Callable[[], Store]) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()
        self._remembered: dict[str, _Remembered] = {}
        self._failures: dict[str, deque[float]] = {}
        self._tokens = load_tokens(settings.server.token_file) if settings.server.token_file else {}

    def authenticate(self, authorization: str | None, remote: str = "") -> Caller:
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return self._token(credentials.strip(), remote)
        if scheme.lower() != "basic" or not credentials.strip():
            raise AuthFailure(401, "authentication required")
        login, password = _basic(credentials.strip())
        caller = self._basic(login, password, remote)
        self._check_access(caller)
        return caller

    # -- tokens ---------------------------------------------------------------------------

    def _token(self, presented: str, remote: str) -> Caller:
        digest = hashlib.sha256(presented.encode()).digest()
        for token in self._tokens.values():
            if hmac.compare_digest(token.digest, digest):
                if "jmap" not in token.scopes:
                    raise AuthFailure(403, f"token {token.name!r} has no jmap scope")
                if not self._settings.server.jmap_enabled:
                    raise AuthFailure(403, "JMAP is disabled on this server")
                return Caller(username=token.name, is_service=True, remote=remote)
        raise AuthFailure(401, "unknown bearer token")

    # -- HTTP Basic -----------------------------------------------------------------------

    def _basic(self, login: str, password: str, remote: str) -> Caller:
        key = login.casefold()
        self._refuse_if_locked(key)
        if not login or not password:
            self._failed(key, login, remote, "empty login or password")
        remembered = self._recall(key, password)
        if remembered:
            return replace(remembered, remote=remote)
        try:
            caller = self._bind(login, password, remote)
        except DirectoryAuthError as exc:
            self._failed(key, login, remote, exc.message)
        except DirectoryError as exc:
            log.error("cannot check a login, the directory is unavailable: %s", exc)
            raise AuthFailure(503, "the directory cannot be reached to check the password",
                              retry_after=30) from exc
        self._remember(key, password, caller)
        with self._lock:
            self._failures.pop(key, None)
        return caller

    def _bind(self, login: str, password: str, remote: str) -> Caller:
        settings = self._settings
        with open_directory(settings.directory) as directory:
            flavor = flavor_for(settings.directory.flavor, directory.info.flavor)
            entries = []
            for source in settings.sources:
                if source.type != PrincipalType.INDIVIDUAL.value:
                    continue
                smap = source_map(source, flavor, settings.directory.id_attribute)
                if not smap.login_attributes:
                    continue
                search = f"(&{smap.filter}{any_equal(smap.login_attributes, login)})"
                entries += [(smap, entry) for entry in directory.read(
                    smap.query(search, (smap.id_attribute,)), limit=2)]
            if len(entries) != 1:
                raise DirectoryAuthError("no such login" if not entries else "the login is ambiguous")
            smap, entry = entries[0]
            directory.check_password(entry.dn, password)
        identifiers = entry.values(smap.id_attribute)
        pid = principal_id(identifier_uuid(smap.id_attribute, identifiers[0])) if identifiers else None
        log.info("login %s bound as %s", login, entry.dn)
        return Caller(username=login, principal_id=pid, remote=remote)

    def _recall(self, key: str, password: str) -> Caller | None:
        with self._lock:
            remembered = self._remembered.get(key)
        if remembered is None or remembered.expires < time.monotonic():
            return None
        digest = hashlib.scrypt(password.encode(), salt=remembered.salt, **_SCRYPT)
        return remembered.caller if hmac.compare_digest(digest, remembered.digest) else None

    def _remember(self, key: str, password: str, caller: Caller) -> None:
        ttl = self._settings.auth.cache_ttl
        if ttl <= 0:
            return
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        with self._lock:
            self._remembered[key] = _Remembered(replace(caller, remote=""), salt, digest,
                                                time.monotonic() + ttl)

    def _refuse_if_locked(self, key: str) -> None:
        window, limit = self._settings.auth.failure_window, self._settings.auth.max_failures
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(key)
            while failures and failures[0] < now - window:
                failures.popleft()
            if failures is not None and len(failures) >= limit:
                raise AuthFailure(429, "too many failed logins; try again later",
                                  retry_after=int(failures[0] + window - now) + 1)

    def _failed(self, key: str, login: str, remote: str, why: str) -> NoReturn:
        with self._lock:
            self._failures.setdefault(key, deque()).append(time.monotonic())
            self._remembered.pop(key, None)
        log.warning("failed login %r from %s: %s", login, remote or "?", why)
        raise AuthFailure(401, "invalid credentials")

    # -- access -----------------------------------------------------------------------------

    def _check_access(self, caller: Caller) -> None:
        server = self._settings.server
        if not server.jmap_enabled:
            raise AuthFailure(403, "JMAP is disabled on this server")
        if caller.principal_id is None:
            return
        store = self._store()
        own = store.principal(caller.principal_id)
        if own is not None and own.disabled:
            raise AuthFailure(403, "this account is disabled in the directory")
        if not (server.allow_groups or server.deny_groups):
            return
        groups = store.groups_of(caller.principal_id)
        if groups & store.ids_of_dns([dn_key(dn) for dn in server.deny_groups]):
            raise AuthFailure(403, "JMAP is not enabled for this account")
        if server.allow_groups and not groups & store.ids_of_dns([dn_key(dn) for dn in server.allow_groups]):
            raise AuthFailure(403, "JMAP is not enabled for this account")


def _basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthFailure(401, "malformed Basic credentials") from None
    login, colon, password = decoded.partition(":")
    if not colon:
        raise AuthFailure(401, "malformed Basic credentials")
    return login, password


def load_tokens(path: str) -> dict[str, Token]:
    """Bearer tokens: a TOML file of ``[[token]]`` tables with ``name``, the token as
    ``sha256`` (hex, preferred) or ``token`` (plain), and ``scopes`` (default ["jmap"])."""
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the token file: {exc}", section="server", option="token_file",
                          value=path) from None
    tokens = {}
    for number, item in enumerate(raw.get("token", []), 1):
        where = f"{path}: token {number}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where}: each [[token]] needs a name")
        if isinstance(item.get("sha256"), str) and re.fullmatch(r"[0-9a-fA-F]{64}", item["sha256"]):
            digest = bytes.fromhex(item["sha256"])
        elif isinstance(item.get("token"), str) and len(item["token"]) >= 16:
            digest = hashlib.sha256(item["token"].encode()).digest()
        else:
            raise ConfigError(f"{where} ({item['name']}): give sha256 (64 hex digits) or a token "
                              "of at least 16 characters")
        scopes = item.get("scopes", ["jmap"])
        if not isinstance(scopes, list) or not all(s in ("jmap", "notify") for s in scopes):
            raise ConfigError(f"{where} ({item['name']}): scopes are a list of jmap, notify")
        tokens[item["name"]] = Token(item["name"], digest, frozenset(scopes))
    return tokens
