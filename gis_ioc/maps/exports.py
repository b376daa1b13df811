"""Exports of a layer (with a CQL2 filter) or a scenario run as GeoPackage, zipped Shapefile, GeoJSON,
CSV or XLSX, in any published CRS (VN-2000 through the pinned EPSG:6960 SRIDs in PostGIS).

Rows come from a server-side cursor in batches and are written as they arrive, so memory stays flat
whatever the size of the layer; a callback reports progress (rows written, rows in all). The result
is a file in a folder the caller owns; the HTTP layer streams it back.

A layer's rows are read as a :class:`~gis_ioc.query.viewer.Viewer` may read them, through the one read
path (:mod:`gis_ioc.query.rows`): the console exports as ``Viewer.console()``, the HTTP door as the caller.
A stored run is exported as one feature per commune: a sector scenario run with its indicators, an
emergency run with the people and households exposed (as the run shows them).

Spreadsheets never run what a layer holds (formula injection): in XLSX every text is a string cell,
never a formula; in CSV a text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
prefixed with a single quote (OWASP's advice), so a spreadsheet shows it as text.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import shapely
from psycopg import sql

from gis_ioc import __version__
from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.crs import PUBLISHED, PublishedCrs, lookup
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.maps.thematic import STATUS_VI, vn_datetime, vn_period
from gis_ioc.publish.cql import Params
from gis_ioc.query import rows as read_path
from gis_ioc.query.viewer import Viewer

Progress = Callable[[int, int], None]

#: format → (file suffix, media type)
FORMATS: dict[str, tuple[str, str]] = {
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "shp": (".shp.zip", "application/zip"),
    "geojson": (".geojson", "application/geo+json"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
BATCH = 5000
XLSX_CELL_MAX = 32767  # characters Excel keeps in a cell
SHP_FIELD_MAX = 10
#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """A CSV cell that no spreadsheet reads as a formula: a text beginning with a formula character gets a
    leading single quote (numbers, dates and other values are unchanged)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def check_format(fmt: str) -> str:
    value = fmt.lower().strip().lstrip(".")
    value = {"shapefile": "shp", "json": "geojson", "excel": "xlsx", "geopackage": "gpkg"}.get(value, value)
    if value not in FORMATS:
        raise InvalidInput(f"format {fmt!r} is not offered; use one of: {', '.join(FORMATS)}")
    return value


