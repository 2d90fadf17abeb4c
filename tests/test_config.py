"""bridge.config and bridge.converters: one schema, TOML plus environment overrides, errors
that name file, section, option and value, and secrets that never show."""

from __future__ import annotations

import textwrap

import pytest

from bridge import converters as c
from bridge.config import config_path, load
from bridge.errors import EXIT_CONFIG, ConfigError


@pytest.fixture
def write(tmp_path):
    """Write a bridge.toml under tmp_path and return its path."""

    def write_toml(text: str, name: str = "bridge.toml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write_toml


def error_of(path: str | None = None, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, environ=environ)
    assert caught.value.exit_code == EXIT_CONFIG
    return str(caught.value)


# --- reading ---------------------------------------------------------------------------

def test_defaults_when_nothing_is_configured():
    settings = load(None, environ={})
    assert settings.origin == ""
    assert settings.sources == ()
    assert dict(settings.directory) == {
        "urls": ("ldap://127.0.0.1:389",), "bind_dn": "", "bind_password": "",
        "bind_password_file": "", "flavor": "auto", "start_tls": False, "ca_file": "",
        "tls_insecure_skip_verify": False, "connect_timeout": 10.0, "response_timeout": 60.0,
        "page_size": 500, "time_limit": 0.0, "id_attribute": ""}
    assert dict(settings.sync) == {"max_delete_ratio": 0.2, "max_delete_ratio_grace": 0,
                                   "max_delete_count": 0, "max_empty_ratio": 0.5, "max_empty_grace": 10,
                                   "incremental": True, "full_every": 86400.0,
                                   "timestamp_overlap": 300.0, "nested_groups": "auto"}
    assert dict(settings.store) == {"path": "var/bridge.db", "history_retention": 30 * 86400.0}


def test_toml_file_is_read(write):
    path = write("""
        [directory]
        urls = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org:6360"]
        bind_dn = "cn=bridge,dc=example,dc=org"
        page_size = 200
        start_tls = true
        connect_timeout = "1m"

        [sync]
        max_delete_ratio = 0.5

        [store]
        path = "/var/lib/bridge/bridge.db"
    """)
    settings = load(path, environ={})
    assert settings.origin == path
    assert settings.directory.urls == ("ldaps://ldap1.example.org",
                                       "ldaps://ldap2.example.org:6360")
    assert settings.directory.bind_dn == "cn=bridge,dc=example,dc=org"
    assert (settings.directory.page_size, settings.directory.start_tls) == (200, True)
    assert settings.directory.connect_timeout == 60.0
    assert settings.sync.max_delete_ratio == 0.5
    assert settings.store.path == "/var/lib/bridge/bridge.db"


def test_environment_overrides_the_file(write):
    path = write("[directory]\npage_size = 200\nflavor = \"openldap\"\n")
    settings = load(path, environ={"BRIDGE_DIRECTORY__PAGE_SIZE": "50"})
    assert settings.directory.page_size == 50
    assert settings.directory.flavor == "openldap"


@pytest.mark.parametrize("value", [
    "ldap://a.example.org,ldaps://b.example.org",
    " ldap://a.example.org , ldaps://b.example.org ",
    '["ldap://a.example.org", "ldaps://b.example.org"]',
])
def test_environment_list_as_commas_or_toml_array(value):
    settings = load(None, environ={"BRIDGE_DIRECTORY__URLS": value})
    assert settings.directory.urls == ("ldap://a.example.org", "ldaps://b.example.org")


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("1", True),
    ("false", False), ("no", False), ("off", False), ("0", False),
])
def test_environment_booleans(value, expected):
    settings = load(None, environ={"BRIDGE_DIRECTORY__START_TLS": value})
    assert settings.directory.start_tls is expected


def test_unrelated_environment_variables_are_ignored():
    settings = load(None, environ={"BRIDGE_CONFIG": "x.toml", "BRIDGE_NOISE": "1",
                                   "PATH": "/bin", "bridge_directory__page_size": "7"})
    assert settings.directory.page_size == 500


