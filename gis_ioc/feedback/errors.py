"""Errors of the feedback doors, in Vietnamese first and English on a switch (``Accept-Language: en``)."""

from __future__ import annotations

from gis_ioc.errors import GisIocError


class FeedbackError(GisIocError):
    """An error whose message exists in Vietnamese (``str()``) and English (:attr:`en`)."""

    status = 400
    title = "Invalid input"

    def __init__(self, vi: str, en: str, status: int | None = None) -> None:
        super().__init__(vi)
        self.vi = vi
        self.en = en
        if status is not None:
            self.status = status

    def message(self, lang: str) -> str:
        return self.en if lang == "en" else (self.vi or self.en)

    def text(self, lang: str = "en") -> str:
        return self.message(lang)


class NotFoundReport(FeedbackError):
    status = 404
    title = "Not found"

    def __init__(self, report_id: object) -> None:
        super().__init__(f"không có phản ánh số {report_id}", f"no report {report_id}")


class IllegalTransition(FeedbackError):
    status = 409
    title = "Conflict"
