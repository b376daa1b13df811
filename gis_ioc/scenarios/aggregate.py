"""Indicators over a selection: apportion communes, aggregate by kind, compare with targets.

Communes cut by a selection count with the share of their households inside it, from the
buildings layer (dasymetric), or with the share of their area where no household is mapped;
the result says which. Rates are recomputed from apportioned numerators and denominators and
means are weighted, never averaged or apportioned blindly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.catalog.indicators import PERIOD_RE, Indicator
from gis_ioc.crs import PUBLISHED
from gis_ioc.publish.cql import FilterCompiler, Params, parse_filter
from gis_ioc.scenarios.selectors import Selection

VN_TIME = timezone(timedelta(hours=7), "ICT")
#: A commune cut by a radius or zone is flagged only when at least this share of it (of its households
#: in mapped buildings, or of its area where none is mapped) lies inside the selection: a commune that
#: the circle barely touches is listed with its share, never flagged as a whole (docs/maps.md).
FLAG_MIN_SHARE = 0.10


@dataclass
class CommuneShare:
    code: str
    name: str
    share: float
    method: str  # whole | containing commune | households in buildings | area


@dataclass
class Figure:
    value: float | None
    target: float | None
    status: str  # met | not met | no data | stale | no target
    gap: float | None = None  # shortfall against the target (positive = short), in the indicator's unit
    share_of_target: float | None = None
    previous: float | None = None
    change: float | None = None
    basis: float | None = None  # for rates: the (apportioned) denominator the value rests on
    updated_at: str | None = None  # the oldest report (or latest sensor reading) the value rests on


@dataclass
class IndicatorResult:
    id: str
    name: dict[str, str]
    sector: str
    unit: str
    direction: str
    total: Figure
    communes: dict[str, Figure] = field(default_factory=dict)


def previous_period(period: str) -> str:
    match = PERIOD_RE.match(period)
    if match is None:
        raise ValueError(period)
    year = int(match["year"])
    if match["quarter"] is None:
        return str(year - 1)
    quarter = int(match["quarter"])
    return f"{year - 1}-Q4" if quarter == 1 else f"{year}-Q{quarter - 1}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """The period as [start, end) instants, days counted in Vietnam's time (UTC+7)."""
    match = PERIOD_RE.match(period)
    if match is None:
        raise ValueError(period)
    year = int(match["year"])
    if match["quarter"] is None:
        start, end = (year, 1), (year + 1, 1)
    else:
        q = int(match["quarter"])
        start, end = (year, 3 * q - 2), ((year, 3 * q + 1) if q < 4 else (year + 1, 1))
    return datetime(*start, 1, tzinfo=VN_TIME), datetime(*end, 1, tzinfo=VN_TIME)


def single_commune(shares: list[CommuneShare]) -> str | None:
    """The code of the commune when the selection is exactly one whole commune: its own targets apply."""
    return shares[0].code if len(shares) == 1 and shares[0].method == "whole" else None


def apportion(conn: psycopg.Connection[Any], selection: Selection) -> list[CommuneShare]:
    if selection.kind == "communes":
        rows = conn.execute(
            "SELECT code, name FROM layers.communes WHERE valid_to IS NULL AND code = ANY(%s) ORDER BY code",
            (selection.communes,),
        ).fetchall()
        return [CommuneShare(code, name, 1.0, "whole") for code, name in rows]
    if selection.kind == "province":
        rows = conn.execute("SELECT code, name FROM layers.communes WHERE valid_to IS NULL ORDER BY code").fetchall()
        return [CommuneShare(code, name, 1.0, "whole") for code, name in rows]
    geom = {"g": selection.geometry}
    if selection.kind == "point":
        rows = conn.execute(
            "SELECT code, name FROM layers.communes WHERE valid_to IS NULL AND "
            "ST_Intersects(geom, ST_GeomFromEWKB(decode(%(g)s, 'hex'))) ORDER BY code",
            geom,
        ).fetchall()
        return [CommuneShare(code, name, 1.0, "containing commune") for code, name in rows]
    rows = conn.execute(
        """WITH sel AS (SELECT ST_GeomFromEWKB(decode(%(g)s, 'hex')) AS g),
                cut AS (SELECT c.code, c.name, c.geom FROM layers.communes c, sel
                        WHERE c.valid_to IS NULL AND ST_Intersects(c.geom, sel.g)),
                hh AS (SELECT b.commune_code, coalesce(sum(b.households), 0) AS total
                         FROM layers.buildings b
                        WHERE b.commune_code IN (SELECT code FROM cut) AND b.approval = 'approved'
                        GROUP BY b.commune_code),
                -- the buildings inside, found through the spatial index (a test per building of every
                -- commune touched, against a zone of thousands of vertices, took minutes)
                inside AS (SELECT b.commune_code, coalesce(sum(b.households), 0) AS inside
                             FROM layers.buildings b, sel
                            WHERE b.approval = 'approved' AND b.geom && sel.g AND ST_Intersects(b.geom, sel.g)
                            GROUP BY b.commune_code)
           SELECT cut.code, cut.name,
                  ST_Area(ST_Intersection(cut.geom, sel.g)::geography) / ST_Area(cut.geom::geography),
                  coalesce(inside.inside, 0), hh.total
             FROM cut CROSS JOIN sel LEFT JOIN hh ON hh.commune_code = cut.code
                  LEFT JOIN inside ON inside.commune_code = cut.code
            ORDER BY cut.code""",
        geom,
    ).fetchall()
    shares = []
    for code, name, area_share, inside, total in rows:
        if total:
            shares.append(CommuneShare(code, name, float(inside) / float(total), "households in buildings"))
        else:
            shares.append(CommuneShare(code, name, min(1.0, float(area_share)), "area"))
    return shares


def _values(
    conn: psycopg.Connection[Any], ids: list[str], codes: list[str], periods: list[str]
) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT indicator_id, commune_code, period, value, numerator, denominator, updated_at "
        "FROM gis_ioc.indicator_values WHERE indicator_id = ANY(%s) AND commune_code = ANY(%s) AND period = ANY(%s)",
        (ids, codes, periods),
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def combine(
    ind: Indicator, shares: list[CommuneShare], values: dict[tuple[str, str, str], tuple[Any, ...]], period: str
) -> float | None:
    """The indicator over the selection for one period."""
    kind = ind.aggregation.kind
    if kind == "sum":
        parts = [s.share * v[0] for s in shares if (v := values.get((ind.id, s.code, period))) and v[0] is not None]
        return whole_count(ind, sum(parts)) if parts else None
    if kind == "rate":
        num = den = 0.0
        for s in shares:
            v = values.get((ind.id, s.code, period))
            if v and v[1] is not None and v[2] is not None:
                num += s.share * v[1]
                den += s.share * v[2]
        return num / den * ind.aggregation.scale if den > 0 else None
    weight_id = ind.aggregation.weight
    total_w = acc = 0.0
    for s in shares:
        v = values.get((ind.id, s.code, period))
        if not v or v[0] is None:
            continue
        w = 1.0
        if weight_id is not None:
            wv = values.get((weight_id, s.code, period))
            if not wv or wv[0] is None:
                continue
            w = wv[0]
        total_w += s.share * w
        acc += s.share * w * v[0]
    return acc / total_w if total_w > 0 else None


def whole_count(ind: Indicator, value: float | None) -> float | None:
    """People and households are counted whole: an apportioned count of a personal indicator is rounded."""
    if value is None or not (ind.personal and ind.aggregation.kind == "sum"):
        return value
    return float(round(value))


def rate_basis(
    ind: Indicator, shares: list[CommuneShare], values: dict[tuple[str, str, str], tuple[Any, ...]], period: str
) -> float | None:
    """The apportioned denominator of a rate (None for other kinds)."""
    if ind.aggregation.kind != "rate":
        return None
    parts = [s.share * v[2] for s in shares if (v := values.get((ind.id, s.code, period))) and v[2] is not None]
    return sum(parts) if parts else None


