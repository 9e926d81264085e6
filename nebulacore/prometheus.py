"""Prometheus exposition-format names, shared by every gauge source (ops, catalog, queue)."""

from __future__ import annotations


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
