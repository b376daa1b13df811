"""The emergency scenario: an incident at a point with radius rings, or a flooded zone.

It answers at once, from one connection:

- the people and households exposed, per ring and per commune. Households come from the buildings layer
  (the households living in buildings within reach) scaled to each commune's registered households and
  population of the latest period (dasymetric, as the sector scenarios apportion); a commune with no
  households mapped falls back to the share of its area. The result says which method each commune used;
- the schools, health facilities and shelters inside, with their ring and distance;
- the nearest hospitals and fire stations with their distance on the ground;
- shelter capacity against the people to evacuate: each exposed building goes to its nearest usable
  shelter (within ``search_m`` of the zone and outside it, or inside it when the incident is a flood and
  the shelter is flood-safe); shelters that would be over capacity, and a total shortfall, are flagged;
- the communes concerned, with their leaders' contacts (``gis_ioc.commune_contacts``) for viewers who direct
  work (leaders, administrators: ``Viewer.sees_contacts``).

Distances are measured on the ground (geography). A building counts in the first ring it reaches.

Bounds (the work grows with the ground covered): rings reach at most :data:`MAX_RING_M` and must reach
the province; a zone is bounded as every drawn selection is (:mod:`gis_ioc.scenarios.selectors`: it must
intersect the province, within an area and a vertex count). Viewers without access to personal data see
the counts of people and households as :mod:`gis_ioc.scenarios.disclosure` says (cumulative rings,
small bases withheld, rounded).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.catalog.models import Layer
from gis_ioc.crs import PUBLISHED
from gis_ioc.errors import InvalidInput
from gis_ioc.publish.cql import FilterCompiler, Params, parse_filter
from gis_ioc.query.rows import visible
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.disclosure import Count, Disclosure
from gis_ioc.scenarios.engine import data_version, store_run
from gis_ioc.scenarios.models import EmergencyScenario, InsideLayer

# ST_Expand by distance / DEGREE_M degrees covers ``distance`` metres anywhere in Vietnam (a degree of
# longitude is still above 100 km at 24° N); the exact test is always on the geography.
DEGREE_M = 100_000.0
#: The farthest ring, metres: an incident's rings cover at most a circle of 20 km (1,257 km², half the
#: province); a wider area is a zone (a flood over the province), not rings around a point.
MAX_RING_M = 20_000.0


@dataclass
class Incident:
    """What happened and where: a point with rings (metres, ascending) or a zone (EWKB hex, EPSG:4326)."""

    kind: str
    request: dict[str, Any]
    geometry: str  # the point, or the zone
    rings: list[float] = field(default_factory=list)  # empty for a zone

    @property
    def is_zone(self) -> bool:
        return not self.rings

    def ring_label(self, ring: int) -> str:
        if self.is_zone:
            return "zone"
        low = 0.0 if ring == 1 else self.rings[ring - 2]
        return f"{low:g}–{self.rings[ring - 1]:g} m"


@dataclass
class EmergencyRun:
    id: int
    scenario: str
    incident: dict[str, Any]
    period: str | None  # the period of the population and household figures used
    rings: list[dict[str, Any]]
    communes: list[dict[str, Any]]
    inside: dict[str, list[dict[str, Any]]]
    nearest: dict[str, list[dict[str, Any]]]
    shelters: dict[str, Any]
    flags: list[dict[str, Any]]
    suppressed: int
    disclosure: str  # how the counts are shown (exact, or as gis_ioc.scenarios.disclosure says)
    method: str
    data_version: dict[str, Any]
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}")
    return float(value)


def incident_from_request(
    conn: psycopg.Connection[Any], body: dict[str, Any], scenario: EmergencyScenario, catalog: Catalog, viewer: Viewer
) -> Incident:
    """{"incident": "flood", "at": [x, y], "rings": [500, 1000, 2000], "crs": …} or
    {"incident": "flood", "zone": GeoJSON polygon | "layer:fid", "crs": …}; a ``layer:fid`` zone is read
    as the viewer may read it."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = sorted(set(body) - {"incident", "at", "rings", "zone", "crs"})
    if unknown:
        raise InvalidInput(f"unknown fields {unknown}; expected incident, at, rings, zone, crs")
    kind = body.get("incident")
    if kind not in scenario.incidents:
        raise InvalidInput(f"incident must be one of {', '.join(scenario.incidents)}, got {kind!r}")
    crs = body.get("crs")
    if crs is not None and not isinstance(crs, str):
        raise InvalidInput("crs must be a string such as EPSG:9209")
    if ("at" in body) == ("zone" in body):
        raise InvalidInput("give either at (a point, with rings) or zone (a flooded polygon)")
    if "zone" in body:
        if "rings" in body:
            raise InvalidInput("rings go with at, not with zone")
        value = body["zone"]
        if isinstance(value, str):
            selection = selectors.zone_feature(conn, value, catalog, viewer)
        else:
            selection = selectors.zone(conn, value, crs)
        return Incident(str(kind), {"incident": kind, **selection.request}, selection.geometry)
    at = body["at"]
    if not isinstance(at, list) or len(at) != 2:
        raise InvalidInput("at must be [x, y]")
    x, y = _number(at[0], "at[0]"), _number(at[1], "at[1]")
    rings_in = body.get("rings", list(scenario.rings))
    if not isinstance(rings_in, list) or not 1 <= len(rings_in) <= 6:
        raise InvalidInput("rings must be a list of one to six distances in metres")
    rings = [_number(r, "a ring") for r in rings_in]
    if rings != sorted(set(rings)) or rings[0] <= 0 or rings[-1] > MAX_RING_M:
        raise InvalidInput(f"rings must ascend, each above 0 and at most {MAX_RING_M:,.0f} m, got {rings_in!r}")
    centre = selectors.point(conn, x, y, crs)
    selectors.check_reach(conn, centre.geometry, rings[-1], f"the incident's rings (up to {rings[-1]:,.0f} m)")
    return Incident(str(kind), {"incident": kind, "at": [x, y], "crs": crs, "rings": rings}, centre.geometry, rings)


