"""Huey tasks. ``huey_consumer transcoder.tasks.huey`` consumes them."""

from __future__ import annotations

from nebula.config import load_settings
from transcoder.queue import make_huey

huey = make_huey(load_settings())
