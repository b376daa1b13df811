"""Indicator definitions and targets (``config/indicators.yaml``).

Indicators are not a map layer: their values live per commune and period in
``gis_ioc.indicator_values``; definitions and targets live here and are synced to the database.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gis_ioc.catalog.models import Identifier, Text
from gis_ioc.errors import CatalogError

PERIOD_RE = re.compile(r"^(?P<year>\d{4})(?:-Q(?P<quarter>[1-4]))?$")
Period = Annotated[str, Field(pattern=PERIOD_RE.pattern)]
Sector = Literal[
    "population",
    "health",
    "education",
    "transport",
    "environment",
    "public_order",
    "social_welfare",
    "economy",
    "administration",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """Targets for one period (a year applies to each of its quarters unless a quarter has its own)."""

    province: float | None = None
    communes: dict[str, float] = {}

    @field_validator("communes")
    @classmethod
    def _codes(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [c for c in value if not re.fullmatch(r"\d{5}", c)]
        if bad:
            raise ValueError(f"commune codes must have 5 digits: {bad}")
        return value


class DatedLimit(_Strict):
    """A national limit from the day it takes effect (``from``) until the next one's: data, not code."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    valid_from: date = Field(alias="from")
    value: float
    source: str


class Aggregation(_Strict):
    """How values combine over communes.

    ``sum``: add the values. ``rate``: sum the numerators, sum the denominators, divide and multiply by
    ``scale`` (never an average of rates). ``mean``: weighted by ``weight`` (an indicator id) or plain.
    ``layer``: computed from a layer's features inside the selection, exactly, by spatial query:
    ``measure`` is ``count``, ``sum`` (of ``field``), ``length`` (km, lines) or ``area`` (km², polygons),
    of the features matching ``filter`` (cql2-text); ``per`` divides by the population (``capita``, from
    the population indicator, apportioned) or by the selection's land area (``km2``), times ``scale``.
    ``reach``: the share (times ``scale``) of the ``origin_weight`` (households) of the ``origin`` layer's
    features (buildings) inside the selection that lie within ``distance`` metres, on the ground, of a
    feature of ``layer`` matching ``filter`` (schools within reach of residential areas).
    ``sensor``: a ``statistic`` of the readings of ``quantity`` (the daily and hourly rollups of
    gis_ioc.iot_observations) over the period, from the IoT devices inside the selection: ``mean`` and
    ``max`` of the readings, ``p95``, or
    ``days_over``: the days whose mean over the selection's devices exceeds ``threshold``, or the limit of
    ``limits`` in force on that day (QCVN 05:2023/BTNMT lowers PM2.5's 24-hour limit on 1 January 2026).
    ``feedback``: citizen reports (``gis_ioc.feedback_reports``) received in the period at points inside the
    selection: ``report`` is ``received`` (count), ``overdue`` (count: past their deadline unresolved, or
    resolved late), ``on_time`` (% of those resolved, resolved by their deadline, times ``scale``) or
    ``satisfaction`` (the reporters' mean rating, 1–5).
    """

    kind: Literal["sum", "rate", "mean", "layer", "reach", "sensor", "feedback"]
    scale: float = 1.0
    weight: Identifier | None = None
    layer: Identifier | None = None
    measure: Literal["count", "sum", "length", "area"] | None = None
    field: Identifier | None = None
    filter: str | None = None
    per: Literal["capita", "km2"] | None = None
    distance: float | None = Field(default=None, gt=0, le=50_000)
    origin: Identifier | None = None
    origin_weight: Identifier | None = None
    quantity: Identifier | None = None
    statistic: Literal["mean", "max", "p95", "days_over"] | None = None
    threshold: float | None = None
    limits: tuple[DatedLimit, ...] = ()
    report: Literal["received", "overdue", "on_time", "satisfaction"] | None = None

    def limits_by_day(self) -> tuple[list[date], list[float]]:
        """The limit's starting days and values, oldest first (a constant threshold: in force always)."""
        if self.limits:
            ordered = sorted(self.limits, key=lambda limit: limit.valid_from)
            return [limit.valid_from for limit in ordered], [limit.value for limit in ordered]
        return [date(1, 1, 1)], [self.threshold if self.threshold is not None else 0.0]

    def limit_on(self, day: date) -> float | None:
        """The limit in force on ``day`` (None before the first one)."""
        days, values = self.limits_by_day()
        found = None
        for start, value in zip(days, values, strict=True):
            if start <= day:
                found = value
        return found

    @model_validator(mode="after")
    def _check(self) -> Aggregation:
        own = {
            "layer": {"layer", "measure", "field", "filter", "per"},
            "reach": {"layer", "filter", "distance", "origin", "origin_weight"},
            "sensor": {"quantity", "statistic", "threshold", "limits"},
            "feedback": {"report"},
        }
        given = {
            name
            for name in (
                "layer",
                "measure",
                "field",
                "filter",
                "per",
                "distance",
                "origin",
                "origin_weight",
                "quantity",
                "statistic",
                "threshold",
                "report",
            )
            if getattr(self, name) is not None
        } | ({"limits"} if self.limits else set())
        if stray := sorted(given - own.get(self.kind, set())):
            raise ValueError(f"{', '.join(stray)} do not belong to kind: {self.kind}")
        if self.kind == "layer":
            if self.layer is None or self.measure is None:
                raise ValueError("a layer aggregation needs layer and measure")
            if (self.measure == "sum") != (self.field is not None):
                raise ValueError("measure sum needs a field, and only sum takes one")
        elif self.kind == "reach":
            if None in (self.layer, self.distance, self.origin, self.origin_weight):
                raise ValueError("a reach aggregation needs layer, distance, origin and origin_weight")
        elif self.kind == "feedback":
            if self.report is None:
                raise ValueError("a feedback aggregation needs report: received, overdue, on_time or satisfaction")
        elif self.kind == "sensor":
            if self.quantity is None or self.statistic is None:
                raise ValueError("a sensor aggregation needs quantity and statistic")
            if (self.statistic == "days_over") != (self.threshold is not None or bool(self.limits)):
                raise ValueError("statistic days_over needs a threshold or limits, and only days_over takes them")
            if self.threshold is not None and self.limits:
                raise ValueError("give a threshold or dated limits, not both")
            starts = [limit.valid_from for limit in self.limits]
            if len(set(starts)) != len(starts):
                raise ValueError("two limits take effect on the same day")
        return self