class _Geo:
    """SQL for distances and rings around the incident, for a table aliased ``alias``."""

    def __init__(self, incident: Incident, params: Params) -> None:
        self.incident = incident
        self.g = sql.SQL("ST_GeomFromEWKB(decode({}, 'hex'))").format(params.add(incident.geometry))
        self.reach = params.add(incident.rings[-1] if incident.rings else 0.0)
        self.rings = params.add(incident.rings or [0.0])

    def distance(self, alias: str) -> sql.Composable:
        return sql.SQL("ST_Distance({}.geom::geography, {}::geography)").format(sql.Identifier(alias), self.g)

    def within(self, alias: str, extra: sql.Composable | None = None) -> sql.Composable:
        """The feature is in the zone (or within the outer ring), plus ``extra`` metres."""
        a = sql.Identifier(alias)
        if extra is None:
            if self.incident.is_zone:
                return sql.SQL("ST_Intersects({}.geom, {})").format(a, self.g)
            reach: sql.Composable = self.reach
        else:
            reach = extra if self.incident.is_zone else sql.SQL("({} + {})").format(self.reach, extra)
        return sql.SQL(
            "{a}.geom && ST_Expand({g}, {r} / {deg}) AND ST_DWithin({a}.geom::geography, {g}::geography, {r})"
        ).format(a=a, g=self.g, r=reach, deg=sql.Literal(DEGREE_M))

    def box(self) -> sql.Composable:
        """A box around everything in reach (the zone, or the outer ring), with a margin of ~1 km."""
        if self.incident.is_zone:
            return sql.SQL("ST_Expand(ST_Envelope({}), 0.01)").format(self.g)
        return sql.SQL("ST_Expand({}, {} / {} + 0.01)").format(self.g, self.reach, sql.Literal(DEGREE_M))

    def ring(self, distance: sql.Composable) -> sql.Composable:
        if self.incident.is_zone:
            return sql.SQL("1")
        return sql.SQL(
            "(SELECT min(i)::int FROM unnest({}::float8[]) WITH ORDINALITY AS r(m, i) WHERE {} <= m)"
        ).format(self.rings, distance)


