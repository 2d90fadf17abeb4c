"""TLS for ldaps:// and StartTLS, verified by Python's own SSLContext.

ldap3 (2.9) turns its SSLContext's host name check off and matches names itself with
``ssl.match_hostname``, which Python 3.12 removed; its fallback rejects IP addresses. So
the socket is wrapped here instead: chain and host name (DNS name or IP address) checked
by OpenSSL, TLS 1.2 at least, against ``ca_file`` or the system store.
"""

from __future__ import annotations

import logging
import ssl

import ldap3

log = logging.getLogger(__name__)


class VerifiedTls(ldap3.Tls):
    """ldap3.Tls whose handshake checks the certificate and the host name, unless
    ``verify`` is False (the explicitly named insecure opt-out)."""

    def __init__(self, host: str, ca_file: str = "", verify: bool = True) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
                         ca_certs_file=ca_file or None)
        self.host = host
        self.verify = verify

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_certs_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def wrap_socket(self, connection, do_handshake: bool = False) -> None:  # ldap3's hook
        connection.socket = self.context().wrap_socket(
            connection.socket, server_side=False, do_handshake_on_connect=do_handshake,
            server_hostname=self.host)


def tls_for(host: str, ca_file: str, insecure: bool) -> VerifiedTls:
    if insecure:
        log.warning("tls_insecure_skip_verify is set: the directory's certificate is NOT checked")
    return VerifiedTls(host, ca_file, verify=not insecure)
