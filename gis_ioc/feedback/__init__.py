"""Citizen reports (phản ánh, kiến nghị): intake (the public page and Open311 GeoReport v2), routing to the
handling unit from the point's commune and a category → unit matrix (``config/feedback``), the workflow and
its deadlines on a working-hours calendar, escalation of overdue reports, answers and ratings, photos.

Plain Python over SQL: the HTTP doors (:mod:`gis_ioc.api.feedback`) are thin shells over these modules.
"""
