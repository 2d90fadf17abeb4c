"""The `bridge` command end to end against a real slapd: output, and the exit codes the
README documents."""

from __future__ import annotations

import json
import os
import pty
import re
import sqlite3
import subprocess
import sys

import ldap3
import pytest

from bridge.cli import main
from bridge.errors import EXIT_ABORTED, EXIT_BUSY, EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from bridge.store import Store
from tests.support import ldif
from tests.support.slapd import free_port

SUMMARY = re.compile(r"^sync ok: seen (\d+), created (\d+), updated (\d+), destroyed (\d+), "
                     r"skipped (\d+), warnings (\d+), [\d.]+s, state [0-9a-f]{8}-\d+$", re.M)


def bridge(settings, *args: str) -> int:
    return main(["--config", settings.origin, *args])


def test_sync_prints_one_summary_line(settings, capsys):
    assert bridge(settings, "sync") == EXIT_OK

    out = capsys.readouterr().out
    assert SUMMARY.fullmatch(out.strip())
    assert SUMMARY.search(out).groups() == ("34", "34", "0", "0", "0", "2")


def test_sync_plan_lists_the_diff_and_writes_nothing(settings, capsys, tmp_path):
    assert bridge(settings, "sync", "--plan", "--show", "2") == EXIT_OK

    out = capsys.readouterr().out
    assert "plan only: nothing was written" in out
    assert re.search(r"^people\s+0\s+25\s+0\s+25\s+0\s+0$", out, re.M)
    assert out.count("  created   p") == 2 + 0  # two samples per kind ...
    assert "created   ... and 32 more" in out  # ... then a count of the rest
    assert out.strip().splitlines()[-1].startswith("plan: seen 34, created 34")
    assert not (tmp_path / "bridge.db").exists()


def test_status_shows_state_counts_and_runs(settings, capsys):
    bridge(settings, "sync")
    capsys.readouterr()

    assert bridge(settings, "status") == EXIT_OK

    out = capsys.readouterr().out
    assert re.search(r"^state\s+[0-9a-f]{8}-34$", out, re.M)
    assert "25 individual (2 disabled)" in out and "2 location" in out
    assert re.search(r"^last sync\s+ok at .*Z, \d+s ago$", out, re.M)
    assert re.search(r"#1 .* full +ok", out)
    assert re.search(r"^last full\s+.*Z; changes read by equipment: timestamp, groups: timestamp", out, re.M)

    bridge(settings, "sync")
    assert bridge(settings, "status") == EXIT_OK
    assert re.search(r"#2 .* incremental ok +seen", capsys.readouterr().out)


def test_status_json_is_machine_readable(settings, capsys):
    bridge(settings, "sync")
    capsys.readouterr()

    assert bridge(settings, "status", "--json") == EXIT_OK

    found = json.loads(capsys.readouterr().out)
    assert found["counts"]["group"] == {"total": 6, "disabled": 0}
    assert found["runs"][0]["created"] == 34


def test_status_reports_a_failed_latest_run(slapd, settings, capsys):
    bridge(settings, "sync")
    slapd.kill()
    assert bridge(settings, "sync") == EXIT_FAILED
    capsys.readouterr()

    bridge(settings, "status")

    out = capsys.readouterr().out
    assert re.search(r"^LATEST RUN\s+FAILED at .*: .*Connection refused", out, re.M)


def test_history_by_dn_shows_the_rows_of_a_renamed_entry(slapd, settings, capsys):
    bridge(settings, "sync")
    slapd.admin().modify(ldif.person_dn("alice"), {"mail": [(ldap3.MODIFY_REPLACE, ["al@example.org"])]})
    bridge(settings, "sync")
    capsys.readouterr()

    assert bridge(settings, "history", ldif.person_dn("alice").upper()) == EXIT_OK

    out = capsys.readouterr().out
    assert re.search(r"^p[0-9a-f]{32}  uid=alice,ou=people,dc=example,dc=org$", out, re.M)
    assert re.search(r"created\s+source='people'.*name='Alice L.'", out)
    assert "email: 'alice@example.org' -> 'al@example.org'" in out


def test_history_by_id_and_by_uuid_agree(settings, capsys):
    bridge(settings, "sync")
    with Store.open(settings.store.path) as store:
        alice = next(p for p in store.principals() if p.login == "alice")
    hex_id = alice.id[1:]
    as_uuid = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
    capsys.readouterr()

    bridge(settings, "history", "--json", alice.id)
    by_id = json.loads(capsys.readouterr().out)
    bridge(settings, "history", "--json", as_uuid)
    by_uuid = json.loads(capsys.readouterr().out)

    assert by_id == by_uuid
    assert [row["kind"] for row in by_id[0]["rows"]] == ["created"]


def test_history_of_garbage_is_a_usage_error(settings, capsys):
    assert bridge(settings, "history", "not a dn") == EXIT_CONFIG
    assert "neither a principal id, a UUID nor a DN" in capsys.readouterr().err


def test_check_config_reports_server_flavor_and_sources(settings, capsys):
    assert bridge(settings, "check-config") == EXIT_OK

    out = capsys.readouterr().out
    assert f"config      {settings.origin}: valid" in out
    assert "server      OpenLDAP" in out
    assert "contexts    dc=example,dc=org" in out
    assert "paged results: yes" in out
    assert "flavor      openldap (detected), identifier entryUUID" in out
    assert re.search(r"source\s+people \(individual\) ou=people,dc=example,dc=org "
                     r"\(objectClass=inetOrgPerson\)\n\s+reads entryUUID, displayName, cn, mail, "
                     r"description, uid, l, pwdAccountLockedTime\n\s+ok, e\.g\. uid=.*\n"
                     r"\s+changes read by timestamp\n", out)
    assert "will use    incremental runs, a full run at least every 1d; paged reads of 5 " in out


