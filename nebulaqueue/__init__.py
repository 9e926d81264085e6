"""Nebula's queue layer: imports nebulacore and catalog only (see README, Architecture)."""
