"""Connecting and binding with ldap3: URL failover, ldaps:// and StartTLS with certificate
verification on by default, timeouts, and the translation of every ldap3 exception."""

from __future__ import annotations

import logging
import math
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as lx

from bridge.addresses import is_loopback
from bridge.config import Values
from bridge.directory.tls import tls_for
from bridge.errors import (
    ConfigError,
    DirectoryAuthError,
    DirectoryError,
    DirectoryTimeout,
    DirectoryTLSError,
    DirectoryUnavailable,
)

log = logging.getLogger(__name__)

STRONGER_AUTH_REQUIRED = 8  # AD and Samba: "simple bind needs transport encryption"
CONFIDENTIALITY_REQUIRED = 13
INVALID_CREDENTIALS = 49
SERVER_NOT_READY = frozenset({51, 52, 53})  # busy, unavailable, unwilling to perform
T = TypeVar("T")
_LOST = (lx.LDAPSocketReceiveError, lx.LDAPSocketSendError, lx.LDAPSessionTerminatedByServerError,
         lx.LDAPSocketCloseError, lx.LDAPCommunicationError)
_TLS = (lx.LDAPCertificateError, lx.LDAPStartTLSError, lx.LDAPSSLConfigurationError,
        lx.LDAPSSLNotSupportedError, ssl.SSLError)
_TLS_WORDS = ("ssl", "certificate", "tls", "handshake")
# Active Directory's reason for refusing a bind with 49, as "data 533" in the message.
_AD_REFUSALS = {"525": "no such user", "52e": "wrong password", "530": "not permitted at this time",
                "531": "not permitted from this workstation", "532": "password expired",
                "533": "account disabled", "701": "account expired",
                "773": "password must be changed", "775": "account locked out"}
_AD_DATA = re.compile(r"\bdata ([0-9a-f]{3,8})\b", re.IGNORECASE)
_NOISE = re.compile(r"\s*\(_ssl\.c:\d+\)|socket ssl wrapping error: |wrap socket error: ")


@contextmanager
def translated(url: str, doing: str) -> Iterator[None]:
    """Re-raise anything ldap3 or the socket layer throws as a DirectoryError."""
    try:
        yield
    except _TLS as exc:
        raise DirectoryTLSError(f"{doing}: {_reason(exc)}", url=url) from exc
    except lx.LDAPResponseTimeoutError as exc:
        raise DirectoryTimeout(f"{doing}: no answer within the response timeout", url=url) from exc
    except lx.LDAPSocketOpenError as exc:
        raise _open_error(exc, url, doing) from exc
    except _LOST as exc:
        if "timed out" in str(exc):
            raise DirectoryTimeout(f"{doing}: no answer within the response timeout", url=url) from exc
        raise DirectoryUnavailable(f"{doing}: connection lost ({_reason(exc)})", url=url) from exc
    except lx.LDAPException as exc:
        raise DirectoryError(f"{doing}: {_reason(exc)}", url=url) from exc
    except OSError as exc:
        raise DirectoryUnavailable(f"{doing}: {exc}", url=url) from exc


def _open_error(exc: lx.LDAPSocketOpenError, url: str, doing: str) -> DirectoryError:
    reason = _reason(exc)
    if any(word in reason.lower() for word in _TLS_WORDS):
        return DirectoryTLSError(f"{doing}: {reason}", url=url)
    if "timed out" in reason:
        return DirectoryTimeout(f"{doing}: no answer within the connect timeout", url=url)
    return DirectoryUnavailable(f"{doing}: {reason}", url=url)


def _reason(exc: BaseException) -> str:
    """A readable reason from an ldap3 exception, whose text often embeds reprs: lists of
    (exception, address) tuples and ``"('...',)"`` wrappers."""
    args = exc.args[0] if exc.args else type(exc).__name__
    if isinstance(args, list) and args and isinstance(args[0], tuple):
        return "; ".join(_reason(inner) for inner, _address in args)
    text = _NOISE.sub("", str(args)).strip().strip("(),'\" ").rstrip(".")
    if "mismatch" in text:
        text += "; connect by a name the certificate lists"
    elif "CERTIFICATE_VERIFY_FAILED" in text:
        text += "; is ca_file the CA that signed the directory's certificate?"
    return text


def connect(settings: Values, probe: Callable[[ldap3.Connection, str], T]) -> tuple[ldap3.Connection, str, T]:
    """Bind to the first URL that works and run ``probe`` on it (reading the rootDSE);
    a server that is down, busy, unreachable or fails the probe makes way for the next.
    Returns the connection, its URL and what the probe returned."""
    _check(settings)
    failures: list[DirectoryError] = []
    for url in settings.urls:
        connection = None
        try:
            connection = _connect(url, settings)
            return connection, url, probe(connection, url)
        except DirectoryAuthError:
            if connection is not None:
                disconnect(connection)
            raise
        except DirectoryError as exc:
            if connection is not None:
                disconnect(connection)
            failures.append(exc)
            if len(settings.urls) > 1:
                log.warning("directory %s unusable: %s", url, exc.message)
    if len(failures) == 1:
        raise failures[0]
    raise DirectoryUnavailable("no directory server usable: " + "; ".join(map(str, failures)))


