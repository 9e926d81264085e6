"""Ladder choice: by short side after rotation, never upscale, even dims, >= 1 rung."""

from __future__ import annotations

import pytest

from nebulacore.config import DEFAULT_LADDER, parse_ladder
from transcoder.ladder import choose_ladder

RUNGS = parse_ladder(DEFAULT_LADDER)


def sizes(width: int, height: int) -> list[tuple[int, int]]:
    return [(r.width, r.height) for r in choose_ladder(width, height, RUNGS)]


def test_1080p_gets_every_rung_up_to_its_size() -> None:
    assert sizes(1920, 1080) == [(1920, 1080), (1280, 720), (854, 480), (640, 360)]


def test_4k_gets_the_full_ladder() -> None:
    assert sizes(3840, 2160)[0] == (3840, 2160)
    assert len(sizes(3840, 2160)) == 6


def test_portrait_uses_the_short_side() -> None:
    assert sizes(1080, 1920) == [(1080, 1920), (720, 1280), (480, 854), (360, 640)]


def test_in_between_source_gets_a_rung_at_its_own_size() -> None:
    ladder = choose_ladder(1278, 718, RUNGS)
    assert [(r.width, r.height) for r in ladder] == [(1278, 718), (854, 480), (640, 360)]
    assert 1400 < ladder[0].video_kbps < 3000  # between the 480p and 720p rates


def test_tiny_source_gets_one_rung_at_its_own_size() -> None:
    ladder = choose_ladder(320, 240, RUNGS)
    assert [(r.width, r.height) for r in ladder] == [(320, 240)]
    assert ladder[0].video_kbps > 0


@pytest.mark.parametrize("width,height", [(319, 239), (641, 361), (1921, 1081), (3, 3), (1000, 7)])
def test_dimensions_are_even_and_never_upscaled(width: int, height: int) -> None:
    for rung in choose_ladder(width, height, RUNGS):
        assert rung.width % 2 == 0 and rung.height % 2 == 0
        assert rung.width <= width and rung.height <= height


def test_bigger_than_the_top_rung_is_capped_at_the_top_rung() -> None:
    assert sizes(7680, 4320)[0] == (3840, 2160)


def test_near_a_rung_snaps_to_it_instead_of_a_duplicate() -> None:
    assert [r.name for r in choose_ladder(1920, 1088, RUNGS)] == ["1080p", "720p", "480p", "360p"]


def test_rung_names_follow_the_short_side() -> None:
    assert [r.name for r in choose_ladder(1080, 1920, RUNGS)] == ["1080p", "720p", "480p", "360p"]