def shorten_field_names(names: list[str]) -> dict[str, str]:
    """Shapefile (dBase) names of at most 10 characters, deterministic and collision-safe.

    In order: a name of ≤ 10 characters is kept; a longer one is cut to 10; a cut (or kept) name that
    is already taken (ignoring case) becomes its first 7 characters, ``_`` and a two-digit counter
    (``schools_na`` → ``schools_01``…). The same names in the same order always give the same result.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        clean = re.sub(r"[^A-Za-z0-9_]", "_", name) or "field"
        candidate = clean[:SHP_FIELD_MAX]
        n = 0
        while candidate.lower() in taken:
            n += 1
            if n > 99:
                raise InvalidInput(f"too many fields share the start of {name!r} for shapefile names")
            candidate = f"{clean[:7]}_{n:02d}"
        taken.add(candidate.lower())
        out[name] = candidate
    return out


#: Units of the catalog (UCUM-like codes) as a reader writes them.
UNITS_VI = {
    "{pupil}": "học sinh",
    "{class}": "lớp",
    "{household}": "hộ",
    "{dwelling}": "căn hộ",
    "{floor}": "tầng",
    "{doctor}": "bác sĩ",
    "{bed}": "giường",
    "{officer}": "cán bộ, chiến sĩ",
    "{vehicle}": "phương tiện",
    "{person}": "người",
    "m2": "m²",
    "km2": "km²",
    "VND": "đồng",
}
#: Booleans in a spreadsheet, and beside them when labels are asked.
BOOLEAN_VI = {True: "Có", False: "Không"}
#: What the codes of a scenario run's export mean.
STATUS_LABELS = STATUS_VI
METHOD_LABELS = {
    "whole": "Cả xã",
    "containing commune": "Xã chứa điểm chọn",
    "households in buildings": "Theo số hộ trong phần được chọn",
    "area": "Theo diện tích trong phần được chọn",
}
INCIDENT_LABELS = {
    "flood": "Ngập lụt",
    "fire": "Cháy, nổ",
    "epidemic": "Dịch bệnh",
    "environment": "Sự cố môi trường",
    "rescue": "Cứu nạn, cứu hộ",
}


def unit_label(unit: str | None) -> str | None:
    """A unit as a reader writes it: ``{pupil}`` → ``học sinh``, ``m2`` → ``m²``."""
    if not unit:
        return None
    return UNITS_VI.get(unit, unit.strip("{}"))


@dataclass
class Column:
    name: str
    type: str  # text | integer | number | boolean | date | datetime
    title: dict[str, str] = field(default_factory=dict)
    unit: str | None = None
    labels: dict[Any, str] | None = None  # code → Vietnamese label, for coded fields

    @property
    def header(self) -> str:
        """The Vietnamese title with the unit resolved: ``Số học sinh (học sinh)``."""
        unit = unit_label(self.unit)
        return self.title.get("vi", self.name) + (f" ({unit})" if unit else "")


@dataclass
class ExportResult:
    path: Path
    format: str
    media_type: str
    filename: str
    count: int
    crs: str
    columns: list[str]
    field_map: dict[str, str] = field(default_factory=dict)  # shapefile: field → short name

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.filename,
            "format": self.format,
            "features": self.count,
            "crs": self.crs,
            "columns": self.columns,
            "shapefile_fields": self.field_map or None,
            "bytes": self.path.stat().st_size,
        }


@dataclass
class Source:
    """What to export: columns, a count and an iterator of (values, WKB geometry) batches."""

    name: str  # base of the file name
    title: str
    columns: list[Column]
    geometry_type: str
    count: int
    batches: Callable[[], Iterator[list[tuple[list[Any], bytes | None]]]]
    notes: dict[str, str] = field(default_factory=dict)


def with_labels(source: Source) -> Source:
    """The source with a Vietnamese label beside each coded value: a column ``NAME_vi`` after each coded
    text field (``level`` = ``preschool``, ``level_vi`` = ``Mầm non``) and each boolean (``Có``/``Không``).
    The codes stay, so a file read back by a program still has them."""
    columns: list[Column] = []
    plan: list[tuple[int, dict[Any, str] | None]] = []  # source index, and the labels of an added column
    for i, col in enumerate(source.columns):
        columns.append(col)
        plan.append((i, None))
        labels: dict[Any, str] | None = (
            dict(BOOLEAN_VI) if col.type == "boolean" else (dict(col.labels) if col.labels else None)
        )
        if labels is None:
            continue
        title = {"vi": f"{col.title.get('vi', col.name)} (tên)", "en": f"{col.title.get('en', col.name)} (label)"}
        columns.append(Column(f"{col.name}_vi", "text", title))
        plan.append((i, labels))

    def expand(values: list[Any]) -> list[Any]:
        return [values[i] if labels is None else _label(labels, values[i]) for i, labels in plan]

    def batches() -> Iterator[list[tuple[list[Any], bytes | None]]]:
        for rows in source.batches():
            yield [(expand(values), wkb) for values, wkb in rows]

    notes = {**source.notes, "labels": "tên tiếng Việt bên cạnh mã (cột _vi)"}
    return Source(source.name, source.title, columns, source.geometry_type, source.count, batches, notes)


def _label(labels: dict[Any, str], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and ", " in value and value not in labels:  # a list of codes
        return ", ".join(str(labels.get(v, v)) for v in value.split(", "))
    return labels.get(value, value)


# -- sources ---------------------------------------------------------------------------------------


def layer_source(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    layer_id: str,
    crs: PublishedCrs,
    *,
    filter: dict[str, Any] | None = None,
    filter_text: str | None = None,
    filter_crs: PublishedCrs = PUBLISHED[0],
    bbox: tuple[float, float, float, float] | None = None,
    labels: bool = False,
) -> Source:
    """A layer's current approved features as ``viewer`` may read them, through the one read path
    (:func:`gis_ioc.query.rows.where`): a layer the viewer may not read is 404; a commune officer gets
    their own communes' rows; personal fields only with the personal-data grant. ``filter`` is a parsed
    CQL2 expression (cql2-json, see :func:`gis_ioc.publish.cql.parse_filter`), compiled with bound
    values in its own parentheses; ``filter_text`` is only what the caller wrote, for the file's notes."""
    try:
        layer = read_path.readable_layer(viewer, catalog, layer_id)
    except NotFound:
        raise NotFound(f"no layer {layer_id!r} to export") from None
    params = Params()
    where = read_path.where(viewer, layer, params, filter=filter, filter_crs=filter_crs, extra=bbox_sql(bbox, params))
    fields = list(layer.fields)  # as the viewer sees the layer: personal fields only when granted
    table = sql.Identifier(SCHEMA, layer.table)
    count_row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(table, where), params.values
    ).fetchone()
    count = int(count_row[0]) if count_row else 0
    statement = sql.SQL("SELECT t.fid, {cols}, ST_AsBinary({geom}) FROM {table} t WHERE {where} ORDER BY t.fid").format(
        cols=sql.SQL(", ").join(sql.Identifier("t", f.name) for f in fields),
        geom=_geometry(crs),
        table=table,
        where=where,
    )
    # ``feature_id`` is the OGC API's fid (a column named fid would clash with the GeoPackage's own)
    columns = [Column("feature_id", "integer", {"vi": "Mã đối tượng (OGC API)", "en": "Feature id (OGC API)"})] + [
        Column(
            f.name,
            f.type,
            {"vi": f.title.vi, "en": f.title.en},
            f.unit,
            {v.code: v.label.vi for v in f.values} if f.values else None,
        )
        for f in fields
    ]

    def batches() -> Iterator[list[tuple[list[Any], bytes | None]]]:
        with conn.transaction(), conn.cursor(name=f"export_{layer.id}") as cur:
            cur.itersize = BATCH
            cur.execute(statement, params.values)
            while found := cur.fetchmany(BATCH):
                yield [(list(r[:-1]), bytes(r[-1]) if r[-1] is not None else None) for r in found]

    notes = {"layer": layer.id, "title": layer.title.vi, "owner": layer.owner_unit.vi, "licence": layer.license}
    if filter_text:
        notes["filter"] = filter_text
    source = Source(layer.id, layer.title.vi, columns, layer.geometry, count, batches, notes)
    return with_labels(source) if labels else source


