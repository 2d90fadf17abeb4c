"""Connecting and binding with ldap3: URL failover, ldaps:// and StartTLS with certificate
verification on by default, timeouts, and the translation of every ldap3 exception."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as lx

from bridge.config import Values
from bridge.errors import (
    ConfigError,
    DirectoryAuthError,
    DirectoryError,
    DirectoryTimeout,
    DirectoryTLSError,
    DirectoryUnavailable,
)

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = 49
_LOST = (lx.LDAPSocketReceiveError, lx.LDAPSocketSendError, lx.LDAPSessionTerminatedByServerError,
         lx.LDAPSocketCloseError, lx.LDAPCommunicationError)
_TLS = (lx.LDAPCertificateError, lx.LDAPStartTLSError, lx.LDAPSSLConfigurationError,
        lx.LDAPSSLNotSupportedError, ssl.SSLError)
_TLS_WORDS = ("ssl", "certificate", "tls", "handshake")
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
    (exception, address) tuples, ``"('...',)"`` wrappers, certificate dicts."""
    args = exc.args[0] if exc.args else type(exc).__name__
    if isinstance(args, list) and args and isinstance(args[0], tuple):
        return "; ".join(_reason(inner) for inner, _address in args)
    text = _NOISE.sub("", str(args)).strip().strip("(),'\" ")
    if "doesn't match any name in" in text:
        host = re.search(r"any name in \['([^']*)'", text)
        names = re.findall(r"\('(?:DNS|IP Address)', '([^']+)'\)", text)
        return (f"the server certificate is not valid for {host.group(1) if host else 'this host'} "
                f"(it names {', '.join(names) or 'no subjectAltName'})")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        text += "; is ca_file the CA that signed the directory's certificate?"
    return text


def connect(settings: Values) -> tuple[ldap3.Connection, str]:
    """Bind to the first URL that works; returns the connection and its URL."""
    if settings.bind_dn and not settings.bind_password:
        raise ConfigError("bind_dn is set but bind_password is empty; a simple bind with an "
                          "empty password is an unauthenticated bind", section="directory",
                          option="bind_password")
    failures: list[DirectoryError] = []
    for url in settings.urls:
        try:
            return _connect(url, settings), url
        except DirectoryAuthError:
            raise
        except DirectoryError as exc:
            failures.append(exc)
            if len(settings.urls) > 1:
                log.warning("directory %s unusable: %s", url, exc.message)
    if len(failures) == 1:
        raise failures[0]
    raise DirectoryUnavailable("no directory server usable: " + "; ".join(map(str, failures)))


def _connect(url: str, settings: Values) -> ldap3.Connection:
    parts = urlsplit(url)
    use_ssl = parts.scheme.lower() == "ldaps"
    host = parts.hostname or ""
    wants_tls = use_ssl or settings.start_tls
    server = ldap3.Server(host, port=parts.port or (636 if use_ssl else 389), use_ssl=use_ssl,
                          tls=_tls(settings, host) if wants_tls else None,
                          connect_timeout=_whole_seconds(settings.connect_timeout), get_info=ldap3.NONE)
    if settings.bind_dn and not wants_tls and not _is_loopback(host):
        log.warning("binding as %s over unencrypted %s; set start_tls or use ldaps://",
                    settings.bind_dn, url)
    connection = ldap3.Connection(
        server, user=settings.bind_dn or None, password=settings.bind_password or None,
        authentication=ldap3.SIMPLE if settings.bind_dn else ldap3.ANONYMOUS,
        read_only=True, raise_exceptions=False, auto_referrals=False, check_names=False,
        receive_timeout=_whole_seconds(settings.response_timeout), return_empty_attributes=False)
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
            raise _bind_error(connection.result, url, settings.bind_dn)
    except DirectoryError:
        disconnect(connection)
        raise
    return connection


def _tls(settings: Values, host: str) -> ldap3.Tls:
    insecure = settings.tls_insecure_skip_verify
    if insecure:
        log.warning("tls_insecure_skip_verify is set: the directory's certificate is NOT checked")
    return ldap3.Tls(validate=ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED,
                     ca_certs_file=settings.ca_file or None,
                     sni=None if _is_ip(host) else host)


def _bind_error(result: dict, url: str, bind_dn: str) -> DirectoryError:
    code = (result or {}).get("result")
    message = (result or {}).get("message") or (result or {}).get("description") or "refused"
    if code == INVALID_CREDENTIALS:
        who = bind_dn or "anonymous"
        return DirectoryAuthError(f"bind as {who} refused: invalid credentials", url=url)
    return DirectoryAuthError(f"bind refused: {message} (result {code})", url=url)


def disconnect(connection: ldap3.Connection) -> None:
    """Unbind and close; a failure here cannot lose data, so it is only logged."""
    try:
        if not connection.closed:
            connection.unbind()
    except (lx.LDAPException, OSError):
        log.debug("unbind failed", exc_info=True)


def _whole_seconds(seconds: float) -> int | None:
    """ldap3 packs timeouts into socket options as whole seconds; 0 means none."""
    return max(1, math.ceil(seconds)) if seconds else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)