def _check(settings: Values) -> None:
    if settings.bind_dn and not settings.bind_password:
        raise ConfigError("bind_dn is set but bind_password is empty; a simple bind with an "
                          "empty password is an unauthenticated bind", section="directory",
                          option="bind_password")
    secure = {url.lower().startswith("ldaps://") or settings.start_tls for url in settings.urls}
    if len(secure) > 1:
        raise ConfigError("urls mix ldaps:// and plain ldap://: a certificate failure on one would "
                          "fall back to unencrypted LDAP; use ldaps:// throughout or set start_tls",
                          section="directory", option="urls", value=list(settings.urls))


def bind_as(settings: Values, url: str, dn: str, password: str) -> None:
    """Check a user's password: bind as ``dn`` on ``url`` with the configured TLS, then
    unbind. An empty password is refused before any bind: a simple bind with an empty
    password is an unauthenticated bind, which many servers accept."""
    if not password:
        raise DirectoryAuthError("empty password", url=url)
    disconnect(_connect(url, settings, dn, password))


def _connect(url: str, settings: Values, bind_dn: str | None = None,
             password: str | None = None) -> ldap3.Connection:
    """A bound connection to ``url``: as the service account, or as ``bind_dn``."""
    if bind_dn is None:
        bind_dn, password = settings.bind_dn, settings.bind_password
    parts = urlsplit(url)
    use_ssl = parts.scheme.lower() == "ldaps"
    host = parts.hostname or ""
    wants_tls = use_ssl or settings.start_tls
    tls = tls_for(host, settings.ca_file, settings.tls_insecure_skip_verify) if wants_tls else None
    server = ldap3.Server(host, port=parts.port or (636 if use_ssl else 389), use_ssl=use_ssl, tls=tls,
                          connect_timeout=_whole_seconds(settings.connect_timeout), get_info=ldap3.NONE)
    if bind_dn and not wants_tls and not is_loopback(host):
        log.warning("binding as %s over unencrypted %s; set start_tls or use ldaps://", bind_dn, url)
    connection = ldap3.Connection(
        server, user=bind_dn or None, password=password or None,
        authentication=ldap3.SIMPLE if bind_dn else ldap3.ANONYMOUS,
        read_only=True, raise_exceptions=False, auto_referrals=False, check_names=False,
        receive_timeout=_whole_seconds(settings.response_timeout), return_empty_attributes=False,
        auto_range=False)  # ranges.py completes ranged attributes, strictly
    try:
        with translated(url, "connecting"):
            connection.open()
        if settings.start_tls and not use_ssl:
            with translated(url, "StartTLS"):
                if not connection.start_tls():
                    raise DirectoryTLSError("StartTLS was refused", url=url)
        with translated(url, "binding"):
            bound = connection.bind()
        if not bound:
            raise _bind_error(connection.result, url, bind_dn)
    except DirectoryError:
        disconnect(connection)
        raise
    return connection


def _bind_error(result: dict, url: str, bind_dn: str) -> DirectoryError:
    """49 and the like are final (another replica would say the same); busy, unavailable
    and unwilling servers make way for the next URL."""
    result = result or {}
    code = result.get("result")
    message = result.get("message") or result.get("description") or "refused"
    if code == INVALID_CREDENTIALS:
        data = _AD_DATA.search(message)
        why = _AD_REFUSALS.get(data[1].lower(), f"AD reason {data[1]}") if data else ""
        return DirectoryAuthError(f"bind as {bind_dn or 'anonymous'} refused: invalid credentials"
                                  + (f" ({why})" if why else ""), url=url)
    if code in (CONFIDENTIALITY_REQUIRED, STRONGER_AUTH_REQUIRED):
        return DirectoryAuthError("the server requires TLS to bind: set start_tls = true or use "
                                  "ldaps://", url=url)
    if code in SERVER_NOT_READY:
        return DirectoryUnavailable(f"bind refused: {message} (result {code})", url=url)
    return DirectoryAuthError(f"bind refused: {message} (result {code})", url=url)


def disconnect(connection: ldap3.Connection) -> None:
    """Unbind and close; a failure here cannot lose data, so it is only logged."""
    try:
        if not connection.closed:
            connection.unbind()
    except (lx.LDAPException, OSError):
        log.debug("unbind failed", exc_info=True)


def _whole_seconds(seconds: float) -> int:
    """ldap3 packs timeouts into socket options as whole seconds."""
    return max(1, math.ceil(seconds))
