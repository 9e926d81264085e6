"""Hardware detection against the real ffmpeg: no GPU here, so auto must fall back."""

from __future__ import annotations

import logging

import pytest

from transcoder import hwaccel


def test_auto_falls_back_without_a_device_in_one_quiet_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        choice = hwaccel.detect("auto", "/dev/dri/no-such-render-node")
    assert choice.mode == "none"
    assert "no device" in choice.reasons["qsv"] and "no device" in choice.reasons["vaapi"]
    # No GPU is no news: one INFO line, no warning about QSV or VAAPI.
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.INFO,
            "no Intel GPU found (/dev/dri/no-such-render-node); encoding with libx264; "
            "`nebula doctor` for details",
        )
    ]


def test_auto_falls_back_when_ffmpeg_cannot_open_the_device(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # /dev/null exists and is writable: the real ffmpeg gets to try, and fails.
    with caplog.at_level(logging.INFO):
        choice = hwaccel.detect("auto", "/dev/null", timeout=30)
    assert choice.mode == "none"
    assert choice.reasons["qsv"].startswith("test encode failed:")
    assert choice.reasons["vaapi"].startswith("test encode failed:")
    # A GPU that fails is worth one warning, naming both reasons.
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "qsv: test encode failed" in record.getMessage()


def test_explicit_qsv_also_falls_back_with_its_reason() -> None:
    choice = hwaccel.detect("qsv", "/dev/null", timeout=30)
    assert choice.mode == "none" and set(choice.reasons) == {"qsv"}


def test_none_never_probes() -> None:
    assert hwaccel.detect("none", "/dev/null").mode == "none"


def test_probe_commands() -> None:
    assert hwaccel.probe_argv("qsv", "/dev/dri/renderD128")[5:9] == [
        "-init_hw_device",
        "qsv=hw:/dev/dri/renderD128",
        "-filter_hw_device",
        "hw",
    ]
    assert "h264_vaapi" in hwaccel.probe_argv("vaapi", "/dev/dri/renderD128")