class Indicator(_Strict):
    id: Identifier
    name: Text
    sector: Sector
    unit: str
    direction: Literal["higher", "lower"]
    aggregation: Aggregation
    freshness_days: int = Field(ge=1)
    source_unit: Text
    personal: bool = False
    description: Text | None = None
    targets: dict[Period, Target] = {}

    def target_for(self, period: str, commune_code: str | None = None) -> float | None:
        """The target in force for a period (quarter, else its year), per commune where set."""
        match = PERIOD_RE.match(period)
        if match is None:
            raise ValueError(f"period {period!r} is not YYYY or YYYY-Qn")
        for key in (period, match["year"]):
            target = self.targets.get(key)
            if target is None:
                continue
            if commune_code is not None and commune_code in target.communes:
                return target.communes[commune_code]
            return target.province
        return None


class IndicatorCatalog(_Strict):
    indicators: tuple[Indicator, ...]

    @model_validator(mode="after")
    def _check(self) -> IndicatorCatalog:
        ids = [i.id for i in self.indicators]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"indicator ids repeat: {dupes}")
        for ind in self.indicators:
            if ind.aggregation.weight is not None and ind.aggregation.weight not in ids:
                raise ValueError(f"indicator {ind.id}: weight {ind.aggregation.weight!r} is not an indicator")
        return self

    def get(self, indicator_id: str) -> Indicator:
        for ind in self.indicators:
            if ind.id == indicator_id:
                return ind
        raise CatalogError(f"unknown indicator {indicator_id!r}")


def load_indicators(path: Path) -> IndicatorCatalog:
    if not path.exists():
        raise CatalogError(f"{path}: missing (indicator definitions)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return IndicatorCatalog.model_validate(data)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.name}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        lines = [f"{path.name}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise CatalogError("\n  ".join(lines)) from exc
