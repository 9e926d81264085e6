"""``nebula doctor``: what this machine can encode with, and why not the rest."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess

from nebula.cli.base import Commands, add_command, settings_from
from nebula.cli.table import render


def register(commands: Commands) -> None:
    doctor = add_command(commands, "doctor", "hardware encoding and tools this machine has")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=run_doctor)


def _ffmpeg_version() -> str | None:
    if shutil.which("ffmpeg") is None:
        return None
    result = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else None


def run_doctor(args: argparse.Namespace) -> int:
    from transcoder import hwaccel

    settings = settings_from(args)
    modes: dict[str, dict[str, object]] = {}
    for mode in ("qsv", "vaapi"):
        reason = hwaccel.try_mode(mode, settings.hw_device)
        modes[mode] = {"ok": reason is None, "detail": reason or f"encodes on {settings.hw_device}"}
    libx264 = hwaccel.encoder_compiled("libx264") if shutil.which("ffmpeg") else False
    modes["software"] = {
        "ok": libx264,
        "detail": "libx264" if libx264 else "this ffmpeg has no libx264 encoder",
    }
    usable = [mode for mode in hwaccel.candidates(settings.hwaccel) if modes[mode]["ok"]]
    would_use = usable[0] if usable else "none"
    report = {
        "ffmpeg": _ffmpeg_version() or "missing (apt-get install ffmpeg)",
        "hwaccel_setting": settings.hwaccel,
        "device": settings.hw_device,
        "would_use": would_use,
        "encoders": modes,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"ffmpeg: {report['ffmpeg']}")
        rows = [("yes" if r["ok"] else "no", name, r["detail"]) for name, r in modes.items()]
        print(render(("USABLE", "ENCODER", "DETAIL"), rows))
        print(
            f"NEBULA_HWACCEL={settings.hwaccel}: the worker would encode with "
            f"{'libx264 (software)' if would_use == 'none' else would_use}"
        )
    return 0 if libx264 or would_use != "none" else 1
