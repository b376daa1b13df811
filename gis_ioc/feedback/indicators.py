"""Per-commune indicators of citizen reports over a quarter: received, overdue, resolved on time (%),
satisfaction (mean rating), each flagged against the targets in ``config/feedback/categories.yaml``."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import psycopg

from gis_ioc.feedback.config import FeedbackConfig
from gis_ioc.feedback.errors import FeedbackError

ROMAN = ("I", "II", "III", "IV")

SQL = """
WITH r AS (
    SELECT f.commune_code, f.state, f.due_at, f.resolved_at,
           (SELECT avg(g.score) FROM gis_ioc.feedback_ratings g WHERE g.report_id = f.id) AS score
    FROM gis_ioc.feedback_reports f
    WHERE f.received_at >= %(start)s AND f.received_at < %(end)s AND f.merged_into IS NULL
)
SELECT c.code, c.name,
       count(r.commune_code) AS received,
       count(*) FILTER (WHERE r.resolved_at IS NOT NULL) AS resolved,
       count(*) FILTER (WHERE r.resolved_at IS NOT NULL AND r.resolved_at <= r.due_at) AS on_time,
       count(*) FILTER (WHERE (r.resolved_at IS NULL AND r.state NOT IN ('closed', 'rejected')
                               AND r.due_at < least(now(), %(end)s))
                           OR r.resolved_at > r.due_at) AS overdue,
       avg(r.score) AS satisfaction,
       count(r.score) AS rated
FROM layers.communes c LEFT JOIN r ON r.commune_code = c.code
WHERE c.valid_to IS NULL
GROUP BY c.code, c.name
ORDER BY c.code
"""


def quarter(period: str) -> tuple[datetime, datetime, str]:
    """``2026-Q3`` → its start and end (Vietnam's time) and its name, ``Quý III/2026``."""
    match = re.fullmatch(r"(\d{4})-Q([1-4])", period.strip())
    if match is None:
        raise FeedbackError(
            f"kỳ {period!r} không hợp lệ: viết năm-quý, ví dụ 2026-Q3",
            f"period {period!r}: write year-quarter, e.g. 2026-Q3",
        )
    year, q = int(match[1]), int(match[2])
    start = date(year, 3 * q - 2, 1)
    end = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)
    return (
        datetime.fromisoformat(f"{start}T00:00:00+07:00"),
        datetime.fromisoformat(f"{end}T00:00:00+07:00"),
        (f"Quý {ROMAN[q - 1]}/{year}"),
    )


def vn_number(value: float, decimals: int = 1) -> str:
    """1.234,5: Vietnamese separators."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def by_commune(conn: psycopg.Connection[Any], cfg: FeedbackConfig, period: str) -> dict[str, Any]:
    start, end, name = quarter(period)
    rows = conn.execute(SQL, {"start": start, "end": end}).fetchall()
    communes = []
    for code, commune, received, resolved, on_time, overdue, satisfaction, rated in rows:
        pct = 100.0 * on_time / resolved if resolved else None
        mean = float(satisfaction) if satisfaction is not None else None
        flags = []
        if pct is not None and pct < cfg.on_time_target:
            flags.append("on_time")
        if mean is not None and mean < cfg.satisfaction_target:
            flags.append("satisfaction")
        communes.append(
            {
                "commune_code": code,
                "commune_name": commune,
                "received": received,
                "resolved": resolved,
                "overdue": overdue,
                "resolved_on_time_pct": round(pct, 1) if pct is not None else None,
                "resolved_on_time_text": f"{vn_number(pct)} %" if pct is not None else "—",
                "satisfaction": round(mean, 2) if mean is not None else None,
                "satisfaction_text": vn_number(mean) if mean is not None else "—",
                "ratings": rated,
                "flags": flags,
            }
        )
    return {
        "period": period,
        "period_name": name,
        "targets": {"resolved_on_time_pct": cfg.on_time_target, "satisfaction": cfg.satisfaction_target},
        "communes": communes,
    }
