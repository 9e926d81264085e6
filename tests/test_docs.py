"""The documentation stays true to the code: docs/configuration.md's table is the settings.

To document a new setting, add one row to the table in docs/configuration.md:
``| `NEBULA_NAME` | `default` | meaning |``, the default written as it would be set in the
environment (an en dash for an empty list or string). A setting whose default is unset (None)
may describe it instead (``generated``, ``<data>/cache``): nothing to check there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nebulacore.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
TABLE_HEADER = ("variable", "default", "meaning")
EMPTY = "\N{EN DASH}"  # a default cell for an empty value
# Read by load_settings itself (names the file of defaults), not a field of Settings.
NOT_A_FIELD = {"NEBULA_CONFIG_FILE"}


def cells(line: str) -> list[str]:
    """The cells of one Markdown table row, backticks and padding removed."""
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def settings_rows(text: str) -> list[tuple[str, str]]:
    """(variable, default) of each row of the first ``| variable | default | meaning |``
    table in ``text``."""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("|") and tuple(cells(line)) == TABLE_HEADER:
            break
    else:
        raise AssertionError(f"no | variable | default | meaning | table in {CONFIGURATION}")
    next(lines)  # the | --- | --- | --- | line
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        variable, default, _meaning = cells(line)
        rows.append((variable, default))
    return rows


def accepted_variables() -> set[str]:
    """Every NEBULA_* variable load_settings takes: field ``foo`` is ``NEBULA_FOO``."""
    return {f"NEBULA_{name.upper()}" for name in Settings.model_fields} | NOT_A_FIELD


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, str]]:
    return settings_rows(CONFIGURATION.read_text())


def test_configuration_table_lists_every_setting_once(rows: list[tuple[str, str]]) -> None:
    documented = [variable for variable, _ in rows]
    repeated = sorted({v for v in documented if documented.count(v) > 1})
    missing = sorted(accepted_variables() - set(documented))
    unknown = sorted(set(documented) - accepted_variables())
    assert not missing, f"add a row to docs/configuration.md for each of {missing}"
    assert not unknown, f"docs/configuration.md documents no such setting: {unknown}"
    assert not repeated, f"docs/configuration.md lists these more than once: {repeated}"


def test_configuration_table_defaults_are_the_settings_defaults(
    rows: list[tuple[str, str]],
) -> None:
    """Each fixed default, read back as an environment value, gives the code's default."""
    defaults = load_settings({})
    wrong = []
    for variable, cell in rows:
        if variable in NOT_A_FIELD:
            continue
        field = variable.removeprefix("NEBULA_").lower()
        expected = getattr(defaults, field)
        if expected is None:
            continue  # unset by default: the cell describes what happens
        value = "" if cell == EMPTY else cell
        try:
            documented = getattr(load_settings({variable: value}), field)
        except ConfigError as exc:
            wrong.append(f"{variable}: {cell!r} is not a valid value ({exc})")
            continue
        if documented != expected:
            wrong.append(f"{variable}: documented {cell!r}, the code's default is {expected!r}")
    assert not wrong, "docs/configuration.md defaults:\n  " + "\n  ".join(wrong)


def test_settings_rows_reads_only_the_settings_table() -> None:
    text = (
        "intro\n\n| variable | default | meaning |\n| --- | --- | --- |\n"
        f"| `NEBULA_A` | `1` | one |\n| `NEBULA_B` | {EMPTY} | two |\n\nafter\n\n"
        "| variable | default | meaning |\n| --- | --- | --- |\n| `NEBULA_C` | `3` | no |\n"
    )
    assert settings_rows(text) == [("NEBULA_A", "1"), ("NEBULA_B", EMPTY)]


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    in_code = False
    for line in path.read_text().splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            title = line.lstrip("#").strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: str(p.relative_to(ROOT))
)
def test_links_between_the_docs_lead_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert not broken, f"{page.name} links to nothing: {broken}"


POINTER = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
CODE_FOLDERS = (
    *("nebulacore", "catalog", "nebulaqueue", "s3proxy", "transcoder", "origin", "nebula"),
    *("bench", "tests"),
)


def test_pointers_from_the_code_to_the_docs_lead_somewhere() -> None:
    """Comments such as "(docs/benchmarks.md#origin)" name a page and heading that exist."""
    sources = [p for f in CODE_FOLDERS for p in (ROOT / f).rglob("*.py")]
    broken = []
    for source in sources:
        for page, anchor in POINTER.findall(source.read_text()):
            target = DOCS / page
            if not target.exists() or (anchor and anchor not in anchors(target)):
                broken.append(f"{source.relative_to(ROOT)}: docs/{page}#{anchor}")
    assert not broken, f"pointers to no page or heading: {broken}"
