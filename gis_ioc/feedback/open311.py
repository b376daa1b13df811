"""Open311 GeoReport v2 shapes: the service list and a request as anyone may see it (no name, phone or
e-mail ever: they are not even read for these answers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gis_ioc.feedback import workflow
from gis_ioc.feedback.config import FeedbackConfig


def services(cfg: FeedbackConfig, lang: str) -> list[dict[str, Any]]:
    return [
        {
            "service_code": c.code,
            "service_name": c.name.get(lang),
            "description": c.name.get(lang),
            "metadata": False,
            "type": "realtime",
            "keywords": "",
            "group": c.group.get(lang),
        }
        for c in cfg.categories.values()
    ]


def iso(at: datetime | None, cfg: FeedbackConfig) -> str | None:
    return at.astimezone(cfg.calendar.zone).isoformat(timespec="seconds") if at is not None else None


def vn_datetime(at: datetime, cfg: FeedbackConfig) -> str:
    """For people: 10:30 28/04/2026 (Vietnam's time)."""
    return at.astimezone(cfg.calendar.zone).strftime("%H:%M %d/%m/%Y")


def request(row: dict[str, Any], cfg: FeedbackConfig, names: dict[str, str], lang: str, base: str) -> dict[str, Any]:
    category = cfg.categories.get(row["category"])
    media = [f"{base}/api/feedback/photos/{p}.jpg" for p in row["photos"]]
    notes = row["answer"] or workflow.state_name(row["state"], lang)
    return {
        "service_request_id": str(row["id"]),
        "status": workflow.OPEN311_STATUS[row["state"]],
        "status_notes": notes,
        "service_name": category.name.get(lang) if category else row["category"],
        "service_code": row["category"],
        "description": row["description"],
        "agency_responsible": cfg.unit_name(row["unit"], lang, names),
        "service_notice": "",
        "requested_datetime": iso(row["received_at"], cfg),
        "updated_datetime": iso(row["updated_at"], cfg),
        "expected_datetime": iso(row["due_at"], cfg),
        "address": row["address"] or "",
        "address_id": "",
        "zipcode": "",
        "lat": round(row["lat"], 6),
        "long": round(row["lon"], 6),
        "media_url": media[0] if media else "",
        # extensions (clients that do not know them ignore them)
        "detailed_status": row["state"],
        "commune_code": row["commune_code"],
        "commune_name": names.get(row["commune_code"], row["commune_code"]),
        "media_urls": media,
        "merged_into": str(row["merged_into"]) if row["merged_into"] is not None else None,
    }


def feature(row: dict[str, Any], cfg: FeedbackConfig, names: dict[str, str], lang: str) -> dict[str, Any]:
    """A report on the public map (GeoJSON), without personal data."""
    category = cfg.categories.get(row["category"])
    return {
        "type": "Feature",
        "id": row["id"],
        "geometry": {"type": "Point", "coordinates": [round(row["lon"], 6), round(row["lat"], 6)]},
        "properties": {
            "id": row["id"],
            "category": row["category"],
            "category_name": category.name.get(lang) if category else row["category"],
            "state": row["state"],
            "state_name": workflow.state_name(row["state"], lang),
            "status": workflow.OPEN311_STATUS[row["state"]],
            "commune_code": row["commune_code"],
            "commune_name": names.get(row["commune_code"], row["commune_code"]),
            "received": vn_datetime(row["received_at"], cfg),
            "due": vn_datetime(row["due_at"], cfg),
            "description": row["description"],
        },
    }