def suppress(results: list[IndicatorResult], personal: set[str], threshold: int) -> int:
    """Hide figures that could single people out, of personal indicators only (``personal: true`` in
    ``config/indicators.yaml``: figures about people or households): counts below ``threshold``, and
    rates resting on fewer than ``threshold`` people or households. Figures about schools, roads or
    beds are not personal data and are never hidden. Returns how many were hidden."""
    hidden = 0
    for r in results:
        if r.id not in personal:
            continue
        for fig in [r.total, *r.communes.values()]:
            if fig.value is None:
                continue  # nothing to hide
            small_count = fig.basis is None and fig.value < threshold
            small_basis = fig.basis is not None and fig.basis < threshold
            if small_count or small_basis:
                fig.value = fig.gap = fig.share_of_target = fig.previous = fig.change = fig.basis = None
                fig.status = "suppressed"
                hidden += 1
    return hidden


def judge(ind: Indicator, value: float | None, target: float | None, previous: float | None, stale: bool) -> Figure:
    change = None if value is None or previous is None else value - previous
    if value is None:
        return Figure(None, target, "no data", previous=previous)
    if target is None:
        return Figure(value, None, "stale" if stale else "no target", previous=previous, change=change)
    higher = ind.direction == "higher"
    gap = (target - value) if higher else (value - target)
    share = (value / target if higher else (target / value if value else None)) if target else None
    status = "stale" if stale else ("met" if gap <= 0 else "not met")
    return Figure(value, target, status, gap=gap, share_of_target=share, previous=previous, change=change)


#: a feature inside the selection: itself, no cut (ST_Covers against one selection uses PostGIS's prepared
#: geometry; cutting every road against the province outline took seconds)
_CUT = "CASE WHEN ST_Covers(s.g, t.geom) THEN t.geom ELSE ST_Intersection(t.geom, s.g) END"


def _layer_measure(
    conn: psycopg.Connection[Any], catalog: Catalog, ind: Indicator, selection: Selection
) -> dict[str, float]:
    """The measure of the layer's features inside the selection, per commune code (exact, spatial)."""
    agg = ind.aggregation
    layer = catalog.layer(agg.layer or "")
    params = Params()
    where: list[sql.Composable] = [sql.SQL("t.approval = 'approved'"), sql.SQL("ST_Intersects(t.geom, s.g)")]
    if agg.filter:
        where.append(FilterCompiler(layer, PUBLISHED[0], params).compile(parse_filter(agg.filter, "cql2-text")))
    measure = {
        "count": sql.SQL("count(*)::float8"),
        "sum": sql.SQL("coalesce(sum({}), 0)::float8").format(sql.Identifier("t", agg.field or "")),
        "length": sql.SQL(f"sum(ST_Length(({_CUT})::geography)) / 1000"),
        "area": sql.SQL(f"sum(ST_Area(({_CUT})::geography)) / 1e6"),
    }[agg.measure or "count"]
    statement = sql.SQL(
        "WITH s AS ({sel}) SELECT t.commune_code, {measure} FROM {table} t, s WHERE {where} GROUP BY t.commune_code"
    ).format(
        sel=_selection_sql(selection, params),
        measure=measure,
        table=sql.Identifier(SCHEMA, layer.table),
        where=sql.SQL(" AND ").join(where),
    )
    return {code: float(v or 0) for code, v in conn.execute(statement, params.values).fetchall()}


def _selection_sql(selection: Selection, params: Params) -> sql.Composable:
    """The selected area: a point counts as the commune that contains it."""
    geom = sql.SQL("ST_GeomFromEWKB(decode({}, 'hex'))").format(params.add(selection.geometry))
    if selection.kind == "point":
        return sql.SQL(
            "SELECT geom AS g FROM layers.communes WHERE valid_to IS NULL AND ST_Intersects(geom, {})"
        ).format(geom)
    return sql.SQL("SELECT {} AS g").format(geom)


def _land_areas(conn: psycopg.Connection[Any], selection: Selection) -> dict[str, float]:
    """km² of each commune inside the selection."""
    params = Params()
    statement = sql.SQL(
        "WITH s AS ({}) SELECT c.code, ST_Area((CASE WHEN ST_Covers(s.g, c.geom) THEN c.geom "
        "ELSE ST_Intersection(c.geom, s.g) END)::geography) / 1e6 "
        "FROM layers.communes c, s WHERE c.valid_to IS NULL AND ST_Intersects(c.geom, s.g)"
    ).format(_selection_sql(selection, params))
    return {code: float(a) for code, a in conn.execute(statement, params.values).fetchall()}


