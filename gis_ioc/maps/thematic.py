"""Thematic maps: one indicator by commune for a period, classified with mapclassify (quantiles,
natural breaks, equal interval), with the communes that miss their target marked.

The figures are those of a stored scenario run over the whole province (the run of the first
scenario that carries the indicator, or a run given by id), so the map, the web map and the
reports agree commune by commune, and a map can be reproduced from its run id.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.indicators import PERIOD_RE, Indicator
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.publish.cql import Params
from gis_ioc.query import rows as read_path
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.engine import get_run, run_scenario
from gis_ioc.scenarios.models import Scenario

METHODS = {"quantiles": "Phân vị", "natural_breaks": "Ngắt tự nhiên (Jenks)", "equal_interval": "Khoảng đều"}
METHODS_EN = {"quantiles": "Quantiles", "natural_breaks": "Natural breaks (Jenks)", "equal_interval": "Equal interval"}
NO_DATA_COLOUR = "#d9d9d9"
FLAG_COLOUR = "#c62828"
STATUS_VI = {
    "met": "Đạt",
    "not met": "Chưa đạt",
    "no data": "Không có số liệu",
    "stale": "Số liệu cũ",
    "no target": "Không có mục tiêu",
    "suppressed": "Ẩn (bảo vệ dữ liệu cá nhân)",
}


#: Vietnam's time zone: every date and time a reader sees is local.
LOCAL_TIME = ZoneInfo("Asia/Ho_Chi_Minh")
#: Units counted in whole items (people, households, schools…): shown without decimals.
WHOLE_UNITS = frozenset({"người", "hộ", "trường", "giường", "ngày", "chỗ", "cơ sở", "xã"})
_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV"}


def vn_number(value: float | None, digits: int = 2) -> str:
    """Vietnamese number format: 1.234,56 (dot for thousands, comma for decimals); never ``-0``."""
    if value is None:
        return "—"
    if round(value, digits) == 0:
        value = 0.0  # -0.001 rounds to -0: a reader sees 0
    text = f"{value:,.{digits}f}"
    if digits:
        text = text.rstrip("0").rstrip(".")
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def unit_digits(unit: str | None) -> int:
    """Decimals shown for a figure in ``unit``: none for people, households and other whole counts."""
    return 0 if (unit or "").strip() in WHOLE_UNITS else 2


def vn_figure(value: float | None, unit: str | None) -> str:
    """A figure in its unit's precision (``8.726 hộ``, never ``8.726,35 hộ``), without the unit."""
    return vn_number(value, unit_digits(unit))


def vn_period(period: str | None, lang: str = "vi") -> str:
    """``2026-Q3`` as a reader writes it: ``Quý III/2026`` (``Q3 2026`` in English); ``2026``: ``Năm 2026``."""
    if not period:
        return "—"
    match = PERIOD_RE.match(period)
    if match is None:
        return period
    if match["quarter"] is None:
        return f"Năm {match['year']}" if lang == "vi" else f"Year {match['year']}"
    if lang == "vi":
        return f"Quý {_ROMAN[match['quarter']]}/{match['year']}"
    return f"Q{match['quarter']} {match['year']}"


def _instant(value: str | datetime | date | None) -> datetime | date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value
    text = str(value).strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def vn_datetime(value: str | datetime | None, seconds: bool = False) -> str:
    """An instant in Vietnam's time as ``02/12/2026 21:05`` (a naive one is taken as UTC)."""
    when = _instant(value)
    if when is None:
        return "—"
    if not isinstance(when, datetime):
        return when.strftime("%d/%m/%Y")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(LOCAL_TIME).strftime("%d/%m/%Y %H:%M" + (":%S" if seconds else ""))


def vn_date(value: str | datetime | date | None) -> str:
    """A day as ``02/12/2026`` (an instant: its day in Vietnam's time)."""
    when = _instant(value)
    if when is None:
        return "—"
    if isinstance(when, datetime):
        when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(LOCAL_TIME)
    return when.strftime("%d/%m/%Y")


def gap_text(direction: str, gap: float | None, unit: str | None, lang: str = "vi") -> str:
    """The distance to the target in words that follow the indicator's direction: a "higher is better"
    figure below its target is ``còn thiếu 2,5 %``; a "lower is better" one above it is
    ``vượt 0,74 vụ/10.000 dân/quý so với chỉ tiêu``; a target met, ``đạt``."""
    if gap is None:
        return "—"
    amount = f"{vn_figure(abs(gap), unit)} {unit or ''}".strip()
    if round(gap, unit_digits(unit)) <= 0:
        return "đạt chỉ tiêu" if lang == "vi" else "target met"
    if direction == "lower":
        return f"vượt {amount} so với chỉ tiêu" if lang == "vi" else f"{amount} above the target"
    return f"còn thiếu {amount}" if lang == "vi" else f"{amount} short of the target"


@dataclass
class CommuneFigure:
    code: str
    name: str
    value: float | None
    target: float | None
    status: str
    gap: float | None
    previous: float | None
    change: float | None
    klass: int | None  # class index (0 = lowest), None without a value
    colour: str

    @property
    def flagged(self) -> bool:
        return self.status == "not met"