def test_check_config_flags_a_source_it_cannot_read(slapd, make_settings, capsys):
    settings = make_settings(slapd, sources={"people": {"type": "individual",
                                                        "base": "ou=missing,dc=example,dc=org"}})

    assert bridge(settings, "check-config") == EXIT_FAILED

    assert "PROBLEM: search of ou=missing,dc=example,dc=org" in capsys.readouterr().out


def test_a_config_error_names_file_section_option_and_value(settings, capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[directory]\npage_size = "many"\n')

    assert main(["--config", str(path), "status"]) == EXIT_CONFIG

    assert capsys.readouterr().err.strip() == \
        f"bridge: {path}: [directory] page_size = 'many': expected a whole number ≥ 1"


def test_an_unreachable_directory_fails_with_one_line(slapd, make_settings, capsys):
    settings = make_settings(slapd, directory={"urls": [f"ldap://127.0.0.1:{free_port()}"]})

    assert bridge(settings, "sync") == EXIT_FAILED

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("bridge: ldap://127.0.0.1:") and "Connection refused" in err


def test_a_wrong_bind_password_fails(slapd, make_settings, capsys):
    settings = make_settings(slapd, directory={"bind_password": "wrong"})

    assert bridge(settings, "sync") == EXIT_FAILED
    assert "bind as cn=bridge,dc=example,dc=org refused: invalid credentials" in capsys.readouterr().err


def test_the_safety_valve_exits_with_its_own_code(slapd, settings, capsys):
    bridge(settings, "sync")
    for n in range(10, 21):
        slapd.admin().delete(ldif.person_dn(f"user{n:03d}"))

    assert bridge(settings, "sync") == EXIT_ABORTED
    assert "nothing was written (use --force" in capsys.readouterr().err
    assert bridge(settings, "sync", "--force") == EXIT_OK


def test_the_plan_shows_fields_a_run_would_empty_and_the_refusal(slapd, settings, capsys):
    bridge(settings, "sync")
    slapd.hide_from_the_reader("mail")
    capsys.readouterr()

    assert bridge(settings, "sync", "--plan") == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"emptied   people: email on (\d+) of \1\n", out), out
    assert "a real run would be refused: source 'people':" in out


def test_a_second_concurrent_run_is_refused_as_busy(settings, capsys):
    bridge(settings, "sync")
    with Store.open(settings.store.path) as store, store.run_lock():
        assert bridge(settings, "sync") == EXIT_BUSY
    assert "another sync run is using" in capsys.readouterr().err


@pytest.mark.parametrize("entry", [["bridge"], [sys.executable, "-m", "bridge"]])
def test_the_console_script_and_python_m_run_the_same_cli(settings, entry):
    done = subprocess.run([*entry, "--config", settings.origin, "sync"], capture_output=True, text=True)

    assert done.returncode == EXIT_OK, done.stderr
    assert SUMMARY.fullmatch(done.stdout.strip())


def test_status_before_the_first_sync_says_so(settings, capsys, tmp_path):
    assert bridge(settings, "status") == EXIT_OK

    assert "does not exist yet: run 'bridge sync'" in capsys.readouterr().out
    assert not (tmp_path / "bridge.db").exists()


def test_sync_on_a_terminal_shows_entries_read_per_source(settings):
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "bridge", "--config", settings.origin, "sync"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal,
                              text=True, timeout=60)
        os.close(terminal)
        shown = b""
        while chunk := _read_available(controller):
            shown += chunk
    finally:
        os.close(controller)

    assert done.returncode == EXIT_OK
    assert b"reading  people: " in shown  # drawn on stderr, the terminal ...
    assert SUMMARY.fullmatch(done.stdout.strip())  # ... while stdout keeps one summary line


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed and drained
        return b""


def test_check_config_without_sources_is_a_problem(slapd, make_settings, capsys):
    settings = make_settings(slapd, sources={})

    assert bridge(settings, "check-config") == EXIT_FAILED

    assert "PROBLEM     no sources configured" in capsys.readouterr().out


def test_status_flags_stale_data_after_two_schedule_intervals(slapd, make_settings, capsys):
    settings = make_settings(slapd)
    bridge(settings, "sync")
    capsys.readouterr()
    bridge(settings, "status")
    assert "STALE" not in capsys.readouterr().out  # just synced; the interval is 15m

    with sqlite3.connect(settings.store.path) as conn:
        conn.execute("UPDATE sync_runs SET finished_at = '2026-01-01T00:00:00Z'")
    bridge(settings, "status")

    assert re.search(r"^last sync\s+ok at 2026-01-01T00:00:00Z, .* ago — STALE: none within two "
                     r"intervals \(30m\)$", capsys.readouterr().out, re.M)


def test_history_shows_a_users_own_edit(settings, capsys):
    bridge(settings, "sync")
    with Store.open(settings.store.path) as store:
        alice = next(p for p in store.principals() if p.login == "alice")
        store.edit(alice.id, {"name": "Ally"}, actor="alice")
    capsys.readouterr()

    bridge(settings, "history", alice.id)

    assert "edited by alice: name: '(directory)' -> 'Ally'" in capsys.readouterr().out