def _latest_period(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT max(period) FROM gis_ioc.indicator_values "
        "WHERE indicator_id = 'population' AND period ~ '^\\d{4}-Q[1-4]$' AND value IS NOT NULL"
    ).fetchone()
    return row[0] if row else None


def _name_field(layer: Layer) -> str | None:
    return "name" if layer.field("name") is not None else None


def _columns(layer: Layer, fields: tuple[str, ...]) -> list[str]:
    names = [n for n in (layer.key, _name_field(layer)) if n]
    return names + [f for f in fields if f not in names]


def _exposure(
    conn: psycopg.Connection[Any], catalog: Catalog, incident: Incident
) -> tuple[dict[tuple[str, int], tuple[float, int]], dict[str, float], dict[tuple[str, int], float]]:
    """Households in mapped buildings per (commune, ring) with the buildings' count; each touched commune's
    mapped households in total; and each commune's area share within each ring (cumulative)."""
    params = Params()
    geo = _Geo(incident, params)
    buildings = sql.Identifier(SCHEMA, catalog.layer("buildings").table)
    distance = sql.SQL("0::float8") if incident.is_zone else geo.distance("b")
    rows = conn.execute(
        sql.SQL(
            """SELECT commune_code, ring, sum(hh), count(*)::int FROM (
                   SELECT b.commune_code, b.households::float8 AS hh, {ring} AS ring
                     FROM {buildings} b
                    WHERE b.approval = 'approved' AND b.households > 0 AND {within}) x
                GROUP BY commune_code, ring"""
        ).format(ring=geo.ring(distance), buildings=buildings, within=geo.within("b")),
        params.values,
    ).fetchall()
    mapped = {(code, int(ring)): (float(hh), int(n)) for code, ring, hh, n in rows}

    params = Params()
    geo = _Geo(incident, params)
    if incident.is_zone:
        shapes = sql.SQL("SELECT 1 AS ring, {} AS z").format(geo.g)
    else:
        shapes = sql.SQL(
            "SELECT i::int AS ring, ST_Buffer({g}::geography, m, 'quad_segs=16')::geometry AS z "
            "FROM unnest({rings}::float8[]) WITH ORDINALITY AS r(m, i)"
        ).format(g=geo.g, rings=geo.rings)
    rows = conn.execute(
        sql.SQL(
            """WITH zones AS ({shapes})
               SELECT c.code, zones.ring,
                      ST_Area(ST_Intersection(c.geom, zones.z)::geography) / ST_Area(c.geom::geography)
                 FROM layers.communes c JOIN zones ON ST_Intersects(c.geom, zones.z)
                WHERE c.valid_to IS NULL"""
        ).format(shapes=shapes),
        params.values,
    ).fetchall()
    area_share = {(code, int(ring)): float(share) for code, ring, share in rows}
    codes = sorted({code for code, _ in area_share} | {code for code, _ in mapped})
    totals = dict(
        conn.execute(
            sql.SQL(
                "SELECT commune_code, sum(households)::float8 FROM {} WHERE approval = 'approved' "
                "AND households > 0 AND commune_code = ANY(%s) GROUP BY commune_code"
            ).format(buildings),
            (codes,),
        ).fetchall()
    )
    return mapped, {c: float(totals.get(c) or 0.0) for c in codes}, area_share


