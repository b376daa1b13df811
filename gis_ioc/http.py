"""HTTP answers shared by every part of the application: RFC 9457 problem documents."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An ``application/problem+json`` answer; 503s say when to retry."""
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )
