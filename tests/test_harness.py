"""The harness every spawner uses: it sees a server listen, reports a failed start with the
child's log, and stops the child's whole process group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nebula.storage import free_internal_port
from tests.harness import spawn, stop, wait_listening, wait_until
from tests.services import alive, descendants

# A server that starts a grandchild (as `nebula up` and ffmpeg-running workers do), says
# so in its log, then listens on the port it is given.
SERVER = """
import http.server, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.BaseHTTPRequestHandler).serve_forever()
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def test_waits_for_the_server_and_stops_its_whole_group(tmp_path: Path) -> None:
    port = free_internal_port()
    server = spawn("server", python(SERVER, str(port)), None, tmp_path / "server.log", port=port)
    wait_listening(server, probe="http", path="/")
    assert "serving" in server.log()
    family = descendants(server.pid)
    assert family, "the grandchild was not started"
    assert stop(server) == -15  # SIGTERM reached the server
    assert not alive(server.pid) and not any(alive(p) for p in family)


def test_a_child_that_exits_during_start_up_raises_with_its_log(tmp_path: Path) -> None:
    code = "import sys; print('bad setting NEBULA_X', flush=True); sys.exit(3)"
    child = spawn("broken", python(code), None, tmp_path / "broken.log", port=free_internal_port())
    with pytest.raises(AssertionError, match=r"(?s)exited.*bad setting NEBULA_X"):
        wait_listening(child, timeout=60)
    assert child.process.returncode == 3


def test_a_child_that_never_listens_is_stopped_and_reported(tmp_path: Path) -> None:
    code = "import time; print('stuck', flush=True); time.sleep(600)"
    child = spawn("stuck", python(code), None, tmp_path / "stuck.log", port=free_internal_port())
    wait_until(lambda: "stuck" in child.log(), "the child's first line", 60)
    with pytest.raises(AssertionError, match=r"(?s)not after 1 s.*stuck"):
        wait_listening(child, timeout=1)
    assert not child.alive()  # stopped, not left running


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('deaf', flush=True); time.sleep(600)"
    )
    child = spawn("deaf", python(code), None, tmp_path / "deaf.log")
    wait_until(lambda: "deaf" in child.log(), "the child's first line", 60)
    assert stop(child, timeout=1) == -9