def bbox_sql(bbox: tuple[float, float, float, float] | None, params: Params) -> list[sql.Composable]:
    """A CRS84 box as extra conditions of :func:`gis_ioc.query.rows.where` (index-assisted intersection)."""
    if bbox is None:
        return []
    box = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(*(params.add(float(v)) for v in bbox))
    return [sql.SQL("t.geom && {box} AND ST_Intersects(t.geom, {box})").format(box=box)]


def is_emergency(run: dict[str, Any]) -> bool:
    return run.get("scenario") == "emergency" or not isinstance(run.get("indicators"), list)


def check_run(run: dict[str, Any], flagged_only: bool) -> None:
    """400 for what a run cannot be exported as: only sector runs flag communes."""
    if flagged_only and is_emergency(run):
        raise InvalidInput(
            f"run {run.get('id')} is an emergency run: its flags are shelters, not communes; export it without flagged"
        )


def _commune_geometries(conn: psycopg.Connection[Any], codes: list[str], crs: PublishedCrs) -> dict[str, bytes]:
    return {
        code: bytes(wkb)
        for code, wkb in conn.execute(
            sql.SQL(
                "SELECT t.code, ST_AsBinary({}) FROM layers.communes t WHERE t.valid_to IS NULL AND t.code = ANY(%s)"
            ).format(_geometry(crs)),
            (codes,),
        ).fetchall()
    }