def _layer_figures(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    ind: Indicator,
    selection: Selection,
    shares: list[CommuneShare],
    values: dict[tuple[str, str, str], tuple[Any, ...]],
    period: str,
) -> tuple[Figure, dict[str, Figure]]:
    agg = ind.aggregation
    measured = _layer_measure(conn, catalog, ind, selection)
    codes = [s.code for s in shares]
    base: dict[str, float] = {}
    base_total = 1.0
    if agg.per == "capita":
        for s in shares:
            v = values.get(("population", s.code, period))
            if v and v[0] is not None:
                base[s.code] = v[0] * s.share
        base_total = sum(base.values())
    elif agg.per == "km2":
        base = _land_areas(conn, selection)
        base_total = sum(base.values())

    def ratio(amount: float, denominator: float | None) -> float | None:
        if agg.per is None:
            return amount * agg.scale
        return amount / denominator * agg.scale if denominator else None

    total = judge(
        ind,
        ratio(sum(measured.values()), base_total) if codes else None,
        ind.target_for(period, single_commune(shares)),
        None,
        False,
    )
    per_commune = {
        c: judge(ind, ratio(measured.get(c, 0.0), base.get(c)), ind.target_for(period, c), None, False) for c in codes
    }
    return total, per_commune


def _reach_figures(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    ind: Indicator,
    selection: Selection,
    codes: list[str],
    period: str,
) -> tuple[Figure, dict[str, Figure]]:
    """Share of the origin weight (households in buildings) within ``distance`` of a destination feature.

    Distances are on the ground (geography); the bounding-box test in degrees only narrows the search
    (one degree is more than 100 km anywhere in Vietnam, so ``distance / 100000`` degrees covers it)."""
    agg = ind.aggregation
    origin = catalog.layer(agg.origin or "")
    target = catalog.layer(agg.layer or "")
    params = Params()
    where: list[sql.Composable] = [sql.SQL("t.approval = 'approved'")]
    if agg.filter:
        where.append(FilterCompiler(target, PUBLISHED[0], params).compile(parse_filter(agg.filter, "cql2-text")))
    distance = params.add(float(agg.distance or 0))
    statement = sql.SQL(
        """WITH s AS ({sel}),
                o AS (SELECT o.commune_code, o.{weight}::float8 AS w, o.geom FROM {origin} o, s
                       WHERE o.approval = 'approved' AND o.{weight} > 0 AND ST_Intersects(o.geom, s.g))
           SELECT o.commune_code, sum(o.w),
                  coalesce(sum(o.w) FILTER (WHERE EXISTS (
                      SELECT 1 FROM {target} t
                       WHERE {where} AND t.geom && ST_Expand(o.geom, {distance} / 100000.0)
                         AND ST_DWithin(t.geom::geography, o.geom::geography, {distance}))), 0)
             FROM o GROUP BY o.commune_code"""
    ).format(
        sel=_selection_sql(selection, params),
        weight=sql.Identifier(agg.origin_weight or ""),
        origin=sql.Identifier(SCHEMA, origin.table),
        target=sql.Identifier(SCHEMA, target.table),
        where=sql.SQL(" AND ").join(where),
        distance=distance,
    )
    rows = {code: (float(den), float(num)) for code, den, num in conn.execute(statement, params.values).fetchall()}

    def figure(den: float, num: float, commune: str | None) -> Figure:
        value = num / den * agg.scale if den > 0 else None
        fig = judge(ind, value, ind.target_for(period, commune), None, False)
        fig.basis = den if den > 0 else None
        return fig

    whole = codes[0] if len(codes) == 1 and selection.kind == "communes" else None
    total = figure(sum(d for d, _ in rows.values()), sum(n for _, n in rows.values()), whole)
    return total, {c: figure(*rows.get(c, (0.0, 0.0)), c) for c in codes}


