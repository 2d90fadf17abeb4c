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
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn

from bridge.config import Settings
from bridge.directory import any_equal, open_directory
from bridge.dn import dn_key
from bridge.errors import ConfigError, DirectoryAuthError, DirectoryError
from bridge.mapper import Skipped, flavor_for, identifier_uuid, map_entry, principal_id, source_map
from bridge.model import Caller, PrincipalType
from bridge.store import Store
from bridge.throttle import Throttle

log = logging.getLogger(__name__)

_SCRYPT = {"n": 2**12, "r": 8, "p": 1}  # ~5 ms: a cache hit stays cheap, a dump stays costly


MAX_LOGIN = 256
MAX_REMEMBERED = 10_000


class _WrongPassword(Exception):
    """The directory refused the login; ``account`` is what the failure counts against."""

    def __init__(self, account: str, why: str) -> None:
        super().__init__(why)
        self.account = account
        self.why = why


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
    """Thread-safe; one per process. ``store`` gives the calling thread its Store.

    Failed logins are counted three ways: per account and client address (``max_failures``
    locks that address out for the account), per account from anywhere (4×, against
    guessing spread over addresses) and per address for any login (10×, against trying
    many logins). A password that matches a remembered recent success still gets in, so a
    stranger cannot lock out someone who is already working.
    """

    def __init__(self, settings: Settings, store: Callable[[], Store]) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()
        self._remembered: dict[str, _Remembered] = {}
        self._accounts: dict[str, str] = {}  # login key → the DN key it resolved to
        self._netbios: dict[str, str] = {}  # directory URL → its NetBIOS domain ("" if none)
        window, limit = settings.auth.failure_window, settings.auth.max_failures
        self._per_pair = Throttle(window, limit)
        self._per_account = Throttle(window, 4 * limit)
        self._per_address = Throttle(window, 10 * limit)
        tokens = load_tokens(settings.server.token_file) if settings.server.token_file else {}
        # by the SHA-256 of the secret: a lookup's timing can tell only about the hash
        self._tokens = {token.digest: token for token in tokens.values()}

    @staticmethod
    def may_block(authorization: str | None) -> bool:
        """Whether authenticating this header may wait on the directory (HTTP Basic: an
        LDAP bind); a bearer token is a hash and a comparison."""
        return _bearer(authorization) is None

    def authenticate(self, authorization: str | None, remote: str = "", scope: str = "jmap") -> Caller:
        """The caller of a request needing ``scope``: jmap (the API, users and tokens) or
        notify (share-event ingestion, tokens only)."""
        presented = _bearer(authorization)
        if presented is not None:
            return self._token(presented, remote, scope)
        scheme, _, credentials = (authorization or "").partition(" ")
        if scope != "jmap":
            raise AuthFailure(401, f"a bearer token with the {scope} scope is required")
        if scheme.lower() != "basic" or not credentials.strip():
            raise AuthFailure(401, "authentication required")
        login, password = _basic(credentials.strip())
        caller = self._basic(login, password, remote)
        self._check_access(caller)
        return caller

    # -- tokens ---------------------------------------------------------------------------

    def _token(self, presented: str, remote: str, scope: str) -> Caller:
        digest = hashlib.sha256(presented.encode()).digest()
        token = self._tokens.get(digest)
        if token is None:
            raise AuthFailure(401, "unknown bearer token")
        if scope not in token.scopes:
            raise AuthFailure(403, f"token {token.name!r} has no {scope} scope")
        if scope == "jmap" and not self._settings.server.jmap_enabled:
            raise AuthFailure(403, "JMAP is disabled on this server")
        return Caller(username=token.name, is_service=True, remote=remote)

    # -- HTTP Basic -----------------------------------------------------------------------

    def _basic(self, raw_login: str, password: str, remote: str) -> Caller:
        login = " ".join(raw_login.split())  # as LDAP compares it: spaces are not significant
        if not login or len(login) > MAX_LOGIN:
            raise AuthFailure(401, "invalid credentials")
        key = login.casefold()
        remembered = self._recall(key, password)
        if remembered:
            return replace(remembered, username=login, remote=remote)
        with self._lock:
            account = self._accounts.get(key, key)
        self._refuse_if_locked(account, remote)
        if not password:  # never sent to the directory: an empty password binds anonymously
            self._failed(account, login, remote, "empty password")
        try:
            caller, account = self._bind(login, password, remote)
        except _WrongPassword as wrong:
            self._learn(key, wrong.account)
            self._failed(wrong.account, login, remote, wrong.why)
        except DirectoryError as exc:
            log.error("cannot check a login, the directory is unavailable: %s", exc)
            raise AuthFailure(503, "the directory cannot be reached to check the password",
                              retry_after=30) from exc
        self._learn(key, account)
        self._remember(key, password, caller)
        self._per_pair.clear(f"{account} {remote}")
        return caller

    def _bind(self, login: str, password: str, remote: str) -> tuple[Caller, str]:
        """Find the login's entry and bind as it; returns the caller and the entry's DN key.
        An unknown login still costs a bind (to a DN that does not exist), so that timing
        does not tell which logins exist."""
        settings = self._settings
        with open_directory(settings.directory) as directory:
            flavor = flavor_for(settings.directory.flavor, directory.info.flavor)
            smaps = [source_map(source, flavor, settings.directory.id_attribute)
                     for source in settings.sources if source.type == PrincipalType.INDIVIDUAL.value]
            name, attributes = self._login_search(directory, flavor, login)
            entries = []
            for smap in smaps:
                wanted = attributes if attributes is not None else smap.login_attributes
                if wanted and name:
                    search = f"(&{smap.filter}{any_equal(wanted, name)})"
                    # what the sync would not make a person (an AD room mailbox) cannot log in
                    entries += [(smap, entry) for entry in directory.read(smap.query(search), limit=2)
                                if not isinstance(map_entry(entry, smap), Skipped)]
            if len(entries) != 1:
                _decoy_bind(directory, [smap.base for smap in smaps], password)
                raise _WrongPassword(login.casefold(), "no such login" if not entries
                                     else "the login is ambiguous")
            smap, entry = entries[0]
            account = dn_key(entry.dn)
            try:
                directory.check_password(entry.dn, password)
            except DirectoryAuthError as exc:
                raise _WrongPassword(account, exc.message) from exc
        identifiers = entry.values(smap.id_attribute)
        pid = principal_id(identifier_uuid(smap.id_attribute, identifiers[0])) if identifiers else None
        log.info("login %s bound as %s", login, entry.dn)
        return Caller(username=login, principal_id=pid, remote=remote), account

    def _login_search(self, directory, flavor, login: str) -> tuple[str, tuple[str, ...] | None]:
        """What to look the login up by: ``DOMAIN\\name`` (AD) is ``name`` in the domain
        login attribute, when DOMAIN is this directory's NetBIOS domain (else nothing is
        looked up); any other login is itself, in every login attribute (None)."""
        domain, backslash, name = login.partition("\\")
        if not backslash or not flavor.domain_login_attribute:
            return login, None
        with self._lock:
            netbios = self._netbios.get(directory.url)
        if netbios is None:
            netbios = directory.netbios_domain() or ""
            if netbios:  # not found is asked again next time
                with self._lock:
                    self._netbios[directory.url] = netbios
        if not netbios or domain.strip().casefold() != netbios.casefold():
            log.info("login %r names domain %r; this directory's is %r", login, domain, netbios or "unknown")
            return "", ()
        return name.strip(), (flavor.domain_login_attribute,)

    def _learn(self, key: str, account: str) -> None:
        with self._lock:
            self._accounts[key] = account
            while len(self._accounts) > MAX_REMEMBERED:
                del self._accounts[next(iter(self._accounts))]

    def _recall(self, key: str, password: str) -> Caller | None:
        with self._lock:
            remembered = self._remembered.get(key)
        if remembered is None or remembered.expires < time.monotonic() or not password:
            return None
        digest = hashlib.scrypt(password.encode(), salt=remembered.salt, **_SCRYPT)
        return remembered.caller if hmac.compare_digest(digest, remembered.digest) else None

    def _remember(self, key: str, password: str, caller: Caller) -> None:
        ttl = self._settings.auth.cache_ttl
        if ttl <= 0:
            return
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        now = time.monotonic()
        with self._lock:
            self._remembered[key] = _Remembered(replace(caller, remote=""), salt, digest, now + ttl)
            if len(self._remembered) > MAX_REMEMBERED:
                for stale in [k for k, r in self._remembered.items() if r.expires < now]:
                    del self._remembered[stale]
                while len(self._remembered) > MAX_REMEMBERED:
                    del self._remembered[next(iter(self._remembered))]

    def _refuse_if_locked(self, account: str, remote: str) -> None:
        wait = max(self._per_pair.retry_after(f"{account} {remote}"),
                   self._per_account.retry_after(account), self._per_address.retry_after(remote))
        if wait:
            raise AuthFailure(429, "too many failed logins; try again later", retry_after=wait)

    def _failed(self, account: str, login: str, remote: str, why: str) -> NoReturn:
        self._per_pair.fail(f"{account} {remote}")
        self._per_account.fail(account)
        self._per_address.fail(remote)
        log.warning("failed login %r from %s: %s", login, remote or "?", why)
        raise AuthFailure(401, "invalid credentials")

    # -- access -----------------------------------------------------------------------------

    def _check_access(self, caller: Caller) -> None:
        server = self._settings.server
        if not server.jmap_enabled:
            raise AuthFailure(403, "JMAP is disabled on this server")
        rules = bool(server.allow_groups or server.deny_groups)
        own = self._store().principal(caller.principal_id) if caller.principal_id else None
        if own is not None and own.disabled:
            raise AuthFailure(403, "this account is disabled in the directory")
        if not rules:
            return
        if own is None:  # group rules apply, and nothing is known yet of this account's groups
            raise AuthFailure(403, "JMAP access depends on groups, and this account has not been "
                              "synced yet")
        store = self._store()
        groups = store.groups_of(caller.principal_id)
        if groups & store.ids_of_dns([dn_key(dn) for dn in server.deny_groups]):
            raise AuthFailure(403, "JMAP is not enabled for this account")
        if server.allow_groups and not groups & store.ids_of_dns([dn_key(dn) for dn in server.allow_groups]):
            raise AuthFailure(403, "JMAP is not enabled for this account")


def _decoy_bind(directory, bases: list[str], password: str) -> None:
    """A bind that must fail, costing what a real one costs."""
    if not bases:
        return
    with contextlib.suppress(DirectoryError):
        directory.check_password(f"cn={secrets.token_hex(8)},{bases[0]}", password)


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
        if item["name"] in tokens:
            raise ConfigError(f"{where}: the name {item['name']!r} is given twice")
        twin = next((t.name for t in tokens.values() if t.digest == digest), None)
        if twin is not None:
            raise ConfigError(f"{where} ({item['name']}): the same secret as {twin!r}; a token "
                              "must name one client")
        tokens[item["name"]] = Token(item["name"], digest, frozenset(scopes))
    return tokens


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else None."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
