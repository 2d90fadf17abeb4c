#!/usr/bin/env python3
"""Start a throw-away OpenLDAP with sample people, groups, rooms and equipment on
127.0.0.1 and write a bridge configuration for it, to try the bridge in two minutes.

    python scripts/demo.py            # runs until Ctrl-C; prints the commands to try

Needs Debian's slapd package (apt-get install slapd ldap-utils). Everything lives in
var/demo/ and is removed on exit.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import standard_sources, toml_text  # noqa: E402
from tests.support import ldif  # noqa: E402
from tests.support.slapd import READER_DN, READER_PASSWORD, Slapd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200, help="generated people (default 200)")
    args = parser.parse_args()
    workdir = ROOT / "var" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    server = Slapd(workdir / "slapd")
    server.load(ldif.standard_directory(extra_people=args.people))
    server.start()
    config = workdir / "bridge.toml"
    config.write_text(toml_text({
        "directory": {"urls": [server.url], "bind_dn": READER_DN, "bind_password": READER_PASSWORD},
        "store": {"path": str(workdir / "bridge.db")},
        "sources": standard_sources(),
    }))
    print(f"slapd with {args.people + 5} people is listening on {server.url}\n"
          f"admin: {server.admin().user} / {server.admin().password}\n\nTry:\n"
          f"  bridge --config {config.relative_to(ROOT)} check-config\n"
          f"  bridge --config {config.relative_to(ROOT)} sync --plan\n"
          f"  bridge --config {config.relative_to(ROOT)} sync\n"
          f"  bridge --config {config.relative_to(ROOT)} status\n"
          f"  bridge --config {config.relative_to(ROOT)} history '{ldif.person_dn('alice')}'\n\n"
          "Ctrl-C stops slapd and removes var/demo/.", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