def _shown(viewer: Viewer, layer: Layer, fields: tuple[str, ...]) -> tuple[str, ...]:
    """The configured fields the viewer may see (personal fields only with personal data)."""
    seen = viewer.sees(layer)
    return tuple(f for f in fields if seen.field(f) is not None)


def _features(
    conn: psycopg.Connection[Any], catalog: Catalog, incident: Incident, spec: InsideLayer, viewer: Viewer
) -> list[dict[str, Any]]:
    """The features of a layer inside the zone (or the outer ring), read as the viewer may read them."""
    layer = catalog.layer(spec.layer)
    params = Params()
    geo = _Geo(incident, params)
    columns = _columns(layer, _shown(viewer, layer, spec.fields))
    distance = geo.distance("t")
    rows = conn.execute(
        sql.SQL(
            """SELECT {cols}, {distance}, {ring}, ST_X(ST_PointOnSurface(t.geom)), ST_Y(ST_PointOnSurface(t.geom))
                 FROM {table} t WHERE {visible} AND {within} ORDER BY 1"""
        ).format(
            cols=sql.SQL(", ").join(sql.Identifier("t", c) for c in columns),
            distance=distance,
            ring=geo.ring(distance),
            table=sql.Identifier(SCHEMA, layer.table),
            visible=visible(viewer, layer, params),
            within=geo.within("t"),
        ),
        params.values,
    ).fetchall()
    out = []
    for row in rows:
        item = dict(zip(columns, row[: len(columns)], strict=True))
        d, ring, lon, lat = row[len(columns) :]
        item.update(
            distance_m=round(float(d), 1), ring=incident.ring_label(int(ring or 1)), lon=float(lon), lat=float(lat)
        )
        out.append(item)
    return sorted(out, key=lambda i: (i["distance_m"], str(i.get(layer.key or "", ""))))


def _nearest(
    conn: psycopg.Connection[Any], catalog: Catalog, incident: Incident, scenario: EmergencyScenario, viewer: Viewer
) -> dict[str, list[dict[str, Any]]]:
    """The nearest features of each configured layer the viewer may read, as the viewer may read them."""
    result: dict[str, list[dict[str, Any]]] = {}
    for spec in scenario.nearest:
        layer = catalog.layer(spec.layer)
        if not viewer.can_read(layer):
            continue
        params = Params()
        geo = _Geo(incident, params)
        where: list[sql.Composable] = [visible(viewer, layer, params)]
        if spec.filter:
            where.append(FilterCompiler(layer, PUBLISHED[0], params).compile(parse_filter(spec.filter, "cql2-text")))
        columns = _columns(layer, _shown(viewer, layer, spec.fields))
        # The index orders candidates by planar distance in degrees; take extra and sort them on the ground.
        rows = conn.execute(
            sql.SQL(
                """SELECT {cols}, {distance}, ST_X(ST_PointOnSurface(t.geom)), ST_Y(ST_PointOnSurface(t.geom))
                     FROM {table} t WHERE {where} ORDER BY t.geom <-> {g} LIMIT {limit}"""
            ).format(
                cols=sql.SQL(", ").join(sql.Identifier("t", c) for c in columns),
                distance=geo.distance("t"),
                table=sql.Identifier(SCHEMA, layer.table),
                where=sql.SQL(" AND ").join(where),
                g=geo.g,
                limit=sql.Literal(spec.count * 4 + 8),
            ),
            params.values,
        ).fetchall()
        items = []
        for row in rows:
            item = dict(zip(columns, row[: len(columns)], strict=True))
            d, lon, lat = row[len(columns) :]
            item.update(distance_m=round(float(d), 1), lon=float(lon), lat=float(lat))
            items.append(item)
        items.sort(key=lambda i: i["distance_m"])
        result[spec.id] = items[: spec.count]
    return result


