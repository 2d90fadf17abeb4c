"""Fixtures: a real slapd per test, one Samba AD DC per run, a TLS test CA, and bridge
settings written as TOML."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from bridge import config, sync
from bridge.store import Store
from bridge.web import create_app
from tests.support import ad_seed, ldif
from tests.support.jmap import Jmap, basic, bearer
from tests.support.samba import SambaDC, one_at_a_time, require_samba
from tests.support.slapd import (
    READER_DN,
    READER_PASSWORD,
    SLAPD,
    Slapd,
    SlapdMissing,
    TlsFiles,
    make_tls_files,
    require_slapd,
)

SIZE_LIMIT = 10  # below the number of people, so every sync has to page


def toml_text(tables: dict) -> str:
    """A tiny TOML writer for test configs (strings, numbers, booleans, lists, tables)."""
    lines: list[str] = []

    def emit(prefix: str, table: dict) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in scalars.items())
        for key, value in table.items():
            if isinstance(value, dict):
                emit(f"{prefix}.{key}" if prefix else key, value)

    emit("", tables)
    return "\n".join(lines) + "\n"


def standard_sources() -> dict:
    return {
        "people": {"type": "individual", "base": ldif.PEOPLE, "disabled_filter": "(employeeType=former)",
                   "time_zone_attributes": ["l"]},
        "groups": {"type": "group", "base": ldif.GROUPS},
        "rooms": {"type": "location", "base": ldif.ROOMS},
        "equipment": {"type": "resource", "base": ldif.EQUIPMENT},
    }


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> dict[str, TlsFiles]:
    """``good``: a CA and a certificate for 127.0.0.1; ``other``: an unrelated CA;
    ``misnamed``: a certificate of the good kind for another host name."""
    base = tmp_path_factory.mktemp("tls")
    return {"good": make_tls_files(base, "good"), "other": make_tls_files(base, "other"),
            "misnamed": make_tls_files(base, "misnamed", hosts=("DNS:ldap.elsewhere.test",))}


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory) -> SambaDC:
    """The test domain (tests/support/ad_seed.py), provisioned once per run. Tests that
    change it make and remove their own entries under their own OU."""
    with one_at_a_time():
        require_samba()
        workdir = tmp_path_factory.mktemp("samba")
        dc = SambaDC(workdir, make_tls_files(workdir / "tls", "domain",
                                             hosts=("IP:127.0.0.1", "DNS:dc1.example.test")))
        dc.provision()
        adds, changes = ad_seed.seed_ldif()
        dc.ldb("ldbadd", adds)
        dc.ldb("ldbmodify", changes)
        try:
            dc.start()
            yield dc
        finally:
            dc.stop()


@pytest.fixture
def slapd(tmp_path) -> Slapd:
    server = Slapd(tmp_path / "slapd", size_limit=SIZE_LIMIT)
    server.load(ldif.standard_directory())
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def make_settings(tmp_path) -> Callable[..., config.Settings]:
    """Write a bridge.toml for ``server`` and load it; keyword tables add to or override
    its sections (``jmap={"show_disabled": True}``)."""

    def make(slapd: Slapd, /, *, sources: dict | None = None, **sections: dict) -> config.Settings:
        tables = {
            "directory": {"urls": [slapd.url], "bind_dn": READER_DN,
                          "bind_password": READER_PASSWORD, "page_size": 5,
                          **sections.pop("directory", {})},
            "store": {"path": str(tmp_path / "bridge.db"), **sections.pop("store", {})},
            **sections,
            "sources": standard_sources() if sources is None else sources,
        }
        path = tmp_path / "bridge.toml"
        path.write_text(toml_text(tables))
        return config.load(str(path), environ={})

    return make


@pytest.fixture
def settings(slapd, make_settings) -> config.Settings:
    return make_settings(slapd)


@pytest.fixture
def synced(settings) -> config.Settings:
    """The standard directory, synced once into the store."""
    sync.run(settings)
    return settings


@pytest.fixture
def client(synced):
    with TestClient(create_app(synced)) as test_client:
        yield test_client


SERVICE_TOKEN = "service-token-0123456789"


class StoreApi:
    """The app over a store the test fills itself (no directory): a service client with a
    bearer token, and ``apply`` to stage a complete snapshot."""

    def __init__(self, tmp_path, **sections) -> None:
        tokens = tmp_path / "tokens.toml"
        tokens.write_text(f'[[token]]\nname = "svc"\ntoken = "{SERVICE_TOKEN}"\n')
        path = tmp_path / "api.toml"
        path.write_text(toml_text({"store": {"path": str(tmp_path / "api.db")},
                                   "server": {"token_file": str(tokens)}, **sections}))
        self.settings = config.load(str(path), environ={})
        self.store = Store.open(self.settings.store.path)
        self.client = TestClient(create_app(self.settings))
        self.jmap = Jmap(self.client, bearer(SERVICE_TOKEN))

    def apply(self, entries, **kwargs) -> None:
        with self.store.snapshot() as snapshot:
            for entry in entries:
                snapshot.add(entry)
            snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full",
                                               "seen": len(entries), "skipped": 0, "warnings": 0},
                           **kwargs)


@pytest.fixture
def store_api(tmp_path) -> StoreApi:
    api = StoreApi(tmp_path)
    yield api
    api.store.close()


@pytest.fixture
def alice(client) -> Jmap:
    return Jmap(client, basic("alice", ldif.PASSWORDS["alice"]))


@pytest.fixture
def bob(client) -> Jmap:
    return Jmap(client, basic("bob", ldif.PASSWORDS["bob"]))


def pytest_report_header() -> list[str]:
    try:
        require_slapd()
    except SlapdMissing as exc:
        lines = [f"slapd: NOT INSTALLED, every directory test will fail ({exc})"]
    else:
        version = subprocess.run([SLAPD, "-VV"], capture_output=True, text=True).stderr.splitlines()
        lines = [f"slapd: {version[0].strip() if version else SLAPD}"]
    try:
        samba = subprocess.run(["samba", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        samba = "NOT INSTALLED, every Active Directory test will fail"
    return [*lines, f"samba: {samba}"]
