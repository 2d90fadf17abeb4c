"""A throw-away OpenLDAP slapd on 127.0.0.1 for tests and benchmarks: generated config,
LDIF loaded with slapadd, started in the foreground on a free port, stopped afterwards.

Requires Debian's `slapd` package (/usr/sbin/slapd, /usr/sbin/slapadd); .ci/run installs
it. Nothing here is skipped when slapd is missing: a missing slapd is a loud failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SLAPD = os.environ.get("SLAPD", "/usr/sbin/slapd")
SLAPADD = os.environ.get("SLAPADD", "/usr/sbin/slapadd")
SCHEMA_DIR = Path(os.environ.get("SLAPD_SCHEMA_DIR", "/etc/ldap/schema"))
MODULE_DIR = os.environ.get("SLAPD_MODULE_DIR", "/usr/lib/ldap")

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
READER_DN = f"cn=bridge,{SUFFIX}"
READER_PASSWORD = "reader-secret"


class SlapdMissing(RuntimeError):
    """slapd is not installed: install Debian's slapd package (as .ci/run does)."""


def require_slapd() -> None:
    for binary in (SLAPD, SLAPADD):
        if not os.access(binary, os.X_OK):
            raise SlapdMissing(f"{binary} not found: apt-get install slapd ldap-utils "
                               "(.ci/run installs them)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


class Slapd:
    """One slapd with one mdb database under ``SUFFIX``, in ``workdir``."""

    def __init__(self, workdir: Path, *, size_limit: int | None = None,
                 tls: TlsFiles | None = None, modules: tuple[str, ...] = (),
                 syncprov: int | None = None) -> None:
        """``syncprov``: load the syncprov overlay (RFC 4533) with a session log of that
        many deletions (0: none, so every refresh runs a present phase)."""
        require_slapd()
        self.workdir = Path(workdir)
        self.size_limit = size_limit
        self.tls = tls
        self.modules = (*modules, "syncprov") if syncprov is not None else modules
        self.syncprov = syncprov
        self.hidden: tuple[str, ...] = ()  # attributes the service account may not read
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.process: subprocess.Popen | None = None
        (self.workdir / "db").mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "slapd.conf"
        self.config.write_text(self._config_text())

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def _config_text(self) -> str:
        schemas = "\n".join(f"include {SCHEMA_DIR / name}.schema"
                            for name in ("core", "cosine", "inetorgperson", "nis"))
        modules = "\n".join(f"moduleload {m}" for m in ("back_mdb", "ppolicy", *self.modules))
        limits = ""
        if self.size_limit is not None:
            # the soft and hard limits stop plain searches; paged searches may go on
            limits = (f"sizelimit size.soft={self.size_limit} size.hard={self.size_limit} "
                      "size.prtotal=unlimited")
        tls = ""
        if self.tls:
            tls = (f"TLSCACertificateFile {self.tls.ca}\nTLSCertificateFile {self.tls.cert}\n"
                   f"TLSCertificateKeyFile {self.tls.key}")
        return f"""{schemas}
modulepath {MODULE_DIR}
{modules}
pidfile {self.workdir / 'slapd.pid'}
{tls}
{limits}
database mdb
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {self.workdir / 'db'}
maxsize 1073741824
{self._syncprov_text()}
overlay ppolicy
access to attrs=userPassword by self write by anonymous auth by * none
{self._hidden_text()}
access to * by dn.exact="{READER_DN}" read by * read
"""

    def _hidden_text(self) -> str:
        if not self.hidden:
            return ""
        return f'access to attrs={",".join(self.hidden)} by dn.exact="{READER_DN}" none by * read'

    def hide_from_the_reader(self, *attributes: str) -> None:
        """Restart with an ACL that hides these attributes from the bridge's service account,
        as a directory administrator's change of rights would."""
        self.stop()
        self.hidden = attributes
        self.config.write_text(self._config_text())
        self.start()

    def _syncprov_text(self) -> str:
        if self.syncprov is None:
            return ""
        log = f"syncprov-sessionlog {self.syncprov}" if self.syncprov else ""
        # a refresh's present phase is a search of the whole source: no size limit for it
        return f"""index entryCSN,entryUUID eq
limits dn.exact="{READER_DN}" size=unlimited
overlay syncprov
{log}"""

    def load(self, ldif: str) -> None:
        """Load entries offline (before start); slapadd assigns entryUUID and friends."""
        path = self.workdir / "load.ldif"
        path.write_text(ldif)
        subprocess.run([SLAPADD, "-f", str(self.config), "-l", str(path)], check=True,
                       capture_output=True, text=True)

    def start(self) -> Slapd:
        urls = [f"ldap://127.0.0.1:{self.port}/"]
        if self.tls:
            urls.append(f"ldaps://127.0.0.1:{self.tls_port}/")
        log = open(self.workdir / "slapd.log", "ab")  # noqa: SIM115 (owned by the process)
        self.process = subprocess.Popen([SLAPD, "-f", str(self.config), "-h", " ".join(urls), "-d", "0"],
                                        stdout=log, stderr=log)
        log.close()
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}: "
                                   f"{(self.workdir / 'slapd.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("slapd did not start listening within 15 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop abruptly, as a crash or a network cut would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def admin(self):
        """An ldap3 connection bound as the rootdn, for changing the directory in tests."""
        import ldap3
        return ldap3.Connection(ldap3.Server("127.0.0.1", port=self.port), ADMIN_DN,
                                ADMIN_PASSWORD, auto_bind=True, raise_exceptions=True)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir / "db", ignore_errors=True)


def make_tls_files(directory: Path, name: str = "test",
                   hosts: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")) -> TlsFiles:
    """A CA and a server certificate it signs, for the given subjectAltNames (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    # extensions as a real CA has them: Python 3.13 verifies with VERIFY_X509_STRICT
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", "2", "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN={name} server")
    ext.write_text(f"subjectAltName={','.join(hosts)}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    key.chmod(0o644)
    return TlsFiles(ca=ca_cert, cert=cert, key=key)