# Each exposed building goes to the nearest usable shelter: the cell of the shelters' Voronoi diagram
# that holds a point on the building. The diagram is drawn on a plane where longitude is shortened by
# the cosine of the latitude at the incident, on which distances across the province stay within 0.3 %
# of those on the ground; buildings are then found per cell through the spatial index. (Asking each of
# ~90,000 buildings for its nearest shelter took minutes for a flood over the province.)
_ASSIGN = """
WITH usable AS MATERIALIZED (SELECT s.fid, s.geom FROM {shelters} s WHERE {visible} AND {usable}),
     plane AS (SELECT cos(radians(ST_Y(ST_Centroid({g})))) AS k, {box} AS box),
     diagram AS (
       SELECT p.k, p.box, CASE WHEN (SELECT count(DISTINCT ST_AsBinary(geom)) FROM usable) = 1  -- one site: one cell
                     THEN ST_Affine(ST_Envelope(ST_Collect(p.box, (SELECT ST_Collect(geom) FROM usable))),
                                    p.k, 0, 0, 1, 0, 0)
                     ELSE ST_VoronoiPolygons(
                            (SELECT ST_Collect(ST_Affine(u.geom, p.k, 0, 0, 1, 0, 0)) FROM usable u), 0,
                            ST_Affine(ST_Collect(p.box, (SELECT ST_Collect(geom) FROM usable)), p.k, 0, 0, 1, 0, 0))
                 END AS cells
         FROM plane p),
     cells AS (SELECT coalesce(c.path[1], 1) AS i, ST_Affine(c.geom, 1 / d.k, 0, 0, 1, 0, 0) AS cell, d.box
                 FROM diagram d, ST_Dump(d.cells) c),
     owned AS MATERIALIZED (
       SELECT DISTINCT ON (c.i) u.fid, ST_Intersection(c.cell, c.box) AS cell
         FROM cells c JOIN usable u ON ST_Intersects(c.cell, u.geom) ORDER BY c.i, u.fid),
     assigned AS (
       SELECT DISTINCT ON (b.fid) b.commune_code, b.households::float8 AS hh, o.fid AS shelter
         FROM owned o JOIN {buildings} b ON b.geom && o.cell AND ST_Intersects(o.cell, ST_PointOnSurface(b.geom))
        WHERE b.approval = 'approved' AND b.households > 0 AND {within}
        ORDER BY b.fid, o.fid)
SELECT shelter, commune_code, sum(hh), count(*)::int FROM assigned GROUP BY shelter, commune_code
"""


def _shelter_demand(
    conn: psycopg.Connection[Any], catalog: Catalog, incident: Incident, scenario: EmergencyScenario, viewer: Viewer
) -> tuple[list[dict[str, Any]], dict[tuple[int, str], tuple[float, int]]]:
    """The usable shelters, and the mapped households of exposed buildings, with the buildings' count, per
    (shelter fid, commune) when each building goes to its nearest usable shelter."""
    rule = scenario.shelters
    layer = catalog.layer(rule.layer)

    def usable(geo: _Geo, params: Params) -> sql.Composable:
        near = geo.within("s", params.add(rule.search_m))
        if incident.kind == "flood":
            safe = sql.Identifier(rule.flood_safe)
            return sql.SQL("{} AND (NOT ({}) OR s.{} IS TRUE)").format(near, geo.within("s"), safe)
        return sql.SQL("{} AND NOT ({})").format(near, geo.within("s"))

    params = Params()
    geo = _Geo(incident, params)
    columns = _columns(layer, (rule.capacity, rule.flood_safe))
    statement = sql.SQL(_ASSIGN).format(
        shelters=sql.Identifier(SCHEMA, layer.table),
        visible=visible(viewer, layer, params, alias="s"),
        usable=usable(geo, params),
        g=geo.g,
        box=geo.box(),
        buildings=sql.Identifier(SCHEMA, catalog.layer("buildings").table),
        within=geo.within("b"),
    )
    demand = {
        (int(fid), code): (float(hh), int(n)) for fid, code, hh, n in conn.execute(statement, params.values).fetchall()
    }
    params = Params()
    geo = _Geo(incident, params)
    rows = conn.execute(
        sql.SQL(
            """SELECT s.fid, {cols}, {distance}, {inside}, ST_X(s.geom), ST_Y(s.geom) FROM {shelters} s
                WHERE {visible} AND {usable} ORDER BY 1"""
        ).format(
            cols=sql.SQL(", ").join(sql.Identifier("s", c) for c in columns),
            distance=geo.distance("s"),
            inside=geo.within("s"),
            shelters=sql.Identifier(SCHEMA, layer.table),
            visible=visible(viewer, layer, params, alias="s"),
            usable=usable(geo, params),
        ),
        params.values,
    ).fetchall()
    shelters = []
    for row in rows:
        item: dict[str, Any] = {"fid": int(row[0]), **dict(zip(columns, row[1 : 1 + len(columns)], strict=True))}
        d, is_inside, lon, lat = row[1 + len(columns) :]
        item.update(distance_m=round(float(d), 1), inside_zone=bool(is_inside), lon=float(lon), lat=float(lat))
        shelters.append(item)
    return shelters, demand


