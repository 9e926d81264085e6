"""nebulacore.counters: the per-worker counter files /metrics sums, with real processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from nebulacore.counters import (
    FILE_BYTES,
    OVERFLOW,
    SUFFIX,
    CounterFile,
    file_name,
    fresh_runtime_dir,
    sum_files,
)


def _worker_that_dies(directory: str) -> None:
    counters = CounterFile(Path(directory) / file_name(1))
    requests = counters.slot(("requests", "GET", "200"))
    for _ in range(7):
        counters.add(requests, 1)
    counters.set(counters.slot(("gauge", "cache_bytes")), 100.0)


def test_a_dead_workers_counts_stay_but_its_gauges_go(tmp_path: Path) -> None:
    directory = fresh_runtime_dir(tmp_path / "run")
    child = multiprocessing.get_context("fork").Process(
        target=_worker_that_dies, args=(str(directory),)
    )
    child.start()
    child.join()
    assert child.exitcode == 0
    mine = CounterFile(directory / file_name(0))
    mine.add(mine.slot(("requests", "GET", "200")), 3)
    mine.add(mine.slot(("requests", "GET", "404")), 2)
    mine.set(mine.slot(("gauge", "cache_bytes")), 40.0)
    totals = sum_files(directory.glob(f"*{SUFFIX}"), live_only="gauge")
    assert totals[("requests", "GET", "200")] == 10
    assert totals[("requests", "GET", "404")] == 2
    assert totals[("gauge", "cache_bytes")] == 40.0  # the dead worker's cache is gone
    assert len(list(directory.glob(f"*{SUFFIX}"))) == 2
    # A new start of the service begins from nothing (a counter reset, as for any restart).
    assert list(fresh_runtime_dir(directory).glob(f"*{SUFFIX}")) == []


def test_a_full_file_counts_new_label_sets_in_one_overflow_counter() -> None:
    counters = CounterFile()
    entries = 0
    while True:
        slot = counters.slot(("requests", "X", str(entries)))
        counters.add(slot, 1)
        entries += 1
        if slot == counters.slot(OVERFLOW):
            break
    assert entries * 24 > FILE_BYTES // 2  # it did fill the file first
    for extra in range(5):
        counters.add(counters.slot(("requests", "Y", str(extra))), 1)
    values = counters.snapshot()
    assert values[OVERFLOW] == 6
    assert ("requests", "Y", "0") not in values
    assert sum(values.values()) == entries + 5