#: Per commune and in total: received, resolved, resolved on time, overdue, the sum and number of ratings.
_FEEDBACK = """
WITH s AS ({sel}),
     r AS (SELECT f.commune_code, f.state, f.due_at, f.resolved_at,
                  (SELECT avg(g.score) FROM gis_ioc.feedback_ratings g WHERE g.report_id = f.id) AS score
             FROM gis_ioc.feedback_reports f, s
            WHERE f.received_at >= {start} AND f.received_at < {end} AND f.merged_into IS NULL
              AND f.geom && s.g AND ST_Intersects(f.geom, s.g))
SELECT CASE WHEN GROUPING(commune_code) = 1 THEN NULL ELSE commune_code END,
       count(*)::float8,
       count(*) FILTER (WHERE resolved_at IS NOT NULL)::float8,
       count(*) FILTER (WHERE resolved_at IS NOT NULL AND resolved_at <= due_at)::float8,
       count(*) FILTER (WHERE (resolved_at IS NULL AND state NOT IN ('closed', 'rejected')
                               AND due_at < least(now(), {end})) OR resolved_at > due_at)::float8,
       sum(score)::float8, count(score)::float8
  FROM r GROUP BY GROUPING SETS ((commune_code), ())
"""


def _feedback_figures(
    conn: psycopg.Connection[Any], ind: Indicator, selection: Selection, codes: list[str], period: str
) -> tuple[Figure, dict[str, Figure]]:
    """Citizen reports received in the period at points inside the selection (no personal data read)."""
    agg = ind.aggregation
    start, end = period_bounds(period)
    params = Params()
    query = sql.SQL(_FEEDBACK).format(
        sel=_selection_sql(selection, params), start=params.add(start), end=params.add(end)
    )
    found: dict[str | None, tuple[Any, ...]] = {row[0]: row[1:] for row in conn.execute(query, params.values)}

    def value(key: str | None) -> float | None:
        received, resolved, on_time, overdue, score_sum, rated = found.get(key, (0.0, 0.0, 0.0, 0.0, None, 0.0))
        if agg.report == "received":
            return float(received)
        if agg.report == "overdue":
            return float(overdue)
        if agg.report == "on_time":
            return on_time / resolved * agg.scale if resolved else None
        return score_sum / rated if rated and score_sum is not None else None

    def figure(key: str | None) -> Figure:
        return judge(ind, value(key), ind.target_for(period, key or single(codes)), None, False)

    def single(found_codes: list[str]) -> str | None:
        return found_codes[0] if len(found_codes) == 1 and selection.kind == "communes" else None

    return figure(None), {c: figure(c) for c in codes}


