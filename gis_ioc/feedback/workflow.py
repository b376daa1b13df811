"""States of a report and the transitions between them (anything else is a 409)."""

from __future__ import annotations

STATES = ("received", "assigned", "in_progress", "resolved", "closed", "rejected", "reopening")
OPEN_STATES = frozenset({"received", "assigned", "in_progress", "reopening"})
#: Open311's two statuses.
OPEN311_STATUS = {s: ("open" if s in OPEN_STATES else "closed") for s in STATES}

TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"assigned", "in_progress", "rejected"}),
    "assigned": frozenset({"in_progress", "rejected"}),
    "in_progress": frozenset({"resolved"}),
    "resolved": frozenset({"closed", "reopening"}),
    "rejected": frozenset({"reopening", "closed"}),
    "reopening": frozenset({"assigned", "in_progress", "rejected"}),
    "closed": frozenset(),
}

STATE_NAMES: dict[str, tuple[str, str]] = {
    "received": ("Đã tiếp nhận", "Received"),
    "assigned": ("Đã giao xử lý", "Assigned"),
    "in_progress": ("Đang xử lý", "In progress"),
    "resolved": ("Đã xử lý", "Resolved"),
    "closed": ("Đã đóng", "Closed"),
    "rejected": ("Từ chối", "Rejected"),
    "reopening": ("Mở lại", "Reopened"),
}


def state_name(state: str, lang: str) -> str:
    vi, en = STATE_NAMES[state]
    return en if lang == "en" else vi


def allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
