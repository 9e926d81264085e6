"""Run ``nebula up`` as a subprocess in a temp dir, as a user would."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nebula.storage import free_internal_port
from tests.services import environ_without


@dataclass
class NebulaUp:
    workdir: Path
    process: subprocess.Popen[str]
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def value(self, label: str) -> str:
        match = re.search(rf"^\s*{label}:\s+(\S+)", self.text, re.M)
        assert match, f"{label!r} not printed by nebula up:\n{self.text}"
        return match.group(1)

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if self.process.poll() is not None:
                raise AssertionError(f"nebula up exited {self.process.returncode}:\n{self.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen in {timeout}s:\n{self.text}")
            time.sleep(0.2)

    def interrupt(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)


def start_nebula_up(workdir: Path, extra_env: dict[str, str] | None = None) -> NebulaUp:
    env = environ_without()
    env.update(
        {
            "NEBULA_STORAGE_PORT": str(free_internal_port()),
            "NEBULA_S3PROXY_PORT": str(free_internal_port()),
            "NEBULA_ORIGIN_PORT": str(free_internal_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "nebula", "up", "--data-dir", str(workdir / "data")],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    up = NebulaUp(workdir, process, env)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            up.output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return up