def emergency_source(
    conn: psycopg.Connection[Any], run: dict[str, Any], crs: PublishedCrs, *, labels: bool = False
) -> Source:
    """A stored emergency run (as the viewer sees it) as one feature per commune concerned: the people and
    households exposed and how they were estimated; the rings' figures in the file's notes. Officials'
    contacts are not exported."""
    incident = run.get("incident") or {}
    columns = [
        Column("run_id", "integer", {"vi": "Mã lần phân tích", "en": "Scenario run"}),
        Column("incident", "text", {"vi": "Sự cố", "en": "Incident"}, labels=INCIDENT_LABELS),
        Column("period", "text", {"vi": "Kỳ số liệu dân số", "en": "Population figures of"}),
        Column("code", "text", {"vi": "Mã xã", "en": "Commune code"}),
        Column("name", "text", {"vi": "Tên", "en": "Name"}),
        Column("people", "integer", {"vi": "Số người bị ảnh hưởng", "en": "People exposed"}, "{person}"),
        Column("households", "integer", {"vi": "Số hộ bị ảnh hưởng", "en": "Households exposed"}, "{household}"),
        Column("method", "text", {"vi": "Cách ước tính", "en": "Estimated by"}, labels=METHOD_LABELS),
    ]
    communes = [c for c in run.get("communes") or [] if isinstance(c, dict)]
    geoms = _commune_geometries(conn, [c["code"] for c in communes], crs)

    def batches() -> Iterator[list[tuple[list[Any], bytes | None]]]:
        yield [
            (
                [
                    run["id"],
                    incident.get("incident"),
                    run.get("period"),
                    c["code"],
                    c.get("name"),
                    c.get("people"),
                    c.get("households"),
                    c.get("method"),
                ],
                geoms.get(c["code"]),
            )
            for c in communes
        ]

    rings = [{k: r.get(k) for k in ("label", "people_within", "households_within")} for r in run.get("rings") or []]
    notes = {
        "scenario_run": str(run["id"]),
        "scenario": str(run.get("scenario")),
        "incident": json.dumps(incident, ensure_ascii=False),
        "rings": json.dumps(rings, ensure_ascii=False),
        "counts": str(run.get("disclosure") or ""),
    }
    name = f"run_{run['id']}_emergency"
    kind = incident.get("incident")
    source = Source(
        name,
        f"Ứng phó khẩn cấp: {INCIDENT_LABELS.get(str(kind), kind)} (lần phân tích {run['id']})",
        columns,
        "MultiPolygon",
        len(communes),
        batches,
        notes,
    )
    return with_labels(source) if labels else source


