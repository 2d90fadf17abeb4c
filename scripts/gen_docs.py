#!/usr/bin/env python3
"""Regenerate config/bridge.example.toml and the README's option table from the schema.

Run after changing bridge/config.py; tests/test_docs.py fails until you do.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.config_docs import example_toml, markdown_table  # noqa: E402

START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def readme_with_table(readme: str) -> str:
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    return f"{head}{START}\n{markdown_table()}{END}{tail}"


def main() -> None:
    (ROOT / "config" / "bridge.example.toml").write_text(example_toml())
    readme = ROOT / "README.md"
    readme.write_text(readme_with_table(readme.read_text()))
    print("wrote config/bridge.example.toml and the README option table")


if __name__ == "__main__":
    main()