def sensor_statistics(
    conn: psycopg.Connection[Any], ind: Indicator, selection: Selection, period: str
) -> dict[str | None, tuple[float | None, int, datetime | None]]:
    """The statistic over the period, per commune code and in total (key None), with the number of
    readings and the hour of the latest reading, from the datastreams of the approved IoT devices inside
    the selection. Means, maxima and days over a limit come from the daily rollups (``iot_daily``, the
    Vietnamese calendar day), the latest reading from the hourly ones; only a percentile reads the
    readings themselves. Readings flagged ``out_of_range`` or ``clock_skew`` are in no rollup and in no statistic."""
    agg = ind.aggregation
    start, end = period_bounds(period)
    params = Params()
    head = sql.SQL(
        """WITH s AS ({sel}),
                dev AS (SELECT t.device_code, t.commune_code FROM layers.iot_devices t, s
                         WHERE t.approval = 'approved' AND ST_Intersects(t.geom, s.g)),
                ds AS (SELECT d.id, dev.commune_code FROM gis_ioc.iot_datastreams d JOIN dev USING (device_code)
                        WHERE d.property_id = {q}),
                daily AS (SELECT ds.commune_code, r.day, r.n, r.mean, r.max
                            FROM gis_ioc.iot_daily r JOIN ds ON r.datastream_id = ds.id
                           WHERE r.day >= {first} AND r.day < {stop}),
                latest AS (SELECT CASE WHEN GROUPING(ds.commune_code) = 1 THEN NULL ELSE ds.commune_code END AS code,
                                  max(h.hour) AS at
                             FROM gis_ioc.iot_hourly h JOIN ds ON h.datastream_id = ds.id
                            WHERE h.hour >= {start} AND h.hour < {end}
                            GROUP BY GROUPING SETS ((ds.commune_code), ()))"""
    ).format(
        sel=_selection_sql(selection, params),
        q=params.add(agg.quantity),
        first=params.add(start.date()),
        stop=params.add(end.date()),
        start=params.add(start),
        end=params.add(end),
    )
    if agg.statistic == "days_over":  # each day against the limit in force that day (Vietnam's calendar day)
        starts, values = agg.limits_by_day()
        body = sql.SQL(
            """, per_day AS (SELECT CASE WHEN GROUPING(commune_code) = 1 THEN NULL ELSE commune_code END AS code,
                                    day, sum(mean * n) / sum(n) AS value, sum(n) AS n
                               FROM daily GROUP BY GROUPING SETS ((commune_code, day), (day))),
                 stat AS (SELECT code, count(*) FILTER (WHERE value > (
                                     SELECT l.v FROM unnest({starts}::date[], {values}::float8[]) AS l(f, v)
                                      WHERE l.f <= day ORDER BY l.f DESC LIMIT 1))::float8 AS value,
                                 sum(n) AS n
                            FROM per_day GROUP BY code)"""
        ).format(starts=params.add(starts), values=params.add(values))
    elif agg.statistic == "p95":
        body = sql.SQL(
            """, stat AS (SELECT CASE WHEN GROUPING(ds.commune_code) = 1 THEN NULL ELSE ds.commune_code END AS code,
                                 percentile_cont(0.95) WITHIN GROUP (ORDER BY o.result)::float8 AS value,
                                 count(*) AS n
                            FROM gis_ioc.iot_observations o JOIN ds ON o.datastream_id = ds.id
                           WHERE o.phenomenon_time >= {start} AND o.phenomenon_time < {end}
                             AND NOT o.flags && ARRAY['out_of_range', 'clock_skew']
                           GROUP BY GROUPING SETS ((ds.commune_code), ()))"""
        ).format(start=params.add(start), end=params.add(end))
    else:
        stat = sql.SQL("max(max)") if agg.statistic == "max" else sql.SQL("sum(mean * n) / sum(n)")
        body = sql.SQL(
            """, stat AS (SELECT CASE WHEN GROUPING(commune_code) = 1 THEN NULL ELSE commune_code END AS code,
                                 ({stat})::float8 AS value, sum(n) AS n
                            FROM daily GROUP BY GROUPING SETS ((commune_code), ()))"""
        ).format(stat=stat)
    tail = sql.SQL(
        """ SELECT stat.code, stat.value, coalesce(stat.n, 0)::int, latest.at
              FROM stat LEFT JOIN latest ON latest.code IS NOT DISTINCT FROM stat.code"""
    )
    rows = conn.execute(head + body + tail, params.values).fetchall()
    return {code: (value if n else None, int(n), latest) for code, value, n, latest in rows}


def _sensor_figures(
    conn: psycopg.Connection[Any], ind: Indicator, selection: Selection, codes: list[str], period: str, now: datetime
) -> tuple[Figure, dict[str, Figure]]:
    """Sensor statistics; a figure is stale when its readings stop more than the indicator's freshness
    before the end of the period (or before now, for the period under way)."""
    current = sensor_statistics(conn, ind, selection, period)
    before = sensor_statistics(conn, ind, selection, previous_period(period))
    horizon = min(period_bounds(period)[1], now) - timedelta(days=ind.freshness_days)

    whole = codes[0] if len(codes) == 1 and selection.kind == "communes" else None

    def figure(key: str | None) -> Figure:
        value, n, latest = current.get(key, (None, 0, None))
        if n == 0 and ind.aggregation.statistic == "days_over":
            value = None
        stale = latest is not None and latest < horizon
        target = ind.target_for(period, key or whole)
        fig = judge(ind, value, target, before.get(key, (None, 0, None))[0], stale)
        fig.updated_at = latest.isoformat() if latest else None
        return fig

    return figure(None), {c: figure(c) for c in codes}


