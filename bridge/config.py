"""The configuration: one declarative schema, loaded from TOML plus environment overrides.

Every option has a default, a converter that validates it, help text and a secret flag;
the example file, the README table and the masked startup dump are rendered from this
schema (bridge/config_docs.py). ``[sources.NAME]`` tables repeat, one per source.

Environment overrides: ``BRIDGE_<SECTION>__<OPTION>`` (``BRIDGE_DIRECTORY__PAGE_SIZE=200``)
and ``BRIDGE_SOURCES__<NAME>__<OPTION>``. An option ``X_file`` reads the secret ``X``
from a file. Errors name the file (or variable), section, option and value.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import converters as c
from bridge.errors import ConfigError
from bridge.model import PrincipalType

ENV_PREFIX = "BRIDGE_"
CONFIG_ENV = "BRIDGE_CONFIG"
DEFAULT_CONFIG = "bridge.toml"
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    convert: c.Converter
    help: str
    secret: bool = False
    required: bool = False
    secret_file_for: str = ""  # this option names a file holding that secret option
    example: Any = None  # shown in the example file instead of an empty default


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    options: tuple[Option, ...]

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)


_ATTRS = c.string_list(c.attribute)

DIRECTORY = Section("directory", "How to reach and bind to the LDAP server.", (
    Option("urls", ("ldap://127.0.0.1:389",), c.non_empty(c.string_list(c.ldap_url)),
           "Servers tried in order until one answers (failover). ldaps:// for implicit TLS."),
    Option("bind_dn", "", c.bind_name,
           "DN of the service account the bridge reads with (Active Directory also takes "
           "user@domain or DOMAIN\\user); empty binds anonymously."),
    Option("bind_password", "", c.text, "Password of bind_dn.", secret=True),
    Option("bind_password_file", "", c.file_path,
           "Read bind_password from this file instead (trailing newline ignored).",
           secret_file_for="bind_password", example="/run/secrets/ldap"),
    Option("flavor", "auto", c.choice("auto", "openldap", "ad", "generic"),
           "Server family; auto detects it from the rootDSE. Sets the identifier attribute "
           "and the attribute-map defaults."),
    Option("start_tls", False, c.boolean,
           "Upgrade ldap:// connections with StartTLS before binding."),
    Option("ca_file", "", c.file_path,
           "PEM file of the CA(s) that sign the server certificate; empty uses the "
           "system trust store.", example="/etc/ssl/certs/ldap-ca.pem"),
    Option("tls_insecure_skip_verify", False, c.boolean,
           "INSECURE: accept any server certificate. Only for a throw-away test directory."),
    Option("connect_timeout", "10s", c.positive_duration,
           "Give up connecting to one URL after this (whole seconds, rounded up)."),
    Option("response_timeout", "60s", c.positive_duration,
           "Give up when the server does not answer an operation within this (whole seconds, "
           "rounded up)."),
    Option("page_size", 500, c.integer(1),
           "Entries per page of the simple paged results control (RFC 2696)."),
    Option("time_limit", "0s", c.duration,
           "Server-side time limit asked for each search (whole seconds, rounded up); 0 asks "
           "for none."),
    Option("id_attribute", "", c.optional_attribute,
           "Immutable identifier attribute; empty uses the flavor's (entryUUID, objectGUID).",
           example="entryUUID"),
))

SYNC = Section("sync", "How each run reads (incremental or full) and the safety valve it passes.", (
    Option("max_delete_ratio", 0.2, c.ratio,
           "Abort (unless --force) when a run would destroy more than this share of a "
           "source's principals."),
    Option("max_delete_ratio_grace", 0, c.integer(0),
           "A run may always destroy this many principals of a source, whatever the "
           "ratio (e.g. 1, so that a source of four rooms can lose one without --force)."),
    Option("max_delete_count", 0, c.integer(0),
           "Abort (unless --force) when a run would destroy more than this many "
           "principals of one source; 0 means no count limit."),
    Option("max_empty_ratio", 0.5, c.ratio,
           "Abort (unless --force) when a run would empty a field (email, description, time "
           "zone, a group's members) on more than this share of the principals of a source it "
           "read that have it, and on more than max_empty_grace of them: what a read looks like "
           "when the service account may no longer see an attribute. 1 never aborts."),
    Option("max_empty_grace", 10, c.integer(0),
           "A run may always empty a field on this many principals of a source."),
    Option("incremental", True, c.boolean,
           "Read only what changed since the last run where the server allows it (syncrepl, AD's "
           "uSNChanged, modifyTimestamp); false reads everything every run."),
    Option("full_every", "24h", c.duration,
           "A complete read at least this often, whatever incremental reads missed; 0 never "
           "forces one (`bridge sync --full` still does)."),
    Option("timestamp_overlap", "5m", c.duration,
           "Servers read by modifyTimestamp: look back this much before the last run, for clock "
           "skew between them and the bridge."),
    Option("nested_groups", "auto", c.choice("auto", "client"),
           "Effective membership through nested groups: auto asks the server where it evaluates "
           "AD's in-chain rule (probed once; sees through nested groups no source reads; one "
           "search per group that nests others), client only closes the synced memberships."),
))

STORE = Section("store", "The local SQLite database.", (
    Option("path", "var/bridge.db", c.store_path,
           "Database file (created on first use); relative paths start at the working "
           "directory."),
    Option("history_retention", "30d", c.duration,
           "Keep change history this long; clients asking for changes since an older "
           "state get cannotCalculateChanges."),
))

_TYPES = tuple(t.value for t in PrincipalType)

SOURCE = Section("sources.NAME", "One source per table: a search whose entries become "
                 "principals of one type. Attribute lists are tried in order; the first "
                 "attribute present wins. Unset lists use the flavor's defaults.", (
    Option("type", "", c.choice(*_TYPES), "Principal type: " + ", ".join(_TYPES) + ".",
           required=True, example="individual"),
    Option("base", "", c.required_dn, "Search base.", required=True,
           example="ou=people,dc=example,dc=org"),
    Option("filter", "", c.optional_filter,
           "Search filter; empty uses the flavor's filter for the type.",
           example="(objectClass=inetOrgPerson)"),
    Option("scope", "sub", c.choice("sub", "one"), "sub (whole subtree) or one (one level)."),
    Option("name_attributes", None, _ATTRS, "Principal name.", example=["displayName", "cn"]),
    Option("email_attributes", None, _ATTRS, "Principal email (must be an addr-spec).",
           example=["mail"]),
    Option("description_attributes", None, _ATTRS, "Principal description.",
           example=["description"]),
    Option("login_attributes", None, _ATTRS, "Login name (memberUid resolution, history).",
           example=["uid"]),
    Option("time_zone_attributes", None, _ATTRS,
           "Principal timeZone (must be an IANA zone); none by default.", example=[]),
    Option("member_attributes", None, _ATTRS,
           "Group member attributes: DN-valued (member, uniqueMember) or login-valued "
           "(memberUid).", example=["member", "uniqueMember", "memberUid"]),
    Option("disabled_filter", "", c.optional_filter,
           "Entries of this source that also match this filter are flagged disabled.",
           example="(employeeType=former)"),
))

SERVER = Section("server", "The HTTP listener of `bridge serve` and who may use the API.", (
    Option("listen", "127.0.0.1:8080", c.host_port, "Address and port to listen on."),
    Option("public_url", "http://127.0.0.1:8080", c.http_url,
           "The URL clients reach the bridge at; session URLs are built from it."),
    Option("tls_cert", "", c.file_path,
           "PEM certificate (chain) to serve HTTPS directly; with tls_key.",
           example="/etc/bridge/tls/cert.pem"),
    Option("tls_key", "", c.file_path, "PEM private key of tls_cert.",
           example="/etc/bridge/tls/key.pem"),
    Option("trusted_proxies", (), c.string_list(c.ip_network),
           "Reverse proxies (addresses or networks) whose X-Forwarded-For/-Proto are believed, "
           "for client addresses in logs and lockouts; from anyone else they are ignored.",
           example=["127.0.0.1"]),
    Option("allow_plain_http_basic", False, c.boolean,
           "INSECURE: allow HTTP Basic (directory passwords) on a non-loopback listener without "
           "TLS. Leave false unless a TLS-terminating proxy sits on the same host."),
    Option("jmap_enabled", True, c.boolean, "Serve the JMAP API at all (false: every user gets 403)."),
    Option("allow_groups", (), c.string_list(c.distinguished_name),
           "If set, only members (direct or nested) of one of these groups (DNs) may use JMAP.",
           example=["cn=jmap-users,ou=groups,dc=example,dc=org"]),
    Option("deny_groups", (), c.string_list(c.distinguished_name),
           "Members (direct or nested) of these groups (DNs) may not use JMAP.",
           example=["cn=no-jmap,ou=groups,dc=example,dc=org"]),
    Option("token_file", "", c.file_path,
           "TOML file of static bearer tokens for service clients (see README).",
           example="/etc/bridge/tokens.toml"),
))

AUTH = Section("auth", "HTTP Basic login with directory credentials.", (
    Option("cache_ttl", "5m", c.duration,
           "Remember a successful login this long (salted hash in memory) so API calls do not "
           "each bind; 0 binds on every request. A password changed in the directory keeps "
           "working until then."),
    Option("max_failures", 5, c.integer(1),
           "Failed logins of one user within failure_window before the login is locked (429)."),
    Option("failure_window", "15m", c.positive_duration,
           "The window failed logins are counted in, and how long a lockout lasts."),
))

_PRINCIPAL_PROPERTIES = ("name", "description", "timeZone")

JMAP = Section("jmap", "The JMAP API: limits announced in the session and enforced, and policy.", (
    Option("max_size_request", 10_000_000, c.integer(1000), "maxSizeRequest, in octets."),
    Option("max_concurrent_requests", 4, c.integer(1), "maxConcurrentRequests, per user."),
    Option("max_calls_in_request", 16, c.integer(1), "maxCallsInRequest."),
    Option("max_objects_in_get", 500, c.integer(1), "maxObjectsInGet."),
    Option("max_objects_in_set", 500, c.integer(1), "maxObjectsInSet."),
    Option("max_changes", 5000, c.integer(1),
           "Most ids one /changes answer carries when the client sets no maxChanges."),
    Option("max_event_streams", 4, c.integer(1),
           "Push (EventSource) connections one user may hold open at once."),
    Option("inline_read_ms", 2, c.integer(0),
           "Quick reads (/get and /query calls) run on the event loop, which saves a hand-over "
           "to a worker thread (most of a small request's cost); one that is still reading "
           "after this many milliseconds is stopped and run again in a worker thread. 0 runs "
           "every request in a worker thread."),
    Option("query_cache_ids", 50_000, c.integer(0),
           "Principal/query answers are kept for the state they were computed at, up to this "
           "many ids in all (about 100 bytes each); 0 keeps none."),
    Option("show_disabled", False, c.boolean,
           "Show disabled principals (locked accounts, disabled_filter matches) to clients."),
    Option("editable_properties", _PRINCIPAL_PROPERTIES, c.string_list(c.choice(*_PRINCIPAL_PROPERTIES)),
           "Which properties of their own Principal users may change with Principal/set "
           "(kept as a local overlay that survives every sync); [] makes Principal/set read-only."),
    Option("account_id_template", "", c.template("id", "login", "uuid"),
           "The JMAP account of a principal's data on your groupware server, e.g. \"{login}\"; "
           "fills Principal.accounts. Empty: accounts is always null.", example="{login}"),
    Option("account_capabilities", (), c.string_list(c.required_text),
           "Capabilities of those accounts, e.g. urn:ietf:params:jmap:calendars.",
           example=["urn:ietf:params:jmap:calendars"]),
    Option("accounts_visible", "own", c.choice("own", "all"),
           "Whose accounts a user sees in Principal.accounts: only their own, or everyone's."),
))

SCHEDULE = Section("schedule", "When the sync runs inside `bridge serve`.", (
    Option("interval", "15m", c.positive_duration,
           "Time between sync runs; `bridge status` calls the data stale after two intervals "
           "without a successful run."),
))

NOTIFICATIONS = Section("notifications", "ShareNotifications: how long and how many are kept, "
                        "and how share events name their recipients.", (
    Option("max_per_recipient", 500, c.integer(1),
           "At most this many per user; a new one beyond it destroys the oldest."),
    Option("max_age", "90d", c.positive_duration, "Destroy notifications older than this."),
    Option("coalesce_window", "10m", c.duration,
           "Another change to the same object within this replaces the earlier notification by "
           "one that keeps its oldRights and takes the new newRights (a change undone leaves "
           "none); 0 never coalesces."),
    Option("expand_groups", False, c.boolean,
           "A share event for a group notifies its members (nested, enabled individuals); "
           "otherwise it is refused, as RFC 9670 allows."),
    Option("max_group_size", 100, c.integer(1),
           "With expand_groups: refuse groups with more members than this."),
    Option("max_events", 1000, c.integer(1),
           "Most share events one POST /notify may carry (more: 400, send smaller batches); "
           "`bridge notify` splits a longer file into batches of this size."),
))

SECTIONS: tuple[Section, ...] = (DIRECTORY, SYNC, STORE, SERVER, AUTH, JMAP, NOTIFICATIONS, SCHEDULE)


class Values(Mapping):
    """The converted options of one section (or source), readable as attributes."""

    def __init__(self, section: Section, values: dict[str, Any], name: str = "") -> None:
        self._section = section
        self._values = values
        self.name = name

    def __getattr__(self, option: str) -> Any:
        try:
            return self._values[option]
        except KeyError:
            raise AttributeError(option) from None

    def __getitem__(self, option: str) -> Any:
        return self._values[option]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def masked(self) -> dict[str, Any]:
        """The values with secrets replaced by ``"***"`` (for logs and dumps)."""
        return {name: ("***" if self._section.option(name).secret and value else value)
                for name, value in self._values.items()}

    def __repr__(self) -> str:
        return f"Values({self.name or self._section.name}, {self.masked()!r})"


@dataclass(frozen=True)
class Settings:
    directory: Values
    sync: Values
    store: Values
    server: Values
    auth: Values
    jmap: Values
    notifications: Values
    schedule: Values
    sources: tuple[Values, ...]
    origin: str  # the file the settings came from, or "" when only the environment

    def masked(self) -> dict[str, Any]:
        dump = {s.name: getattr(self, s.name).masked() for s in SECTIONS}
        dump["sources"] = {source.name: source.masked() for source in self.sources}
        return dump


def config_path(cli_path: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The file to read: --config, else $BRIDGE_CONFIG, else ./bridge.toml if present."""
    if cli_path:
        return cli_path
    if environ.get(CONFIG_ENV):
        return environ[CONFIG_ENV]
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def load(path: str | None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Read, override from the environment, convert and check every option."""
    raw, origin = _read_file(path) if path else ({}, "")
    origins = {key: origin for key in _keys(raw)}
    for key, value in _environment_overrides(environ):
        _put(raw, key, value)
        origins[key] = f"environment variable {_env_name(key)}"
    _reject_unknown(raw, origins)
    sections = {s.name: _convert(s, raw.get(s.name, {}), origins, s.name) for s in SECTIONS}
    sources = tuple(_convert(SOURCE, table, origins, f"sources.{name}", name=name)
                    for name, table in raw.get("sources", {}).items())
    server = sections["server"]
    if bool(server.tls_cert) != bool(server.tls_key):
        raise ConfigError("set both tls_cert and tls_key, or neither", origin=_origin(origins, "server"),
                          section="server", option="tls_cert" if server.tls_key else "tls_key")
    return Settings(**sections, sources=sources, origin=origin)


def _read_file(path: str) -> tuple[dict, str]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle), path
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _keys(raw: dict) -> Iterator[tuple[str, ...]]:
    for section, table in raw.items():
        if not isinstance(table, dict):
            yield (section,)
        elif section == "sources":
            for name, options in table.items():
                for option in options if isinstance(options, dict) else ():
                    yield ("sources", name, option)
                if not isinstance(options, dict):
                    yield ("sources", name)
        else:
            for option in table:
                yield (section, option)


def _env_name(key: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in key)


def _environment_overrides(environ: Mapping[str, str]) -> Iterator[tuple[tuple[str, ...], str]]:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        key = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        expected = 3 if key[0] == "sources" else 2
        if len(key) != expected or not all(key):
            raise ConfigError(f"environment variable {name}: expected BRIDGE_SECTION__OPTION "
                              "or BRIDGE_SOURCES__NAME__OPTION")
        yield key, value


def _put(raw: dict, key: tuple[str, ...], value: str) -> None:
    table = raw
    for part in key[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"environment variable {_env_name(key)}: [{part}] is not a table")
    table[key[-1]] = value


def _reject_unknown(raw: dict, origins: dict) -> None:
    known = {s.name: s for s in SECTIONS}
    for section, table in raw.items():
        origin = _origin(origins, section)
        if section != "sources" and section not in known:
            raise ConfigError(f"unknown section [{section}]{_did_you_mean(section, [*known, 'sources'])}",
                              origin=origin)
        if not isinstance(table, dict):
            raise ConfigError(f"'{section}' must be a table ([{section}])", origin=origin)
        if section == "sources":
            for name, options in table.items():
                if not isinstance(options, dict):
                    raise ConfigError(f"[sources.{name}] must be a table", origin=origin)
                if not _SOURCE_NAME.match(name):
                    raise ConfigError("a source name is lower-case letters, digits, '_' and '-', "
                                      "starting with a letter", origin=origin, section=f"sources.{name}")


def _origin(origins: dict, *prefix: str) -> str:
    """Where the keys under ``prefix`` came from (the file, or an environment variable)."""
    return next((where for key, where in origins.items() if key[:len(prefix)] == prefix), "")


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _convert(section: Section, table: dict, origins: dict, label: str, name: str = "") -> Values:
    prefix = tuple(label.split("."))
    values: dict[str, Any] = {}
    for key, value in table.items():
        option = section.option(key)
        if option is None:
            # no value in the message: a misspelt bind_password must not be echoed
            raise ConfigError(f"unknown option{_did_you_mean(key, [o.name for o in section.options])}",
                              origin=origins.get((*prefix, key), ""), section=label, option=key)
        try:
            values[key] = option.convert(value)
        except ValueError as exc:
            raise ConfigError(str(exc), origin=origins.get((*prefix, key), ""), section=label,
                              option=key, value=value, secret=option.secret) from None
    for option in section.options:
        if option.name in values:
            continue
        if option.required:
            raise ConfigError("this option is required", origin=_origin(origins, *prefix),
                              section=label, option=option.name)
        values[option.name] = option.convert(option.default) if option.default is not None else None
    _read_secret_files(section, values, origins, prefix, label)
    return Values(section, values, name=name)


def _read_secret_files(section: Section, values: dict, origins: dict, prefix: tuple, label: str) -> None:
    for option in section.options:
        path = values.get(option.name) if option.secret_file_for else ""
        if not path:
            continue
        target = option.secret_file_for
        if values.get(target):
            raise ConfigError(f"set either {target} or {option.name}, not both",
                              origin=origins.get((*prefix, option.name), ""), section=label,
                              option=option.name, value=path)
        try:
            with open(path, encoding="utf-8") as handle:
                values[target] = handle.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the secret: {exc}",
                              origin=origins.get((*prefix, option.name), ""), section=label,
                              option=option.name, value=path) from None