def run_source(
    conn: psycopg.Connection[Any],
    run: dict[str, Any],
    crs: PublishedCrs,
    *,
    flagged_only: bool = False,
    labels: bool = False,
    scenario_titles: dict[str, str] | None = None,
) -> Source:
    """A stored scenario run as one feature per commune: share of the commune in the selection, each
    indicator's value, target, status and gap, and the flags (an emergency run: see
    :func:`emergency_source`)."""
    check_run(run, flagged_only)
    if is_emergency(run):
        return emergency_source(conn, run, crs, labels=labels)
    flags_by_commune: dict[str, list[str]] = {}
    for f in run["flags"]:
        if f["where"] != "total":
            flags_by_commune.setdefault(f["where"], []).append(f["indicator"])
    shares = run["communes"]
    if flagged_only:
        shares = [c for c in shares if c["code"] in flags_by_commune]
    titles = scenario_titles or {}
    columns = [
        Column("run_id", "integer", {"vi": "Mã lần phân tích", "en": "Scenario run"}),
        Column("scenario", "text", {"vi": "Lĩnh vực phân tích", "en": "Scenario"}, labels=titles or None),
        Column("period", "text", {"vi": "Kỳ", "en": "Period"}, labels={run["period"]: vn_period(run["period"])}),
        Column("code", "text", {"vi": "Mã xã", "en": "Commune code"}),
        Column("name", "text", {"vi": "Tên", "en": "Name"}),
        Column("share", "number", {"vi": "Tỷ lệ trong vùng chọn", "en": "Share in the selection"}),
        Column("method", "text", {"vi": "Cách phân bổ", "en": "Apportionment"}, labels=METHOD_LABELS),
        Column("flagged", "boolean", {"vi": "Có chỉ tiêu chưa đạt", "en": "Has targets not met"}),
        Column(
            "flags",
            "text",
            {"vi": "Chỉ tiêu chưa đạt", "en": "Targets not met"},
            labels={ind["id"]: ind["name"]["vi"] for ind in run["indicators"]},
        ),
    ]
    for ind in run["indicators"]:
        i, name, unit = ind["id"], ind["name"], ind["unit"]
        # the gap is positive when the target is missed: short of it ("higher is better") or above it
        gap = ("vượt chỉ tiêu", "above the target") if ind.get("direction") == "lower" else ("còn thiếu", "short")
        columns += [
            Column(i, "number", name, unit),
            Column(
                f"{i}_target",
                "number",
                {k: f"{v} (mục tiêu)" if k == "vi" else f"{v} (target)" for k, v in name.items()},
                unit,
            ),
            Column(
                f"{i}_status",
                "text",
                {k: f"{v} (đánh giá)" if k == "vi" else f"{v} (status)" for k, v in name.items()},
                labels=STATUS_LABELS,
            ),
            Column(
                f"{i}_gap",
                "number",
                {k: f"{v} ({gap[0]})" if k == "vi" else f"{v} ({gap[1]})" for k, v in name.items()},
                unit,
            ),
        ]
    geoms = _commune_geometries(conn, [c["code"] for c in shares], crs)

    def batches() -> Iterator[list[tuple[list[Any], bytes | None]]]:
        rows = []
        for c in shares:
            values: list[Any] = [
                run["id"],
                run["scenario"],
                run["period"],
                c["code"],
                c["name"],
                c["share"],
                c["method"],
                c["code"] in flags_by_commune,
                ", ".join(flags_by_commune.get(c["code"], [])),
            ]
            for ind in run["indicators"]:
                fig = ind["communes"].get(c["code"], {})
                values += [fig.get("value"), fig.get("target"), fig.get("status"), fig.get("gap")]
            rows.append((values, geoms.get(c["code"])))
        yield rows

    notes = {
        "scenario_run": str(run["id"]),
        "scenario": run["scenario"],
        "period": run["period"],
        "selection": json.dumps(run["selection"], ensure_ascii=False),
    }
    name = f"run_{run['id']}_{run['scenario']}" + ("_flagged" if flagged_only else "")
    title = f"{titles.get(run['scenario'], run['scenario'])}, {vn_period(run['period'])} (lần phân tích {run['id']})"
    source = Source(name, title, columns, "MultiPolygon", len(shares), batches, notes)
    return with_labels(source) if labels else source


def _geometry(crs: PublishedCrs) -> sql.Composable:
    """Geometry in the output CRS, x = longitude/easting first (files use GIS axis order)."""
    if crs.srid == 4326:
        return sql.SQL("t.geom")
    return sql.SQL("ST_Transform(t.geom, {})").format(sql.Literal(crs.srid))


# -- writers ---------------------------------------------------------------------------------------


def export(source: Source, fmt: str, crs: PublishedCrs, folder: Path, progress: Progress | None = None) -> ExportResult:
    """Write ``source`` to ``folder`` in ``fmt``; ``progress(done, total)`` after each batch."""
    fmt = check_format(fmt)
    suffix, media = FORMATS[fmt]
    folder.mkdir(parents=True, exist_ok=True)
    tag = crs.epsg or "crs84"
    filename = f"{source.name}_{tag}{suffix}"
    path = folder / filename
    progress = progress or (lambda done, total: None)
    progress(0, source.count)
    writer = {
        "gpkg": _write_ogr,
        "shp": _write_shapefile,
        "geojson": _write_geojson,
        "csv": _write_csv,
        "xlsx": _write_xlsx,
    }[fmt]
    count, field_map = writer(source, crs, path, progress)
    return ExportResult(path, fmt, media, filename, count, crs.uri, [c.name for c in source.columns], field_map)


def _pyproj_crs(crs: PublishedCrs) -> str:
    return "OGC:CRS84" if crs.epsg is None else f"EPSG:{crs.epsg}"


