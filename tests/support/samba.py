"""A throw-away Samba Active Directory domain controller on loopback, for the AD tests.

Follows ../shared/recipes/samba-ad.md: provision a domain into a private directory (no
system smb.conf is read or written), extend the schema with the two Exchange attributes
rooms are recognised by, seed it with LDIF through ``ldbadd``, and run ``samba`` with only
its LDAP server on 127.0.0.1 (ports 389 and 636: root is needed). TLS uses a domain CA the
tests make, as an enterprise CA would issue the DC's certificate. One domain per test run;
``--maximum-runtime`` stops a forgotten one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.slapd import TlsFiles

REALM = "EXAMPLE.TEST"
NETBIOS_DOMAIN = "EXAMPLE"
BASE = "DC=example,DC=test"
CONFIGURATION = f"CN=Configuration,{BASE}"
ADMIN = f"Administrator@{REALM}"
ADMIN_PASSWORD = "Passw0rd!x"
USER_PASSWORD = "Passw0rd!u"
LDAP_PORT, LDAPS_PORT = 389, 636
PROGRAMS = ("samba", "samba-tool", "ldbadd", "ldbmodify")
MAX_RUNTIME = 3600

# Two Exchange attributes, enough to mark room and equipment mailboxes as Exchange does.
# The OIDs are under 1.3.6.1.4.1.32473, the private enterprise number for documentation
# (RFC 5612), not Microsoft's; filters and the bridge only see the lDAPDisplayName.
EXCHANGE_SCHEMA = f"""\
dn: CN=ms-Exch-Recipient-Type-Details,CN=Schema,{CONFIGURATION}
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Recipient-Type-Details
lDAPDisplayName: msExchRecipientTypeDetails
attributeID: 1.3.6.1.4.1.32473.1.1
attributeSyntax: 2.5.5.16
oMSyntax: 65
isSingleValued: TRUE
schemaIDGUID:: 8k8Y7hK5QUG2m0nBFvQpWg==

dn: CN=ms-Exch-Resource-Meta-Data,CN=Schema,{CONFIGURATION}
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Resource-Meta-Data
lDAPDisplayName: msExchResourceMetaData
attributeID: 1.3.6.1.4.1.32473.1.2
attributeSyntax: 2.5.5.12
oMSyntax: 64
isSingleValued: FALSE
schemaIDGUID:: 8k8Y7hK5QUG2m0nBFvQpWw==
"""
EXCHANGE_ON_USER = f"""\
dn: CN=User,CN=Schema,{CONFIGURATION}
changetype: modify
add: mayContain
mayContain: msExchRecipientTypeDetails
mayContain: msExchResourceMetaData
"""


LOCK = Path(os.environ.get("SAMBA_TEST_LOCK", "/tmp/bridge-samba-dc.lock"))


@contextmanager
def one_at_a_time() -> Iterator[None]:
    """Hold the machine's one Samba DC slot (its ports are fixed): a second test run
    waits here for the first instead of failing on a port in use."""
    with LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another test run's Samba DC to finish ({LOCK})", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def require_samba() -> None:
    """Fail loudly (never skip) when the DC cannot run here."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        raise RuntimeError(f"Samba AD DC programs missing ({', '.join(missing)}): install the Debian "
                           "packages samba-ad-dc and ldb-tools (.ci/run does)")
    if os.geteuid() != 0:
        raise RuntimeError("the Samba AD DC tests need root: samba's LDAP server binds ports 389 and 636")
    for port in (LDAP_PORT, LDAPS_PORT):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(f"127.0.0.1:{port} is already in use (a samba left running? "
                                   "kill it, the tests start their own)")


class SambaDC:
    def __init__(self, workdir: Path, tls: TlsFiles) -> None:
        self.workdir = workdir
        self.tls = tls
        self.conf = workdir / "etc" / "smb.conf"
        self.sam = workdir / "private" / "sam.ldb"
        self.process: subprocess.Popen | None = None

    url = f"ldap://127.0.0.1:{LDAP_PORT}"
    ldaps_url = f"ldaps://127.0.0.1:{LDAPS_PORT}"

    def provision(self) -> None:
        for sub in ("run", "log", "cache"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        _run("samba-tool", "domain", "provision", f"--realm={REALM}", f"--domain={NETBIOS_DOMAIN}",
             "--server-role=dc", "--dns-backend=NONE", f"--adminpass={ADMIN_PASSWORD}",
             f"--targetdir={self.workdir}", "--use-rfc2307", "--backend-store=tdb", "--host-name=dc1",
             "--option=interfaces=lo", "--option=bind interfaces only=yes",
             "--option=server services=ldap", f"--option=log file={self.workdir}/log/samba.log",
             f"--option=pid directory={self.workdir}/run")
        # provision drops options it does not know to keep, so these go in afterwards
        extra = {"ldap server require strong auth": "no", "tls enabled": "yes",
                 "tls keyfile": self.tls.key, "tls certfile": self.tls.cert, "tls cafile": self.tls.ca}
        text = self.conf.read_text()
        lines = "".join(f"\t{option} = {value}\n" for option, value in extra.items())
        self.conf.write_text(text.replace("[global]\n", "[global]\n" + lines, 1))
        self.tls.key.chmod(0o600)  # samba refuses a key others can read
        schema_change = "--option=dsdb:schema update allowed=true"
        self.ldb("ldbadd", EXCHANGE_SCHEMA, schema_change)
        self.ldb("ldbmodify", EXCHANGE_ON_USER, schema_change)

    def ldb(self, program: str, ldif: str, *options: str) -> None:
        """Apply LDIF straight to the database (the full dsdb stack runs: GUIDs, SIDs,
        backlinks, password hashes), with samba running or not."""
        path = self.workdir / "change.ldif"
        path.write_text(ldif)
        _run(program, "-H", str(self.sam), str(path), *options)

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["samba", "-i", "-M", "single", "-s", str(self.conf), f"--maximum-runtime={MAX_RUNTIME}"],
            stdout=(self.workdir / "log" / "stdout.log").open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"samba exited with {self.process.returncode}; see "
                                   f"{self.workdir}/log/stdout.log")
            if time.monotonic() > deadline:
                raise RuntimeError("samba did not answer LDAP within 60 s")
            time.sleep(0.1)

    def _answers(self) -> bool:
        result = subprocess.run(["ldapsearch", "-x", "-H", self.url, "-s", "base", "-b", "",
                                 "defaultNamingContext"], capture_output=True)
        return result.returncode == 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def admin(self):
        """An ldap3 connection bound as the domain administrator (for test changes)."""
        import ldap3
        server = ldap3.Server("127.0.0.1", port=LDAP_PORT, get_info=ldap3.NONE)
        # auto_range off: a ranged answer stays as the server sent it
        return ldap3.Connection(server, ADMIN, ADMIN_PASSWORD, auto_bind=True, raise_exceptions=True,
                                check_names=False, auto_referrals=False, auto_range=False,
                                return_empty_attributes=False)


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({result.returncode}):\n"
                           f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
