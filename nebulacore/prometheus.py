"""Prometheus exposition-format names, shared by every gauge source (ops, catalog, queue)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def label_value(value: object) -> str:
    """Escape a label value as the exposition format requires (backslash, quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample_name(metric: str, **labels: object) -> str:
    """``metric{label="value",...}`` with escaped values, labels in the order given;
    just ``metric`` without labels."""
    if not labels:
        return metric
    inner = ",".join(f'{name}="{label_value(value)}"' for name, value in labels.items())
    return f"{metric}{{{inner}}}"


def labelled_counter(
    name: str, help_text: str, labels: tuple[str, ...], counts: Mapping[Any, int]
) -> list[str]:
    """A counter family: its HELP and TYPE lines, then one sample per label set, sorted."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    for values, count in sorted(counts.items()):
        lines.append(f"{sample_name(name, **dict(zip(labels, values, strict=True)))} {count}")
    return lines