def _frame(
    source: Source,
    rows: list[tuple[list[Any], bytes | None]],
    crs: PublishedCrs,
    names: list[str],
    dates_as_text: bool = False,
) -> Any:
    import geopandas as gpd
    import pandas as pd  # type: ignore[import-untyped]

    data = pd.DataFrame([r[0] for r in rows], columns=names)
    for col in source.columns:
        if col.type == "date" and dates_as_text:  # dBase has no date-time; keep the day as YYYY-MM-DD
            name = _rename(names, source, col.name)
            data[name] = [None if v is None else v.isoformat() for v in data[name]]
        elif col.type in ("date", "datetime"):
            data[_rename(names, source, col.name)] = pd.to_datetime(
                data[_rename(names, source, col.name)], utc=col.type == "datetime"
            )
        elif col.type == "boolean":
            data[_rename(names, source, col.name)] = data[_rename(names, source, col.name)].astype("boolean")
    geoms = shapely.from_wkb([r[1] for r in rows])
    if "Multi" in source.geometry_type:
        geoms = [g if g is None or g.geom_type.startswith("Multi") else _multi(g) for g in geoms]
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=_pyproj_crs(crs))


def _rename(names: list[str], source: Source, name: str) -> str:
    return names[[c.name for c in source.columns].index(name)]


def _multi(g: Any) -> Any:
    kind = {"Polygon": shapely.MultiPolygon, "LineString": shapely.MultiLineString, "Point": shapely.MultiPoint}
    return kind[g.geom_type]([g])


def _write_ogr(
    source: Source,
    crs: PublishedCrs,
    path: Path,
    progress: Progress,
    names: list[str] | None = None,
    dates_as_text: bool = False,
    **options: Any,
) -> tuple[int, dict[str, str]]:
    import pyogrio

    names = names or [c.name for c in source.columns]
    done = 0
    if path.exists():
        path.unlink()
    for rows in source.batches():
        frame = _frame(source, rows, crs, names, dates_as_text)
        pyogrio.write_dataframe(
            frame, path, layer=source.name, promote_to_multi="Multi" in source.geometry_type, append=done > 0, **options
        )
        done += len(rows)
        progress(done, source.count)
    if done == 0:  # an empty layer still gives a file with the right fields and CRS
        frame = _frame(source, [], crs, names, dates_as_text)
        pyogrio.write_dataframe(frame, path, layer=source.name, geometry_type=source.geometry_type, **options)
    return done, {}


def _write_gpkg(source: Source, crs: PublishedCrs, path: Path, progress: Progress) -> tuple[int, dict[str, str]]:
    return _write_ogr(source, crs, path, progress)


def _write_shapefile(source: Source, crs: PublishedCrs, path: Path, progress: Progress) -> tuple[int, dict[str, str]]:
    names = [c.name for c in source.columns]
    short = shorten_field_names(names)
    folder = path.with_name(path.name.removesuffix(".shp.zip") + "_shp")
    folder.mkdir(exist_ok=True)
    shp = folder / f"{source.name}.shp"
    count, _ = _write_ogr(
        source, crs, shp, progress, names=[short[n] for n in names], dates_as_text=True, ENCODING="UTF-8"
    )
    mapping = folder / "fields.csv"
    with mapping.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["shapefile_field", "field", "title_vi", "title_en", "unit", "unit_vi"])
        for col in source.columns:
            row = [
                short[col.name],
                col.name,
                col.title.get("vi", ""),
                col.title.get("en", ""),
                col.unit or "",
                unit_label(col.unit) or "",
            ]
            out.writerow([csv_text(v) for v in row])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, part.name)
            part.unlink()
    folder.rmdir()
    return count, short


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write_geojson(source: Source, crs: PublishedCrs, path: Path, progress: Progress) -> tuple[int, dict[str, str]]:
    names = [c.name for c in source.columns]
    done = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", ')
        if crs.epsg is not None:  # RFC 7946 is CRS84 only; other CRSs are named (GDAL reads this member)
            fh.write(
                json.dumps({"crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.epsg}"}}})[1:-1]
                + ", "
            )
        fh.write(f'"name": {json.dumps(source.name)}, "features": [\n')
        for rows in source.batches():
            for values, wkb in rows:
                geometry = shapely.geometry.mapping(shapely.from_wkb(wkb)) if wkb else None
                feature = {
                    "type": "Feature",
                    "properties": {n: _cell(v) for n, v in zip(names, values, strict=True)},
                    "geometry": geometry,
                }
                fh.write(("" if done == 0 else ",\n") + json.dumps(feature, ensure_ascii=False))
                done += 1
            progress(done, source.count)
        fh.write("\n]}\n")
    return done, {}


