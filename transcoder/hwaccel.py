"""Hardware encoding detection: can this machine really encode H.264 on QSV or VAAPI?

A device node that exists is not enough (driver, firmware, permissions, a container
without the render group...), so we open the device and encode a 1 s clip under a
timeout. ``auto`` tries QSV, then VAAPI, then settles for libx264. The outcome is one
log line at start (the reasons in full are ``nebula doctor``'s and DEBUG's): a machine
without a GPU is no news, so that case is INFO, and a GPU that fails is one WARNING.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from nebulacore.config import Settings
from transcoder.errors import one_line

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 20.0
TEST_SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1"]
ENCODERS = {"qsv": "h264_qsv", "vaapi": "h264_vaapi", "none": "libx264"}
NO_DEVICE = "no device"
DETAILS = "`nebula doctor` for details"


@dataclass(frozen=True)
class Choice:
    mode: str  # "qsv", "vaapi" or "none"
    reasons: dict[str, str] = field(default_factory=dict)  # why each other mode was not used


def probe_argv(mode: str, device: str) -> list[str]:
    base = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    if mode == "qsv":
        device_args = ["-init_hw_device", f"qsv=hw:{device}", "-filter_hw_device", "hw"]
        graph = "format=nv12,hwupload=extra_hw_frames=16"
    else:
        device_args = ["-vaapi_device", device]
        graph = "format=nv12,hwupload"
    return [
        *base,
        *device_args,
        *TEST_SOURCE,
        "-vf",
        graph,
        "-c:v",
        ENCODERS[mode],
        "-f",
        "null",
        "-",
    ]


def candidates(setting: str) -> list[str]:
    """The hardware modes ``NEBULA_HWACCEL`` allows trying, in order."""
    return {"auto": ["qsv", "vaapi"], "none": []}.get(setting, [setting])


@functools.cache  # the installed ffmpeg does not change while we run
def encoder_compiled(encoder: str) -> bool:
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return any(
        line.split()[1:2] == [encoder] for line in result.stdout.splitlines() if line.strip()
    )


def try_mode(mode: str, device: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``mode`` encodes here, else the reason it does not."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed"
    if not encoder_compiled(ENCODERS[mode]):
        return f"this ffmpeg has no {ENCODERS[mode]} encoder"
    if not os.path.exists(device):
        return f"{NO_DEVICE} {device} (no GPU, or /dev/dri not passed to the container)"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"no permission on {device} (add the user to the render/video group)"
    try:
        result = subprocess.run(
            probe_argv(mode, device), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"a 1 s test encode did not finish within {timeout:g}s"
    if result.returncode != 0:
        return f"test encode failed: {one_line(result.stderr)}"
    return None


def detect(setting: str, device: str, timeout: float = PROBE_TIMEOUT) -> Choice:
    """Resolve ``NEBULA_HWACCEL`` into the mode to use, with reasons for the others."""
    if setting == "none":
        return Choice("none", {"qsv": "NEBULA_HWACCEL=none", "vaapi": "NEBULA_HWACCEL=none"})
    reasons: dict[str, str] = {}
    for mode in candidates(setting):
        reason = try_mode(mode, device, timeout)
        if reason is None:
            log.info("hardware encoding: %s on %s", mode, device)
            return Choice(mode, reasons)
        reasons[mode] = reason
        log.debug("hardware encoding %s unavailable: %s", mode, reason)
    log_fallback(setting, device, reasons)
    return Choice("none", reasons)


def log_fallback(setting: str, device: str, reasons: dict[str, str]) -> None:
    """One line for the software fallback."""
    if setting == "auto" and all(r.startswith(NO_DEVICE) for r in reasons.values()):
        log.info("no Intel GPU found (%s); encoding with libx264; %s", device, DETAILS)
        return
    tried = "; ".join(f"{mode}: {reason}" for mode, reason in reasons.items())
    log.warning("hardware encoding unusable (%s); encoding with libx264; %s", tried, DETAILS)


_resolved: dict[tuple[str, str], Choice] = {}


def resolve(settings: Settings) -> Choice:
    """Detect once per process (at worker start) and remember the answer."""
    key = (settings.hwaccel, settings.hw_device)
    if key not in _resolved:
        _resolved[key] = detect(settings.hwaccel, settings.hw_device)
    return _resolved[key]