@dataclass
class ThematicMap:
    indicator: Indicator
    period: str
    run_id: int
    scenario: str
    method: str
    bins: list[float]  # upper bounds of the classes
    minimum: float
    colours: list[str]
    counts: list[int]
    communes: list[CommuneFigure]
    data_date: str | None
    generated_at: str = field(default_factory=lambda: datetime.now(LOCAL_TIME).isoformat(timespec="seconds"))

    @property
    def title(self) -> str:
        return f"{self.indicator.name.vi} — {vn_period(self.period)}"

    @property
    def flagged(self) -> list[CommuneFigure]:
        return [c for c in self.communes if c.flagged]

    def class_labels(self, digits: int = 2) -> list[str]:
        lows = [self.minimum, *self.bins[:-1]]
        unit = self.indicator.unit
        digits = min(digits, unit_digits(unit))
        return [
            f"{vn_number(lo, digits)} – {vn_number(hi, digits)} {unit}" for lo, hi in zip(lows, self.bins, strict=True)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator.id,
            "name": {"vi": self.indicator.name.vi, "en": self.indicator.name.en},
            "unit": self.indicator.unit,
            "direction": self.indicator.direction,
            "period": self.period,
            "run_id": self.run_id,
            "scenario": self.scenario,
            "method": self.method,
            "classes": [
                {"lower": lo, "upper": hi, "colour": c, "count": n, "label": label}
                for lo, hi, c, n, label in zip(
                    [self.minimum, *self.bins[:-1]],
                    self.bins,
                    self.colours,
                    self.counts,
                    self.class_labels(),
                    strict=True,
                )
            ],
            "no_data_colour": NO_DATA_COLOUR,
            "communes": [
                {
                    "code": c.code,
                    "name": c.name,
                    "value": c.value,
                    "target": c.target,
                    "status": c.status,
                    "gap": c.gap,
                    "change": c.change,
                    "class": c.klass,
                    "colour": c.colour,
                    "flagged": c.flagged,
                }
                for c in self.communes
            ],
            "flagged": [c.code for c in self.flagged],
            "source": {"vi": self.indicator.source_unit.vi, "en": self.indicator.source_unit.en},
            "data_date": self.data_date,
            "generated_at": self.generated_at,
        }


def scenario_for(scenarios: dict[str, Scenario], indicator_id: str) -> Scenario:
    for sid in sorted(scenarios):
        if indicator_id in scenarios[sid].indicators:
            return scenarios[sid]
    raise InvalidInput(f"no scenario carries indicator {indicator_id!r}; add it to one in config/scenarios/")


def province_run(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenario: Scenario,
    period: str,
    *,
    viewer: Viewer,
    privacy_threshold: int = 5,
) -> dict[str, Any]:
    """Run a scenario over the whole province for the viewer (stored) and read it back as the viewer
    sees it."""
    selection = selectors.province(conn)
    run = run_scenario(conn, catalog, scenario, selection, period, viewer=viewer, privacy_threshold=privacy_threshold)
    return get_run(conn, run.id, viewer)


def palette(direction: str, k: int) -> list[str]:
    """k colours light to dark; for "lower is better" indicators dark is worse (reds)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["YlGnBu" if direction == "higher" else "YlOrRd"]
    if k == 1:
        return [to_hex(cmap(0.6))]
    return [to_hex(cmap(0.12 + 0.83 * i / (k - 1))) for i in range(k)]


def classify(values: list[float], method: str, k: int) -> tuple[list[float], list[int]]:
    """Upper bounds of the classes and each value's class, by mapclassify."""
    import mapclassify
    import numpy as np

    if method not in METHODS:
        raise InvalidInput(f"method {method!r} is not offered; use one of: {', '.join(METHODS)}")
    if not 2 <= k <= 9:
        raise InvalidInput(f"classes {k} must be between 2 and 9")
    y = np.asarray(values, dtype=float)
    k = min(k, len(np.unique(y)))
    if k < 2:
        return [float(y.max())], [0] * len(values)
    classifier: Any = {
        "quantiles": mapclassify.Quantiles,
        "natural_breaks": mapclassify.FisherJenks,  # exact Jenks, deterministic (NaturalBreaks samples at random)
        "equal_interval": mapclassify.EqualInterval,
    }
    with warnings.catch_warnings():  # mapclassify says when ties leave fewer classes; the legend shows it
        warnings.simplefilter("ignore", UserWarning)
        classifier = classifier[method](y, k=k)
    return [float(b) for b in classifier.bins], [int(c) for c in classifier.yb]


