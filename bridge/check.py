"""`bridge check-config`: after the configuration validated, bind to the directory, read
its rootDSE and try every source, and say what was found and what a sync will use."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bridge.config import Settings
from bridge.directory import ServerInfo, open_directory
from bridge.errors import DirectoryError
from bridge.mapper import Skipped, SourceMap, flavor_for, map_entry, source_map
from bridge.readers import RefreshRequired, reader_for


@dataclass
class SourceCheck:
    name: str
    type: str
    base: str
    filter: str
    attributes: tuple[str, ...]
    sample_dn: str = ""
    changes: str = ""  # how an incremental run reads its changes (readers.py), or why it cannot
    problem: str = ""  # the source cannot be read
    note: str = ""  # readable, but worth a look


@dataclass
class CheckReport:
    server: ServerInfo
    flavor: str
    flavor_source: str  # "configured" or "detected"
    id_attribute: str
    bind: str
    tls: str
    sources: list[SourceCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not tied to one source

    @property
    def ok(self) -> bool:
        return not self.problems and not any(source.problem for source in self.sources)


def check(settings: Settings) -> CheckReport:
    """Probe the directory as a sync would; DirectoryError if it cannot even bind."""
    directory_settings = settings.directory
    with open_directory(directory_settings) as directory:
        flavor = flavor_for(directory_settings.flavor, directory.info.flavor)
        report = CheckReport(
            server=directory.info, flavor=flavor.name,
            flavor_source="detected" if directory_settings.flavor == "auto" else "configured",
            id_attribute=directory_settings.id_attribute or flavor.id_attribute,
            bind=directory_settings.bind_dn or "anonymous", tls=_tls_mode(directory.url, directory_settings))
        if not settings.sources:
            report.problems.append("no sources configured: add at least one [sources.NAME] table")
        for source in settings.sources:
            smap = source_map(source, flavor, directory_settings.id_attribute)
            result = SourceCheck(smap.name, smap.type.value, smap.base, smap.filter, smap.attributes())
            try:
                sample = next(iter(directory.read(smap.query(), limit=1)), None)
            except DirectoryError as exc:
                result.problem = exc.message
            else:
                if sample is None:
                    result.note = "no entry matches the filter"
                else:
                    result.sample_dn = sample.dn
                    mapped = map_entry(sample, smap)
                    if isinstance(mapped, Skipped):
                        result.problem = f"first entry would be skipped: {mapped.reason}"
            if settings.sync.incremental and not result.problem:
                result.changes = _changes(directory, smap, settings)
            report.sources.append(result)
    return report


def _changes(directory, smap: SourceMap, settings: Settings) -> str:
    """Which reader incremental runs use for ``smap``, tried once as a run would start it."""
    reader = reader_for(directory.info, smap, settings.sync.timestamp_overlap)
    try:
        position = reader.start(directory, smap, time.time())
    except RefreshRequired as exc:
        return f"read completely every run: {exc}"
    except DirectoryError as exc:
        return f"read completely every run: {exc.message}"
    if via := position.get("via"):
        return f"changes read by {via} ({reader.name} was refused: the account lacks the right)"
    return f"changes read by {reader.name}"


def _tls_mode(url: str, directory_settings) -> str:
    if url.lower().startswith("ldaps://"):
        mode = "ldaps"
    elif directory_settings.start_tls:
        mode = "StartTLS"
    else:
        return "none (plain LDAP)"
    if directory_settings.tls_insecure_skip_verify:
        return f"{mode}, certificate NOT verified (tls_insecure_skip_verify)"
    return f"{mode}, certificate verified"
