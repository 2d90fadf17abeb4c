"""The README's "try it": the demo serves JMAP and its printed curl command works as printed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.support.slapd import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_prints_a_curl_command_that_works_as_printed(tmp_path):
    output = tmp_path / "demo.out"
    with open(output, "w") as sink:
        demo = subprocess.Popen([sys.executable, "scripts/demo.py", "--serve", "--people", "20",
                                 "--port", str(free_port())], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        command = _printed_curl(output, demo)
        for _ in range(50):  # the server starts right after printing
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
            if done.stdout:
                break
            time.sleep(0.2)
        responses = json.loads(done.stdout)["methodResponses"]
        assert [p["name"] for p in responses[1][1]["list"]] == ["Boardroom", "Room 4B"]
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    assert not (ROOT / "var" / "demo").exists()  # cleaned up on exit


def _printed_curl(output: Path, demo: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert demo.poll() is None, output.read_text()
        for line in output.read_text().splitlines():
            if line.strip().startswith("curl -s -u alice") and "-d" in line:
                return line.strip()
        time.sleep(0.2)
    raise AssertionError(f"no curl command printed: {output.read_text()}")