def test_source_tables_from_the_file(write):
    path = write("""
        [sources.people]
        type = "individual"
        base = "ou=people,dc=example,dc=org"
        name_attributes = ["cn"]

        [sources.groups]
        type = "group"
        base = "ou=groups,dc=example,dc=org"
        scope = "one"
    """)
    people, groups = load(path, environ={}).sources
    assert (people.name, people.type, people.base) == \
        ("people", "individual", "ou=people,dc=example,dc=org")
    assert people.name_attributes == ("cn",)
    assert people.email_attributes is None  # unset: the flavor's defaults apply
    assert (people.scope, people.filter, people.disabled_filter) == ("sub", "", "")
    assert (groups.name, groups.type, groups.scope) == ("groups", "group", "one")


def test_source_tables_from_the_environment():
    settings = load(None, environ={
        "BRIDGE_SOURCES__ROOMS__TYPE": "location",
        "BRIDGE_SOURCES__ROOMS__BASE": "ou=rooms,dc=example,dc=org",
        "BRIDGE_SOURCES__ROOMS__TIME_ZONE_ATTRIBUTES": "l",
    })
    (rooms,) = settings.sources
    assert (rooms.name, rooms.type, rooms.base) == ("rooms", "location", "ou=rooms,dc=example,dc=org")
    assert rooms.time_zone_attributes == ("l",)


def test_environment_completes_a_source_from_the_file(write):
    path = write('[sources.people]\ntype = "individual"\n')
    settings = load(path, environ={"BRIDGE_SOURCES__PEOPLE__BASE": "ou=people,dc=example,dc=org"})
    assert settings.sources[0].base == "ou=people,dc=example,dc=org"


# --- where the file comes from ---------------------------------------------------------

def test_config_path_prefers_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bridge.toml").write_text("")
    assert config_path("cli.toml", {"BRIDGE_CONFIG": "env.toml"}) == "cli.toml"


def test_config_path_then_bridge_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bridge.toml").write_text("")
    assert config_path(None, {"BRIDGE_CONFIG": "env.toml"}) == "env.toml"


def test_config_path_then_bridge_toml_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_path(None, {}) is None
    assert config_path(None, {"BRIDGE_CONFIG": ""}) is None
    (tmp_path / "bridge.toml").write_text("")
    assert config_path(None, {}) == "bridge.toml"


def test_missing_config_file_is_an_error_naming_it(tmp_path):
    path = str(tmp_path / "absent.toml")
    assert path in error_of(path)


def test_invalid_toml_is_an_error_naming_the_file(write):
    path = write("[directory\npage_size = 5\n")
    message = error_of(path)
    assert path in message and "TOML" in message


# --- errors ----------------------------------------------------------------------------

def test_error_names_file_section_option_and_value(write):
    path = write("[directory]\npage_size = 'abc'\n")
    assert error_of(path) == f"{path}: [directory] page_size = 'abc': expected a whole number ≥ 1"


def test_error_names_the_environment_variable():
    message = error_of(BRIDGE_DIRECTORY__PAGE_SIZE="abc")
    assert message.startswith("environment variable BRIDGE_DIRECTORY__PAGE_SIZE: ")
    assert "[directory] page_size = 'abc'" in message


