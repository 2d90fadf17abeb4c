"""The docs stay true: the example config and the README table are the schema's, every verb
and exit code is in the README, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from bridge import config, errors
from bridge.cli import _parser
from bridge.config_docs import example_toml, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = ROOT / "config" / "bridge.example.toml"


def test_example_config_is_generated_from_the_schema():
    assert EXAMPLE.read_text() == example_toml(), "run: python scripts/gen_docs.py"


def test_readme_option_table_is_generated_from_the_schema():
    table = README.split("<!-- config-table:start -->\n")[1].split("<!-- config-table:end -->")[0]
    assert table == markdown_table(), "run: python scripts/gen_docs.py"


def test_every_option_is_in_the_example_and_the_readme():
    for section in (*config.SECTIONS, config.SOURCE):
        for option in section.options:
            assert re.search(rf"^#? ?{option.name} = ", EXAMPLE.read_text(), re.M), option.name
            assert f"| `{option.name}` |" in README, option.name


def test_example_config_loads_and_defines_every_principal_type():
    settings = config.load(str(EXAMPLE), environ={})
    assert {source.type for source in settings.sources} == \
        {"individual", "group", "location", "resource"}


def test_active_directory_example_loads_with_the_ad_flavor_and_every_kind_of_room():
    settings = config.load(str(ROOT / "config" / "bridge.ad.example.toml"), environ={})
    assert settings.directory.flavor == "ad"
    assert {source.type for source in settings.sources} == {"individual", "group", "location", "resource"}
    assert [source.filter for source in settings.sources if source.type == "location"] == [
        "", "(&(objectClass=user)(description=meeting room*))"]  # Exchange's marks, and a filter


def test_every_verb_is_documented():
    verbs = _parser()._subparsers._group_actions[0].choices
    for verb in verbs:
        assert f"`bridge {verb}" in README, verb


def test_every_exit_code_is_documented():
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    for code in codes:
        assert re.search(rf"^\| {code} \| \w", README, re.M), code


def test_ci_runs_the_readme_test_command():
    block = README.split("## Run the tests")[1].split("```sh\n")[1].split("```")[0]
    command = block.strip().splitlines()[-1]
    assert command == "python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci
