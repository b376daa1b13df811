"""Demo indicator values per commune for the last four quarters, consistent with the demo layers.

Rates carry their numerator and denominator; the denominators come from the demo population, and
the health and school numerators from the demo facilities, so layer and table tell one story.
Values are drawn around each indicator's target so that some communes and some totals miss it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from gis_ioc.catalog.indicators import IndicatorCatalog
from gis_ioc.demo.geometry import Commune

PROVINCE_POPULATION = 3_570_000

# indicator → (denominator, mean value relative to the period's target, standard deviation).
# "counts": the numerator is a Poisson count of events; "layer": numerator from the demo layers.
_RATES: dict[str, tuple[str, float, float]] = {
    "health_insurance_coverage": ("population", -0.6, 1.6),
    "primary_enrolment_rate": ("children", -0.05, 0.25),
    "clean_water_access_rate": ("households", -1.5, 3.5),
    "waste_collection_rate": ("households", -1.0, 4.0),
    "poor_household_rate": ("households", 0.1, 0.8),
    "procedures_on_time_rate": ("procedures", 0.6, 1.2),
    "chip_id_coverage": ("adults", -0.3, 0.45),
    "traffic_accidents_per_100k": ("counts", 0.05, 0.0),
    "crime_incidents_per_10k": ("counts", 0.0, 0.0),
}


def last_quarters(as_of: date, n: int = 4) -> list[str]:
    """The n complete quarters before ``as_of``, oldest first (2026-11-27 → 2025-Q4 … 2026-Q3)."""
    year, quarter = as_of.year, (as_of.month - 1) // 3 + 1
    out = []
    for _ in range(n):
        quarter -= 1
        if quarter == 0:
            year, quarter = year - 1, 4
        out.append(f"{year}-Q{quarter}")
    return out[::-1]


# Late reporting, so that "stale" occurs: most communes have not reported chip-based ID coverage since
# the first quarter (their later rows carry that figure and its date forward, as a stale register
# does), and a few communes last reported clean-water access for the fourth quarter of 2025.
CARRIED_FORWARD = "chip_id_coverage"
CARRIED_SHARE = 0.6
LATE = "clean_water_access_rate"
LATE_COMMUNES = 8


def reported_on(period: str, lag_days: int, as_of: date) -> datetime:
    """When a period's figure reached the IOC: ``lag_days`` after the period ends, never after ``as_of``."""
    year, quarter = int(period[:4]), int(period[-1])
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    day = min(end + timedelta(days=lag_days), as_of)
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def indicator_rows(
    rng: np.random.Generator,
    catalog: IndicatorCatalog,
    communes: list[Commune],
    periods: list[str],
    facilities: dict[str, dict[str, float]],
    as_of: date,
) -> Iterator[tuple[Any, ...]]:
    """Rows (indicator_id, commune_code, period, value, numerator, denominator, updated_at)."""
    carried = set(rng.permutation(len(communes))[: round(CARRIED_SHARE * len(communes))].tolist())
    late = set(rng.permutation(len(communes))[:LATE_COMMUNES].tolist())
    last: dict[tuple[str, int], tuple[Any, ...]] = {}
    for row, c in _values(rng, catalog, communes, periods, facilities):
        indicator_id, period = row[0], row[2]
        step = periods.index(period)
        if indicator_id == CARRIED_FORWARD and c in carried and step >= 2 and (indicator_id, c) in last:
            value, numerator, denominator, when = last[(indicator_id, c)]
            yield (indicator_id, row[1], period, value, numerator, denominator, when)
            continue
        if indicator_id == LATE and c in late and step >= 1 and (indicator_id, c) in last:
            value, numerator, denominator, when = last[(indicator_id, c)]
            yield (indicator_id, row[1], period, value, numerator, denominator, when)
            continue
        when = reported_on(period, int(rng.integers(12, 30)), as_of)
        last[(indicator_id, c)] = (*row[3:6], when)
        yield (*row, when)


def _values(
    rng: np.random.Generator,
    catalog: IndicatorCatalog,
    communes: list[Commune],
    periods: list[str],
    facilities: dict[str, dict[str, float]],
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """(row, commune index) with rows (indicator_id, commune_code, period, value, numerator, denominator)."""
    index_of = {c.code: i for i, c in enumerate(communes)}
    for row in _value_rows(rng, catalog, communes, periods, facilities):
        yield row, index_of[row[1]]


def _value_rows(
    rng: np.random.Generator,
    catalog: IndicatorCatalog,
    communes: list[Commune],
    periods: list[str],
    facilities: dict[str, dict[str, float]],
) -> Iterator[tuple[Any, ...]]:
    weights = np.array([c.area * (3.2 if c.is_ward else 1.0) for c in communes])
    base_pop = np.round(PROVINCE_POPULATION * weights / weights.sum() * rng.uniform(0.85, 1.15, len(communes)))
    hh_size = rng.uniform(3.1, 3.6, len(communes))
    bias = {ind.id: rng.normal(0, 0.6, len(communes)) for ind in catalog.indicators}  # communes keep their character
    income_base = np.where([c.is_ward for c in communes], 8.2, 6.0) * rng.uniform(0.85, 1.15, len(communes))
    for step, period in enumerate(periods):
        pop = np.round(base_pop * (1 + 0.002 * step))
        households = np.round(pop / hh_size)
        denominators = {
            "population": pop,
            "households": households,
            "children": np.round(pop * 0.078),
            "adults": np.round(pop * 0.8),
            "procedures": np.round(pop * rng.uniform(0.01, 0.03)),
        }
        for ind in catalog.indicators:
            target = ind.target_for(period)
            for c, commune in enumerate(communes):
                code = commune.code
                if ind.id == "population":
                    yield (ind.id, code, period, float(pop[c]), None, None)
                elif ind.id == "households":
                    yield (ind.id, code, period, float(households[c]), None, None)
                elif ind.id == "income_per_capita":
                    value = round(float(income_base[c] * (1 + 0.015 * step) + rng.normal(0, 0.2)), 2)
                    yield (ind.id, code, period, value, None, None)
                elif ind.id in ("hospital_beds_per_10k", "doctors_per_10k"):
                    field = "beds" if ind.id.startswith("hospital") else "doctors"
                    num = facilities.get(code, {}).get(field, 0.0)
                    yield _rate(ind.id, code, period, num, float(pop[c]), ind.aggregation.scale)
                elif ind.id == "schools_national_standard_rate":
                    counts = facilities.get(code, {})
                    yield _rate(
                        ind.id,
                        code,
                        period,
                        counts.get("standard_schools", 0.0),
                        counts.get("schools", 0.0),
                        ind.aggregation.scale,
                    )
                elif ind.id in _RATES and target is not None:
                    denominator_kind, offset, sd = _RATES[ind.id]
                    scale = ind.aggregation.scale
                    if denominator_kind == "counts":
                        expected = pop[c] * target * (1 + offset + 0.25 * bias[ind.id][c]) / scale
                        num = float(rng.poisson(max(expected, 0.0)))
                        yield _rate(ind.id, code, period, num, float(pop[c]), scale)
                        continue
                    improve = 0.15 * step * (1 if ind.direction == "higher" else -1) * sd
                    rate = target + offset + improve + sd * (0.7 * bias[ind.id][c] + 0.3 * rng.normal())
                    rate = float(np.clip(rate, 0.0, scale))
                    den = float(denominators[denominator_kind][c])
                    yield _rate(ind.id, code, period, round(den * rate / scale), den, scale)


def _rate(indicator_id: str, code: str, period: str, num: float, den: float, scale: float) -> tuple[Any, ...]:
    value = None if den == 0 else round(num / den * scale, 4)
    return (indicator_id, code, period, value, num, den)