@pytest.mark.parametrize("variable, value, problem", [
    ("BRIDGE_DIRECTORY__URLS", "http://ldap.example.org", "ldap://"),
    ("BRIDGE_DIRECTORY__URLS", "ldap://ldap.example.org/dc=example,dc=org", "scheme, host and port"),
    ("BRIDGE_DIRECTORY__URLS", "ldap://ldap.example.org:99999", "port"),
    ("BRIDGE_DIRECTORY__URLS", "", "must not be empty"),
    ("BRIDGE_DIRECTORY__URLS", '["ldap://a"', "not a valid list"),
    ("BRIDGE_DIRECTORY__BIND_DN", "no equals sign", "not a distinguished name"),
    ("BRIDGE_DIRECTORY__FLAVOR", "AD", "expected one of"),
    ("BRIDGE_DIRECTORY__START_TLS", "maybe", "expected true or false"),
    ("BRIDGE_DIRECTORY__CONNECT_TIMEOUT", "5 parsecs", "expected a duration"),
    ("BRIDGE_DIRECTORY__PAGE_SIZE", "0", "must be ≥ 1"),
    ("BRIDGE_DIRECTORY__ID_ATTRIBUTE", "entry uuid", "not an LDAP attribute name"),
    ("BRIDGE_DIRECTORY__CA_FILE", "/nonexistent/ca.pem", "no such file"),
    ("BRIDGE_SYNC__MAX_DELETE_RATIO", "1.5", "between 0 and 1"),
    ("BRIDGE_SYNC__MAX_DELETE_COUNT", "-1", "must be ≥ 0"),
    ("BRIDGE_STORE__PATH", "", "must not be empty"),
    ("BRIDGE_STORE__HISTORY_RETENTION", "forever", "expected a duration"),
])
def test_bad_value_error_names_variable_option_value_and_problem(variable, value, problem):
    message = error_of(**{variable: value})
    section, option = variable.removeprefix("BRIDGE_").lower().split("__")
    assert f"environment variable {variable}" in message
    assert f"[{section}] {option} = {value!r}" in message
    assert problem in message


@pytest.mark.parametrize("option, value, problem", [
    ("type", "person", "expected one of"),
    ("base", "", "must not be empty"),
    ("base", "ou=people,", "not a distinguished name"),
    ("filter", "((objectClass=person)", "unbalanced"),
    ("filter", "(objectClass=person)(uid=x)", "text after the closing"),
    ("filter", "objectClass=person", "starts with '('"),
    ("disabled_filter", "(&(employeeType=former)", "unbalanced"),
    ("disabled_filter", "(employeeType=former))", "text after the closing"),
    ("scope", "base", "expected one of"),
    ("name_attributes", "cn,display name", "item 2 ('display name')"),
])
def test_bad_source_value_error_names_the_source(option, value, problem):
    environ = {"BRIDGE_SOURCES__PEOPLE__TYPE": "individual",
               "BRIDGE_SOURCES__PEOPLE__BASE": "ou=people,dc=example,dc=org",
               f"BRIDGE_SOURCES__PEOPLE__{option.upper()}": value}
    message = error_of(**environ)
    assert f"[sources.people] {option} = {value!r}" in message
    assert problem in message


@pytest.mark.parametrize("missing", ["type", "base"])
def test_missing_required_source_option_is_an_error(write, missing):
    table = {"type": 'type = "individual"', "base": 'base = "ou=people,dc=example,dc=org"'}
    del table[missing]
    path = write("[sources.people]\n" + "\n".join(table.values()) + "\n")
    message = error_of(path)
    assert path in message and f"[sources.people] {missing}" in message
    assert "required" in message


@pytest.mark.parametrize("name", ["People", "1people", "peo ple", "people.eu"])
def test_bad_source_name_is_an_error(write, name):
    path = write(f'[sources."{name}"]\ntype = "individual"\nbase = "dc=org"\n')
    message = error_of(path)
    assert path in message and f"[sources.{name}]" in message and "source name" in message


def test_unknown_option_suggests_the_closest_one(write):
    path = write("[directory]\npagesize = 5\n")
    message = error_of(path)
    assert message.startswith(f"{path}: [directory] pagesize: unknown option")
    assert "unknown option" in message and "did you mean 'page_size'" in message


def test_unknown_source_option_suggests_the_closest_one():
    message = error_of(BRIDGE_SOURCES__PEOPLE__TYPE="individual",
                       BRIDGE_SOURCES__PEOPLE__BASE="dc=org",
                       BRIDGE_SOURCES__PEOPLE__NAME_ATTRIBUTE="cn")
    assert "environment variable BRIDGE_SOURCES__PEOPLE__NAME_ATTRIBUTE" in message
    assert "did you mean 'name_attributes'" in message


