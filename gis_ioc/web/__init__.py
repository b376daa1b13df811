"""The leaders' web map: one HTML page, its script and styles, and vendored MapLibre GL JS."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
VENDOR_DIR = STATIC_DIR / "vendor"
