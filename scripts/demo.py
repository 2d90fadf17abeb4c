#!/usr/bin/env python3
"""Start a throw-away OpenLDAP with a sample organisation (people, groups with a nested
pair, rooms, equipment) on 127.0.0.1, write a bridge configuration for it, and — with
--serve — sync it and serve JMAP on 127.0.0.1, printing a curl command that works as
printed. `scripts/demo` installs what this needs on a fresh Debian machine first.

    python scripts/demo.py            # slapd only; prints the bridge commands to try
    python scripts/demo.py --serve    # ... and syncs and serves JMAP until Ctrl-C

Needs Debian's slapd package. Everything lives in var/demo/ and is removed on exit.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge import config, sync  # noqa: E402
from tests.conftest import standard_sources, toml_text  # noqa: E402
from tests.support import ldif  # noqa: E402
from tests.support.slapd import READER_DN, READER_PASSWORD, Slapd, free_port  # noqa: E402

REQUEST = {
    "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:principals"],
    "methodCalls": [
        ["Principal/query", {"accountId": "directory", "filter": {"text": "room"},
                             "sort": [{"property": "name"}]}, "0"],
        ["Principal/get", {"accountId": "directory", "properties": ["name", "type", "description"],
                           "#ids": {"resultOf": "0", "name": "Principal/query", "path": "/ids"}}, "1"],
    ],
}


def port_to_use(wanted: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200, help="generated people (default 200)")
    parser.add_argument("--serve", action="store_true", help="sync, then serve JMAP on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port for --serve (default 8080)")
    args = parser.parse_args()
    workdir = ROOT / "var" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    server = Slapd(workdir / "slapd")
    server.load(ldif.standard_directory(extra_people=args.people))
    server.start()
    port = port_to_use(args.port)
    path = workdir / "bridge.toml"
    path.write_text(toml_text({
        "directory": {"urls": [server.url], "bind_dn": READER_DN, "bind_password": READER_PASSWORD},
        "store": {"path": str(workdir / "bridge.db")},
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "sources": standard_sources(),
    }))
    shown = path.relative_to(ROOT)
    print(f"slapd with {args.people + 5} people, 6 groups, 2 rooms and a projector is listening on "
          f"{server.url}\nbridge configuration: {shown}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.serve:
            serve(path, port)
        else:
            print(f"\nTry:\n  bridge --config {shown} check-config\n  bridge --config {shown} sync --plan\n"
                  f"  bridge --config {shown} sync\n  bridge --config {shown} status\n"
                  f"  bridge --config {shown} serve\n\nCtrl-C stops slapd and removes var/demo/.",
                  flush=True)
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def serve(path: Path, port: int) -> None:
    from bridge import server as bridge_server

    settings = config.load(str(path), environ={})
    print(sync.run(settings).summary())
    login, password = "alice", ldif.PASSWORDS["alice"]
    command = (f"curl -s -u {login}:{password} -H 'Content-Type: application/json' "
               f"-d {shlex.quote(json.dumps(REQUEST, separators=(',', ':')))} http://127.0.0.1:{port}/jmap")
    print(f"\nJMAP is served on http://127.0.0.1:{port} (Ctrl-C stops it). Ask it for the rooms:\n\n"
          f"  {command}\n\nThe session: curl -s -u {login}:{password} http://127.0.0.1:{port}/.well-known/jmap\n",
          flush=True)
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bridge_server.serve(settings)


if __name__ == "__main__":
    main()