def test_unknown_section_is_an_error(write):
    path = write("[directry]\nurls = []\n")
    message = error_of(path)
    assert path in message and "unknown section [directry]" in message
    assert "did you mean 'directory'" in message


def test_unknown_section_from_the_environment_names_the_variable():
    message = error_of(BRIDGE_STOR__PATH="x.db")
    assert "BRIDGE_STOR__PATH" in message and "unknown section [stor]" in message


@pytest.mark.parametrize("variable", ["BRIDGE_DIRECTORY__PAGE__SIZE", "BRIDGE_SOURCES__PEOPLE",
                                      "BRIDGE_DIRECTORY__"])
def test_malformed_override_variable_is_an_error(variable):
    assert variable in error_of(**{variable: "1"})


# --- secrets ---------------------------------------------------------------------------

def test_bind_password_file_is_read_without_its_trailing_newline(tmp_path):
    secret = tmp_path / "ldap-password"
    secret.write_text("s3cret \n")
    settings = load(None, environ={"BRIDGE_DIRECTORY__BIND_PASSWORD_FILE": str(secret)})
    assert settings.directory.bind_password == "s3cret "


def test_secrets_are_masked_in_dumps(tmp_path):
    secret = tmp_path / "ldap-password"
    secret.write_text("s3cret\r\n")
    settings = load(None, environ={"BRIDGE_DIRECTORY__BIND_PASSWORD_FILE": str(secret)})
    assert settings.directory.bind_password == "s3cret"
    dump = settings.masked()
    assert dump["directory"]["bind_password"] == "***"
    assert dump["directory"]["bind_password_file"] == str(secret)
    assert "s3cret" not in repr(dump) and "s3cret" not in repr(settings.directory)


def test_empty_secret_is_not_masked():
    assert load(None, environ={}).masked()["directory"]["bind_password"] == ""


def test_bind_password_and_bind_password_file_together_is_an_error(tmp_path):
    secret = tmp_path / "ldap-password"
    secret.write_text("s3cret\n")
    message = error_of(BRIDGE_DIRECTORY__BIND_PASSWORD="hunter2",
                       BRIDGE_DIRECTORY__BIND_PASSWORD_FILE=str(secret))
    assert "bind_password_file" in message and "not both" in message
    assert "hunter2" not in message and "s3cret" not in message


@pytest.mark.parametrize("name, content", [
    ("absent", None),
    ("", None),                   # the directory itself
    ("latin1", b"caf\xe9\n"),     # not UTF-8
])
def test_unreadable_secret_file_is_an_error_naming_the_option(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    path = str(path)
    message = error_of(BRIDGE_DIRECTORY__BIND_PASSWORD_FILE=path)
    assert f"[directory] bind_password_file = {path!r}" in message


def test_invalid_secret_value_is_masked_in_the_error(write):
    path = write("[directory]\nbind_password = 12345\n")
    message = error_of(path)
    assert "bind_password = '***'" in message and "12345" not in message


def test_misspelt_secret_option_does_not_echo_the_secret(write):
    path = write('[directory]\nbind_pasword = "hunter2"\n')
    message = error_of(path)
    assert "did you mean 'bind_password'" in message
    assert "hunter2" not in message


# --- converters ------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("1h30m", 5400.0), ("30d", 2592000.0), ("90", 90.0), (90, 90.0), (1.5, 1.5),
    ("30s", 30.0), ("15m", 900.0), ("2w", 1209600.0), ("500ms", 0.5), ("1.5h", 5400.0),
    (" 15 M ", 900.0), ("0s", 0.0),
])
def test_duration_in_seconds(value, seconds):
    assert c.duration(value) == seconds


@pytest.mark.parametrize("value", ["5 parsecs", "", "-5s", -5, "1h30", "h", "soon", True, None])
def test_duration_refuses(value):
    with pytest.raises(ValueError):
        c.duration(value)


