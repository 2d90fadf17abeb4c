"""TLS to a real slapd: StartTLS and ldaps:// verify the certificate by default, against
ca_file or the system store, and refuse a wrong CA or a wrong host name."""

from __future__ import annotations

import pytest

from bridge import sync
from bridge.check import check
from bridge.directory import open_directory
from bridge.errors import ConfigError, DirectoryTLSError
from tests.support import ldif
from tests.support.slapd import Slapd


def tls_slapd(tmp_path, files) -> Slapd:
    server = Slapd(tmp_path / "tls-slapd", tls=files)
    server.load(ldif.standard_directory(extra_people=0))
    return server.start()


@pytest.fixture
def good_slapd(tmp_path, tls_files):
    server = tls_slapd(tmp_path, tls_files["good"])
    yield server
    server.cleanup()


def test_start_tls_with_the_right_ca_syncs(good_slapd, make_settings, tls_files):
    settings = make_settings(good_slapd, directory={"start_tls": True, "ca_file": str(tls_files["good"].ca)})

    assert sync.run(settings).created == 14
    assert check(settings).tls == "StartTLS, certificate verified"


def test_ldaps_with_the_right_ca_syncs(good_slapd, make_settings, tls_files):
    settings = make_settings(good_slapd, directory={"urls": [good_slapd.ldaps_url],
                                                    "ca_file": str(tls_files["good"].ca)})

    assert sync.run(settings).created == 14


@pytest.mark.parametrize("scheme", ["start_tls", "ldaps"])
def test_a_certificate_from_another_ca_is_refused(good_slapd, make_settings, tls_files, scheme):
    directory = {"ca_file": str(tls_files["other"].ca)}
    directory |= {"start_tls": True} if scheme == "start_tls" else {"urls": [good_slapd.ldaps_url]}
    settings = make_settings(good_slapd, directory=directory)

    with pytest.raises(DirectoryTLSError, match="certificate verify failed"):
        sync.run(settings)


def test_verification_is_on_by_default_against_the_system_store(good_slapd, make_settings):
    settings = make_settings(good_slapd, directory={"urls": [good_slapd.ldaps_url]})

    with pytest.raises(DirectoryTLSError, match="certificate verify failed"), \
            open_directory(settings.directory):
        pass


@pytest.mark.parametrize("scheme", ["start_tls", "ldaps"])
def test_a_certificate_for_another_host_name_is_refused(tmp_path, make_settings, tls_files, scheme):
    server = tls_slapd(tmp_path, tls_files["misnamed"])
    directory = {"ca_file": str(tls_files["misnamed"].ca)}
    directory |= {"start_tls": True} if scheme == "start_tls" else {"urls": [server.ldaps_url]}
    try:
        settings = make_settings(server, directory=directory)
        with pytest.raises(DirectoryTLSError, match="not valid for '127.0.0.1'; connect by a name"):
            sync.run(settings)
    finally:
        server.cleanup()


def test_a_certificate_naming_the_host_verifies_by_name_too(good_slapd, make_settings, tls_files):
    url = good_slapd.ldaps_url.replace("127.0.0.1", "localhost")
    settings = make_settings(good_slapd, directory={"urls": [url], "ca_file": str(tls_files["good"].ca)})

    assert sync.run(settings).outcome == "ok"


def test_a_url_list_mixing_tls_and_plain_ldap_is_refused(good_slapd, make_settings, tls_files):
    settings = make_settings(good_slapd, directory={"urls": [good_slapd.ldaps_url, good_slapd.url],
                                                    "ca_file": str(tls_files["good"].ca)})

    with pytest.raises(ConfigError, match="urls mix ldaps:// and plain ldap://"):
        sync.run(settings)


def test_the_insecure_opt_out_accepts_any_certificate(good_slapd, make_settings, tls_files, caplog):
    settings = make_settings(good_slapd, directory={"urls": [good_slapd.ldaps_url],
                                                    "ca_file": str(tls_files["other"].ca),
                                                    "tls_insecure_skip_verify": True})

    assert sync.run(settings).outcome == "ok"
    assert "NOT checked" in caplog.text
