"""Documentation rendered from the configuration schema: the commented example file and
the README's option table (scripts/gen_docs.py writes both; a test keeps them current)."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from bridge.config import ENV_PREFIX, SECTIONS, SOURCE, Option, Section

EXAMPLE_SOURCES: dict[str, dict[str, Any]] = {
    "people": {"type": "individual", "base": "ou=people,dc=example,dc=org"},
    "groups": {"type": "group", "base": "ou=groups,dc=example,dc=org"},
    "rooms": {"type": "location", "base": "ou=rooms,dc=example,dc=org"},
    "equipment": {"type": "resource", "base": "ou=equipment,dc=example,dc=org"},
}

_HEADER = """\
# Example configuration of the LDAP-backed JMAP directory bridge.
#
# Every option is listed with its help, commented out at its default: uncomment what you
# change. Unset attribute lists use the defaults of the directory flavor (shown here for
# OpenLDAP). Any option can also come from the environment:
#   BRIDGE_<SECTION>__<OPTION>           e.g. BRIDGE_DIRECTORY__PAGE_SIZE=200
#   BRIDGE_SOURCES__<NAME>__<OPTION>     e.g. BRIDGE_SOURCES__PEOPLE__BASE="ou=staff,dc=example,dc=org"
# and every secret X also as X_file (a path whose content is the secret).
#
# Generated from bridge/config.py by scripts/gen_docs.py: edit the schema, not this file.
"""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _shown(option: Option) -> Any:
    return option.example if option.default in (None, "") and option.example is not None else option.default


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width=88)]


def _option_lines(option: Option, active: dict[str, Any], explain: bool = True) -> list[str]:
    lines = _comment(option.help) if explain else []
    if explain and option.required:
        lines.append("# (required)")
    elif explain and option.default is None:
        lines.append("# (default: the flavor's; shown: OpenLDAP's)")
    elif explain and option.default == "" and option.example is not None:
        lines.append('# (default: ""; shown: an example value)')
    if option.name in active:
        lines.append(f"{option.name} = {toml_value(active[option.name])}")
    else:
        lines.append(f"# {option.name} = {toml_value(_shown(option))}")
    return lines


def example_toml() -> str:
    """The text of config/bridge.example.toml."""
    out = [_HEADER]
    for section in SECTIONS:
        out += [f"[{section.name}]", *_comment(section.help), ""]
        for option in section.options:
            out += [*_option_lines(option, {}), ""]
    out += [*_comment(SOURCE.help), ""]
    first = True
    for name, active in EXAMPLE_SOURCES.items():
        out.append(f"[sources.{name}]")
        for option in SOURCE.options:
            if first:
                out += [*_option_lines(option, active), ""]
            elif option.name in active:
                out += _option_lines(option, active, explain=False)
        out.append("")
        first = False
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"


def _env(section: Section, option: Option) -> str:
    if section is SOURCE:
        return f"{ENV_PREFIX}SOURCES__<NAME>__{option.name.upper()}"
    return f"{ENV_PREFIX}{section.name.upper()}__{option.name.upper()}"


def _default_cell(option: Option) -> str:
    if option.required:
        return "required"
    if option.default is None:
        return "flavor's"
    return f"`{toml_value(option.default)}`"


def markdown_table() -> str:
    """The README's table of every option."""
    rows = []
    for section in (*SECTIONS, SOURCE):
        rows.append(f"\n**`[{section.name}]`** — {section.help}\n")
        rows.append("| Option | Default | Environment | Meaning |")
        rows.append("|---|---|---|---|")
        for option in section.options:
            secret = " Secret: masked in logs and errors." if option.secret else ""
            rows.append(f"| `{option.name}` | {_default_cell(option)} | `{_env(section, option)}` "
                        f"| {option.help}{secret} |")
    return "\n".join(rows).strip() + "\n"