def _point_and_wkt(wkb: bytes | None) -> tuple[float | None, float | None, str | None]:
    if not wkb:
        return None, None, None
    geom = shapely.from_wkb(wkb)
    point = geom.representative_point() if not geom.is_empty else None
    return (
        round(point.x, 7) if point is not None else None,
        round(point.y, 7) if point is not None else None,
        shapely.to_wkt(geom, rounding_precision=7, trim=True),
    )


def _write_csv(source: Source, crs: PublishedCrs, path: Path, progress: Progress) -> tuple[int, dict[str, str]]:
    """UTF-8 with a byte-order mark (Excel opens Vietnamese text right), a point inside each feature
    (x, y) and the geometry as WKT, in the export CRS."""
    done = 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([csv_text(c.name) for c in source.columns] + ["x", "y", "wkt"])
        for rows in source.batches():
            for values, wkb in rows:
                out.writerow([csv_text(_cell(v)) for v in values] + list(_point_and_wkt(wkb)))
            done += len(rows)
            progress(done, source.count)
    return done, {}


def _write_xlsx(source: Source, crs: PublishedCrs, path: Path, progress: Progress) -> tuple[int, dict[str, str]]:
    """A sheet of features (titles in Vietnamese in the first row, names in the second), x/y of a point
    inside each, WKT where it fits a cell; a second sheet describes the export."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(source.name[:31])
    bold = Font(bold=True)

    def text(sheet: Any, value: Any, always: bool = False) -> Any:
        """A text as a string cell: openpyxl would make ``=…`` a formula (and ``#N/A`` an error). Other
        texts are string cells already; they are passed as they are (a cell object each costs time)."""
        if not always and not (isinstance(value, str) and value.startswith((*FORMULA_START, "#"))):
            return value
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"
        return cell

    def header(values: list[str]) -> list[Any]:
        cells = []
        for v in values:
            cell = text(ws, v, always=True)
            cell.font = bold
            cells.append(cell)
        return cells

    titles = [c.header for c in source.columns]
    ws.append(header([*titles, "X", "Y", "WKT"]))
    booleans = [c.type == "boolean" for c in source.columns]

    def shown(value: Any, boolean: bool) -> Any:
        """What a reader sees in a cell: Có/Không for a boolean, a date as text, a text never a formula."""
        if boolean and isinstance(value, bool):
            return BOOLEAN_VI[value]
        return text(ws, _cell(value))

    ws.append(header([*(c.name for c in source.columns), "x", "y", "wkt"]))
    done = 0
    too_long = 0
    for rows in source.batches():
        for values, wkb in rows:
            x, y, wkt = _point_and_wkt(wkb)
            if wkt is not None and len(wkt) > XLSX_CELL_MAX:
                wkt, too_long = None, too_long + 1
            ws.append([shown(v, b) for v, b in zip(values, booleans, strict=True)] + [x, y, text(ws, wkt)])
        done += len(rows)
        progress(done, source.count)
    meta = wb.create_sheet("export")
    info = {
        "title": source.title,
        "features": done,
        "crs": crs.uri,
        "crs_name": crs.name,
        "generated_at": vn_datetime(datetime.now(UTC), seconds=True) + " (giờ Việt Nam)",
        "generator": f"gis_ioc {__version__}",
        **source.notes,
    }
    if too_long:
        info["wkt_omitted"] = f"{too_long} geometries longer than {XLSX_CELL_MAX} characters (use GeoPackage)"
    for k, v in info.items():
        meta.append([text(meta, k), text(meta, str(v))])
    wb.save(path)
    return done, {}


def resolve_crs(value: str | None) -> PublishedCrs:
    return PUBLISHED[0] if not value else lookup(value)