def _contacts(conn: psycopg.Connection[Any], codes: list[str], viewer: Viewer) -> dict[str, list[dict[str, Any]]]:
    """Whom to call in each commune: only for viewers who direct work (officials' personal contacts)."""
    if not viewer.sees_contacts:
        return {}
    rows = conn.execute(
        """SELECT commune_code, role, full_name, title, office_phone, mobile_phone, email, updated_at
             FROM gis_ioc.commune_contacts WHERE commune_code = ANY(%s)
            ORDER BY commune_code, array_position(
                ARRAY['chairman', 'vice_chairman', 'police_chief', 'military_commander'], role)""",
        (codes,),
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for code, role, name, title, office, mobile, email, updated in rows:
        out.setdefault(code, []).append(
            {
                "role": role,
                "name": name,
                "title": title,
                "office_phone": office,
                "mobile_phone": mobile,
                "email": email,
                "updated_at": updated.isoformat(),
            }
        )
    return out


@dataclass
class _Tally:
    """People and households (scaled to the registers), mapped households and buildings, of a ring's band
    or a commune."""

    people: float = 0.0
    households: float = 0.0
    mapped: float = 0.0
    buildings: int = 0

    def add(self, other: _Tally) -> None:
        self.people += other.people
        self.households += other.households
        self.mapped += other.mapped
        self.buildings += other.buildings


@dataclass
class _Exposed:
    """Who is exposed: the tallies per ring band (innermost first) and per commune, and how each commune's
    people are estimated (people per mapped household, or per unit of area share, and the method)."""

    bands: list[_Tally]
    communes: dict[str, tuple[_Tally, str]]
    per_person: dict[str, float]


def _registered(conn: psycopg.Connection[Any], period: str | None, codes: list[str]) -> dict[str, dict[str, float]]:
    """Each commune's registered population and households of the period."""
    figures: dict[str, dict[str, float]] = {}
    if period is None or not codes:
        return figures
    for ind, code, value in conn.execute(
        "SELECT indicator_id, commune_code, value FROM gis_ioc.indicator_values "
        "WHERE indicator_id IN ('population', 'households') AND period = %s AND commune_code = ANY(%s)",
        (period, codes),
    ).fetchall():
        if value is not None:
            figures.setdefault(code, {})[ind] = float(value)
    return figures


def _exposed(conn: psycopg.Connection[Any], catalog: Catalog, incident: Incident, period: str | None) -> _Exposed:
    """Households in mapped buildings scaled to each commune's registers (or its area share in reach)."""
    mapped, mapped_totals, area_share = _exposure(conn, catalog, incident)
    figures = _registered(conn, period, sorted(mapped_totals))
    n_rings = len(incident.rings) or 1
    bands = [_Tally() for _ in range(n_rings)]
    communes: dict[str, tuple[_Tally, str]] = {}
    per_person: dict[str, float] = {}
    for code in sorted(mapped_totals):
        pop = figures.get(code, {}).get("population", 0.0)
        hh = figures.get(code, {}).get("households", 0.0)
        by_buildings = bool(mapped_totals[code])
        scale = mapped_totals[code] if by_buildings else 1.0
        per_person[code] = pop / scale
        total = _Tally()
        for ring in range(1, n_rings + 1):
            if by_buildings:
                households, n = mapped.get((code, ring), (0.0, 0))
                part = _Tally(households * pop / scale, households * hh / scale, households, n)
            else:  # no households mapped: the share of the commune's area in this ring (cumulative → band)
                before = area_share.get((code, ring - 1), 0.0) if ring > 1 else 0.0
                share = max(0.0, area_share.get((code, ring), 0.0) - before)
                part = _Tally(share * pop, share * hh)
            bands[ring - 1].add(part)
            total.add(part)
        communes[code] = (total, "households in buildings" if by_buildings else "area")
    return _Exposed(bands, communes, per_person)


def _rings(incident: Incident, exposed: _Exposed, shown: Disclosure) -> list[dict[str, Any]]:
    rings = []
    within = _Tally()
    for i, band in enumerate(exposed.bands):
        within.add(band)
        ring = {
            "ring": i + 1,
            "label": incident.ring_label(i + 1),
            "from_m": (0.0 if i == 0 else incident.rings[i - 1]) if incident.rings else None,
            "to_m": incident.rings[i] if incident.rings else None,
        }
        bands = {
            "people": Count(band.people, band.buildings),
            "households": Count(band.households, band.buildings),
            "buildings": Count(band.buildings, band.buildings),
            "mapped_households": Count(band.mapped, band.buildings),
        }
        cumulative = {
            "people": Count(within.people, within.buildings),
            "households": Count(within.households, within.buildings),
        }
        rings.append(shown.ring(ring, bands, cumulative))
    return rings


def _communes(
    conn: psycopg.Connection[Any], exposed: _Exposed, shown: Disclosure, viewer: Viewer
) -> list[dict[str, Any]]:
    codes = sorted(exposed.communes)
    names = dict(
        conn.execute(
            "SELECT code, name FROM layers.communes WHERE valid_to IS NULL AND code = ANY(%s)", (codes,)
        ).fetchall()
    )
    contacts = _contacts(conn, codes, viewer)
    out = []
    for code in codes:
        tally, method = exposed.communes[code]
        out.append(
            {
                "code": code,
                "name": names.get(code),
                "people": shown.figure(Count(tally.people, tally.buildings)),
                "households": shown.figure(Count(tally.households, tally.buildings)),
                "method": method,
                "contacts": contacts.get(code, []),
            }
        )
    return out


def _shelters(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenario: EmergencyScenario,
    incident: Incident,
    exposed: _Exposed,
    shown: Disclosure,
    viewer: Viewer,
    people_within: int | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The shelters' summary and the flags: total capacity against the people to evacuate, and each
    shelter's assigned people against its capacity (a withheld figure raises no flag)."""
    rule = scenario.shelters
    shelters, demand = _shelter_demand(conn, catalog, incident, scenario, viewer)
    for shelter in shelters:
        need = Count(0.0, 0)
        for (fid, code), (hh, n) in demand.items():
            if fid == shelter["fid"]:
                need = Count(need.value + hh * exposed.per_person.get(code, 0.0), need.buildings + n)
        shelter["assigned_people"] = assigned = shown.figure(need)
        capacity = int(shelter.get(rule.capacity) or 0)
        shelter["short_by"] = None if assigned is None else max(0, assigned - capacity)
    capacity_total = sum(int(s.get(rule.capacity) or 0) for s in shelters)
    flags: list[dict[str, Any]] = []
    if people_within is not None and capacity_total < people_within:
        gap = people_within - capacity_total
        flags.append(
            {
                "kind": "shelter capacity",
                "where": "total",
                "value": capacity_total,
                "needed": people_within,
                "gap": gap,
                "severity": gap / people_within,
            }
        )
    for shelter in shelters:
        if shelter["short_by"]:
            flags.append(
                {
                    "kind": "shelter over capacity",
                    "where": shelter.get(layer_key(catalog, rule.layer)),
                    "name": shelter.get("name"),
                    "value": int(shelter.get(rule.capacity) or 0),
                    "needed": shelter["assigned_people"],
                    "gap": shelter["short_by"],
                    "severity": shelter["short_by"] / max(shelter["assigned_people"], 1),
                }
            )
    flags.sort(key=lambda f: (f["where"] != "total", -f["severity"], str(f["where"])))
    summary = {
        "rule": (
            f"shelters within {rule.search_m:g} m of the zone and outside it"
            + (", or inside it when safe in floods" if incident.kind == "flood" else "")
            + "; each exposed building goes to its nearest one"
        ),
        "capacity": capacity_total,
        "people_to_evacuate": people_within,
        "short_by": None if people_within is None else max(0, people_within - capacity_total),
        "usable": shelters,
    }
    return summary, flags


def run_emergency(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenario: EmergencyScenario,
    incident: Incident,
    *,
    viewer: Viewer,
    store: bool = True,
    privacy_threshold: int = 5,
) -> EmergencyRun:
    """Everything the emergency scenario answers, for one incident (see the module's description), for
    ``viewer``: the exposure covers every building (run it in an ``aggregate`` transaction and show it
    through :func:`gis_ioc.scenarios.view.trim`); unless the viewer has access to personal data, the
    counts of people and households are shown as :mod:`gis_ioc.scenarios.disclosure` says (cumulative
    rings, figures resting on fewer than ``privacy_threshold`` buildings withheld, rounded); facilities
    are listed as the viewer may read them and contacts only for viewers who direct work. The stored
    run belongs to the viewer."""
    started = time.perf_counter()
    period = _latest_period(conn)
    exposed = _exposed(conn, catalog, incident, period)
    shown = Disclosure(viewer.personal, privacy_threshold)
    rings = _rings(incident, exposed, shown)
    communes = _communes(conn, exposed, shown, viewer)
    inside = {
        spec.layer: _features(conn, catalog, incident, spec, viewer)
        for spec in scenario.inside
        if viewer.can_read(catalog.layer(spec.layer))
    }
    nearest = _nearest(conn, catalog, incident, scenario, viewer)
    shelters, flags = _shelters(conn, catalog, scenario, incident, exposed, shown, viewer, rings[-1]["people_within"])
    run = EmergencyRun(
        id=0,
        scenario=scenario.id,
        incident=incident.request,
        period=period,
        rings=rings,
        communes=communes,
        inside=inside,
        nearest=nearest,
        shelters=shelters,
        flags=flags,
        suppressed=shown.withheld,
        disclosure=shown.describe(),
        method=(
            "people and households: the households living in mapped buildings within reach, scaled to each "
            f"commune's registered population and households of {period}; communes with no mapped households "
            "by the share of their area"
        ),
        data_version=data_version(conn),
        duration_ms=0.0,
    )
    run.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if store and period is not None:
        body = run.as_dict()
        run.id = store_run(
            conn,
            viewer,
            scenario.id,
            period,
            incident.request,
            run.data_version,
            {
                **{k: body[k] for k in body if k not in ("id", "scenario", "period", "data_version")},
                "personal": viewer.personal,
            },
            run.duration_ms,
        )
    return run


def layer_key(catalog: Catalog, layer_id: str) -> str:
    return catalog.layer(layer_id).key or "fid"