def thematic_map(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenarios: dict[str, Scenario],
    indicator_id: str,
    period: str | None = None,
    *,
    viewer: Viewer,
    method: str = "quantiles",
    classes: int = 5,
    run_id: int | None = None,
    scenario_id: str | None = None,
    privacy_threshold: int = 5,
) -> ThematicMap:
    """Classify an indicator by commune; the figures come from run ``run_id`` (one the viewer may see) or
    from a new province run (the viewer's), as the viewer sees them."""
    try:
        indicator = catalog.indicators.get(indicator_id)
    except Exception:
        known = ", ".join(i.id for i in catalog.indicators.indicators)
        raise NotFound(f"no indicator {indicator_id!r}; known: {known}") from None
    if run_id is not None:
        run = get_run(conn, run_id, viewer)
        if period is not None and period != run["period"]:
            raise InvalidInput(f"run {run_id} is for {run['period']}, not {period}")
    else:
        if period is None or not PERIOD_RE.match(period):
            raise InvalidInput(f"period {period!r} must be YYYY or YYYY-Qn (e.g. 2026-Q3)")
        scenario = scenarios[scenario_id] if scenario_id in scenarios else scenario_for(scenarios, indicator_id)
        if scenario_id is not None and scenario_id not in scenarios:
            raise NotFound(f"no scenario {scenario_id!r}; known: {', '.join(sorted(scenarios))}")
        run = province_run(conn, catalog, scenario, period, viewer=viewer, privacy_threshold=privacy_threshold)
    result = next((i for i in run["indicators"] if i["id"] == indicator_id), None)
    if result is None:
        raise InvalidInput(f"run {run['id']} ({run['scenario']}) has no indicator {indicator_id!r}")
    figures = result["communes"]
    shares = run["communes"]
    values = [figures[c["code"]]["value"] for c in shares if figures.get(c["code"], {}).get("value") is not None]
    if not values:
        raise NotFound(f"no values of {indicator_id} for {run['period']} in run {run['id']}")
    bins, yb = classify(values, method, classes)
    colours = palette(indicator.direction, len(bins))
    communes: list[CommuneFigure] = []
    it = iter(yb)
    for c in shares:
        fig = figures.get(c["code"], {})
        value = fig.get("value")
        klass = next(it) if value is not None else None
        communes.append(
            CommuneFigure(
                c["code"],
                c["name"],
                value,
                fig.get("target"),
                fig.get("status", "no data"),
                fig.get("gap"),
                fig.get("previous"),
                fig.get("change"),
                klass,
                colours[klass] if klass is not None else NO_DATA_COLOUR,
            )
        )
    counts = [sum(1 for c in communes if c.klass == i) for i in range(len(bins))]
    return ThematicMap(
        indicator=indicator,
        period=run["period"],
        run_id=run["id"],
        scenario=run["scenario"],
        method=method,
        bins=bins,
        minimum=min(values),
        colours=colours,
        counts=counts,
        communes=communes,
        data_date=(run.get("data_version") or {}).get("values_updated_at"),
    )


def commune_geometries(conn: psycopg.Connection[Any], srid: int = 4326, tolerance: float = 0.0) -> dict[str, bytes]:
    """WKB of the communes in force, in ``srid`` (a pinned gis_ioc SRID for VN-2000), simplified to
    ``tolerance`` (in the CRS's unit; 0: as stored)."""
    rows = conn.execute(
        "SELECT code, ST_AsBinary(ST_SimplifyPreserveTopology("
        "CASE WHEN %(s)s = 4326 THEN geom ELSE ST_Transform(geom, %(s)s) END, %(t)s)) "
        "FROM layers.communes WHERE valid_to IS NULL",
        {"s": srid, "t": tolerance},
    ).fetchall()
    return {code: bytes(wkb) for code, wkb in rows}


def overlay_features(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    layer_id: str,
    viewer: Viewer,
    srid: int = 4326,
    limit: int = 20000,
) -> tuple[list[dict[str, Any]], list[bytes], bool]:
    """A layer's features as the viewer may read them (:mod:`gis_ioc.query.rows`; fields that are not
    personal) for drawing over a map; True when cut at ``limit``."""
    from psycopg import sql

    from gis_ioc.catalog.ddl import SCHEMA

    try:
        layer = read_path.readable_layer(viewer, catalog, layer_id)
    except NotFound:
        known = ", ".join(sorted(v.id for v in viewer.readable(list(catalog))))
        raise NotFound(f"no layer {layer_id!r} to overlay; known: {known}") from None
    fields = [f.name for f in layer.fields if not f.personal]
    geom = sql.SQL("t.geom") if srid == 4326 else sql.SQL("ST_Transform(t.geom, {})").format(sql.Literal(srid))
    params = Params()
    rows = conn.execute(
        sql.SQL("SELECT {cols}, ST_AsBinary({geom}) FROM {table} t WHERE {where} ORDER BY t.fid LIMIT {n}").format(
            cols=sql.SQL(", ").join(sql.Identifier("t", f) for f in fields),
            geom=geom,
            table=sql.Identifier(SCHEMA, layer.table),
            where=read_path.where(viewer, layer, params),
            n=sql.Literal(limit + 1),
        ),
        params.values,
    ).fetchall()
    cut = len(rows) > limit
    rows = rows[:limit]
    props = [
        {
            f: (v if v is None or isinstance(v, str | int | float | bool) else str(v))
            for f, v in zip(fields, r[:-1], strict=True)
        }
        for r in rows
    ]
    return props, [bytes(r[-1]) for r in rows], cut
