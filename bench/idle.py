"""Benchmark the embedded stack at rest: each process's CPU and memory while nothing happens.

Starts ``nebula up`` on a fresh data directory and free ports, waits until it prints its
summary and ``nebula status`` says every part is up, lets it settle, then samples every
process of its tree over a window: CPU as a share of one core (utime + stime from
/proc/PID/stat over the window) and memory as PSS (Proportional Set Size, from
/proc/PID/smaps_rollup: shared pages are divided among the processes that share them, so
the sum is what the stack costs the machine; RSS would count them once per process).
Prints one row per process and the total. Target: under 1 % of a core and 500 MB PSS.

    python3 -m bench.idle                      # 60 s settle, 60 s window
    python3 -m bench.idle --settle 30 --window 120
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nebula.storage import free_internal_port
from tests.services import descendants, environ_without

CPU_TARGET_PERCENT = 1.0
PSS_TARGET_MB = 500.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """One process at one moment: its role, CPU time so far and memory."""

    pid: int
    name: str
    cpu_seconds: float
    pss_mb: float


def sample(pid: int) -> Sample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None  # it exited meanwhile
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    pss_kb = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return Sample(pid, role(command), cpu, pss_kb / 1024)


def role(command: list[bytes]) -> str:
    words = [w.decode(errors="replace") for w in command if w]
    if "-m" in words and "nebula" in words:
        after = words[words.index("nebula") + 1 :]
        return "nebula " + (after[0] if after else "")
    return " ".join(Path(words[0]).name.split()[:1] + words[1:2]) if words else "?"


def wait_up(process: subprocess.Popen[str], log: Path, data: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 180
    while "Press Ctrl-C to stop." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"nebula up did not start:\n{log.read_text()}")
        time.sleep(0.5)
    while True:
        status = subprocess.run(
            [sys.executable, "-m", "nebula", "status", "--data-dir", str(data)],
            env=env,
            capture_output=True,
            text=True,
        )
        if status.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"nebula status never said all parts are up:\n{status.stdout}")
        time.sleep(1)


def measure(root: int, window: float) -> list[tuple[Sample, float]]:
    """(end sample, CPU % of one core over ``window``) for every process of the tree."""
    pids = [root, *descendants(root)]
    before = {s.pid: s for s in filter(None, map(sample, pids))}
    time.sleep(window)
    rows = []
    for pid, first in before.items():
        last = sample(pid)
        if last is not None:
            rows.append((last, 100 * (last.cpu_seconds - first.cpu_seconds) / window))
    return rows


def report(rows: list[tuple[Sample, float]]) -> str:
    lines = [f"{'PID':>7}  {'PROCESS':<24} {'CPU %':>7} {'PSS MB':>8}"]
    for s, cpu in sorted(rows, key=lambda row: -row[0].pss_mb):
        lines.append(f"{s.pid:>7}  {s.name[:24]:<24} {cpu:>7.2f} {s.pss_mb:>8.1f}")
    total_cpu = sum(cpu for _, cpu in rows)
    total_pss = sum(s.pss_mb for s, _ in rows)
    lines.append(
        f"{'':>7}  {'total (' + str(len(rows)) + ' processes)':<24} "
        f"{total_cpu:>7.2f} {total_pss:>8.1f}"
    )
    verdict = "within" if total_cpu < CPU_TARGET_PERCENT and total_pss < PSS_TARGET_MB else "over"
    lines.append(
        f"target: < {CPU_TARGET_PERCENT:g} % of a core and < {PSS_TARGET_MB:g} MB PSS: {verdict}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after start-up")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of measurement")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nebula-idle-"))
    data = work / "data"
    env = environ_without()
    for variable in ("NEBULA_S3PROXY_PORT", "NEBULA_ORIGIN_PORT", "NEBULA_STORAGE_PORT"):
        env[variable] = str(free_internal_port())
    log = work / "nebula-up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "nebula", "up", "--data-dir", str(data)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=work,
        )
    try:
        wait_up(up, log, data, env)
        time.sleep(args.settle)
        print(report(measure(up.pid, args.window)))
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