@pytest.mark.parametrize("value, expected", [(0, 0.0), (1, 1.0), (0.25, 0.25), ("0.5", 0.5)])
def test_ratio_accepts_zero_to_one(value, expected):
    assert c.ratio(value) == expected


@pytest.mark.parametrize("value", [1.5, -0.1, "abc", "nan", True, None])
def test_ratio_refuses(value):
    with pytest.raises(ValueError):
        c.ratio(value)


@pytest.mark.parametrize("value, expected", [(5, 5), ("5", 5), (" 7 ", 7), (0, 0)])
def test_integer_accepts_whole_numbers(value, expected):
    assert c.integer(0)(value) == expected


@pytest.mark.parametrize("value", [-1, "-1", 1.5, "1.5", "1e3", True, "", None])
def test_integer_refuses(value):
    with pytest.raises(ValueError):
        c.integer(0)(value)


@pytest.mark.parametrize("url", ["ldap://ldap.example.org", "ldaps://ldap.example.org:636",
                                 "LDAP://127.0.0.1:389/", "ldap://[::1]:389"])
def test_ldap_url_accepts_scheme_host_and_port(url):
    assert c.ldap_url(url) == url


@pytest.mark.parametrize("url", ["http://ldap.example.org", "ldap://", "ldap.example.org",
                                 "ldap://ldap.example.org/dc=org", "ldap://h?cn", "ldap://h:x"])
def test_ldap_url_refuses(url):
    with pytest.raises(ValueError):
        c.ldap_url(url)


@pytest.mark.parametrize("filt", ["(objectClass=*)", "(&(objectClass=person)(!(uid=x)))",
                                  "(cn=a\\28b\\29)", " (uid=x) "])
def test_ldap_filter_accepts_a_balanced_filter(filt):
    assert c.ldap_filter(filt) == filt.strip()


@pytest.mark.parametrize("filt", ["(objectClass=person", "objectClass=person", "(a=b))",
                                  "(a=b)(c=d)", "((a=b)", ")a=b(", ""])
def test_ldap_filter_refuses(filt):
    with pytest.raises(ValueError):
        c.ldap_filter(filt)


DESIGN_CONTRACT_EXAMPLE = '''
[directory]
urls = ["ldap://127.0.0.1:389"]      # tried in order; ldaps:// or start_tls for TLS
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "secret"             # or bind_password_file = "/run/secrets/ldap"
flavor = "auto"                      # auto | openldap | ad | generic

[sources.people]                     # any number of sources, each one principal type
type = "individual"                  # individual | group | location | resource | other
base = "ou=people,dc=example,dc=org"
filter = "(objectClass=inetOrgPerson)"

[sources.groups]
type = "group"
base = "ou=groups,dc=example,dc=org"
filter = "(objectClass=groupOfNames)"

[sources.rooms]
type = "location"
base = "ou=rooms,dc=example,dc=org"
filter = "(objectClass=room)"

[store]
path = "var/bridge.db"

[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"

[schedule]
interval = "15m"
'''


def test_the_design_contract_example_loads_unchanged(tmp_path):
    path = tmp_path / "contract.toml"
    path.write_text(DESIGN_CONTRACT_EXAMPLE)

    settings = load(str(path), environ={})

    assert [s.name for s in settings.sources] == ["people", "groups", "rooms"]
    assert settings.server.listen == "127.0.0.1:8080"
    assert settings.server.public_url == "http://127.0.0.1:8080"
    assert settings.schedule.interval == 900.0


@pytest.mark.parametrize("option, value", [
    ("listen", "8080"), ("listen", "host:99999"), ("public_url", "ftp://x"),
    ("public_url", "http://x/?a=b"),
])
def test_server_options_are_checked(option, value):
    with pytest.raises(ConfigError, match=rf"\[server\] {option} = "):
        load(None, environ={f"BRIDGE_SERVER__{option.upper()}": value})