def evaluate(
    conn: psycopg.Connection[Any],
    indicators: list[Indicator],
    shares: list[CommuneShare],
    period: str,
    now: datetime | None = None,
    *,
    selection: Selection | None = None,
    catalog: Catalog | None = None,
) -> list[IndicatorResult]:
    now = now or datetime.now(UTC)
    prev = previous_period(period)
    weights = {i.aggregation.weight for i in indicators if i.aggregation.weight}
    ids = sorted({i.id for i in indicators} | weights | {"population"})
    codes = [s.code for s in shares]
    values = _values(conn, ids, codes, [period, prev])
    results = []
    for ind in indicators:
        kind = ind.aggregation.kind
        if kind in ("layer", "reach", "sensor", "feedback"):
            if selection is None or catalog is None:
                raise ValueError("layer, reach, sensor and feedback indicators need the selection and the catalog")
            if kind == "feedback":
                total, communes = _feedback_figures(conn, ind, selection, codes, period)
            elif kind == "layer":
                total, communes = _layer_figures(conn, catalog, ind, selection, shares, values, period)
            elif kind == "reach":
                total, communes = _reach_figures(conn, catalog, ind, selection, codes, period)
            else:
                total, communes = _sensor_figures(conn, ind, selection, codes, period, now)
            name = {"vi": ind.name.vi, "en": ind.name.en}
            results.append(IndicatorResult(ind.id, name, ind.sector, ind.unit, ind.direction, total, communes))
            continue
        # Stale: reported longer before the end of the period (or now, for the period under way) than the
        # indicator's freshness allows; a quarter reported weeks after it ended is not stale for that quarter.
        horizon = min(period_bounds(period)[1], now) - timedelta(days=ind.freshness_days)
        reported = {s.code: v[3] for s in shares if (v := values.get((ind.id, s.code, period)))}
        stale_codes = {code for code, when in reported.items() if when < horizon}
        # A total is stale when most of the communes it rests on last reported too long ago.
        stale = bool(reported) and 2 * len(stale_codes) > len(reported)
        total = judge(
            ind,
            combine(ind, shares, values, period),
            ind.target_for(period, single_commune(shares)),
            combine(ind, shares, values, prev),
            stale,
        )
        total.basis = rate_basis(ind, shares, values, period)
        total.updated_at = min(reported.values()).isoformat() if reported else None
        per_commune = {}
        for s in shares:
            whole = [CommuneShare(s.code, s.name, 1.0, "whole")]
            own = combine(ind, whole, values, period)
            if ind.aggregation.kind == "sum" and own is not None:
                own = whole_count(ind, own * s.share)  # the part of the commune's total inside the selection
            before = combine(ind, whole, values, prev)
            if ind.aggregation.kind == "sum" and before is not None:
                before = whole_count(ind, before * s.share)
            fig = judge(ind, own, ind.target_for(period, s.code), before, s.code in stale_codes)
            fig.basis = rate_basis(ind, whole, values, period)
            fig.updated_at = reported[s.code].isoformat() if s.code in reported else None
            per_commune[s.code] = fig
        results.append(
            IndicatorResult(
                ind.id, {"vi": ind.name.vi, "en": ind.name.en}, ind.sector, ind.unit, ind.direction, total, per_commune
            )
        )
    return results


def flags(results: list[IndicatorResult], shares: list[CommuneShare]) -> list[dict[str, Any]]:
    """Everything not met, most severe (largest relative shortfall) first; a commune only when at least
    :data:`FLAG_MIN_SHARE` of it lies inside the selection (its ``share`` is on the flag)."""
    names = {s.code: s.name for s in shares}
    share_of = {s.code: s.share for s in shares}
    single = single_commune(shares) is not None  # the total is the commune: flag it once
    out = []
    for r in results:
        places = list(r.communes.items()) if single else [("total", r.total), *r.communes.items()]
        for where, fig in places:
            if fig.status != "not met" or fig.gap is None or fig.target is None:
                continue
            if where != "total" and share_of.get(where, 1.0) < FLAG_MIN_SHARE:
                continue  # barely inside the selection: listed with its share, not flagged
            out.append(
                {
                    "indicator": r.id,
                    "name": r.name,
                    "where": where,
                    "commune": names.get(where),
                    "value": fig.value,
                    "target": fig.target,
                    "gap": fig.gap,
                    "unit": r.unit,
                    "direction": r.direction,
                    "share": 1.0 if where == "total" else share_of.get(where, 1.0),
                    # a target of zero (none overdue): the miss itself, in the indicator's unit
                    "severity": abs(fig.gap / fig.target) if fig.target else abs(fig.gap),
                }
            )
    return sorted(out, key=lambda f: (-f["severity"], f["indicator"], f["where"]))


def as_dict(results: list[IndicatorResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
