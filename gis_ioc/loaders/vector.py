"""The vector loader: one function behind ``gis-ioc load vector``, ``POST /api/loads`` and Python callers.

read (GDAL) → encoding → field mapping → CRS (VN-2000 pinned, diagnosed against the province) →
quality gates → staging table → checks against approved rows → merge, all in one transaction: a load
that is refused or fails leaves every table as it was. Loaded features are drafts until approved
(:func:`gis_ioc.loaders.history.approve`), unless the source unit is a trusted automated feed.

Who may load into which layer is the door's question (:meth:`gis_ioc.query.viewer.Viewer.may_load`); the
door passes an ``audit`` callback that writes the load's audit record inside the load's own transaction,
so the record stands or falls with the load.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import PG_TYPES, table_ident
from gis_ioc.catalog.models import FieldType, Layer
from gis_ioc.database.loads import sha256_file
from gis_ioc.errors import InvalidInput, LoadError
from gis_ioc.loaders import crs_check, derive, history, matching, quality
from gis_ioc.loaders.sources import Source, open_source, remove_work
from gis_ioc.settings import Settings

Mode = Literal["append", "replace", "upsert"]
MODES: tuple[Mode, ...] = ("append", "replace", "upsert")
#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LoaderConfig:
    work_dir: Path
    max_unzipped_bytes: int = 1 << 30
    overlap_tolerance_m2: float = 1.0
    auto_approve_units: tuple[str, ...] = ()
    bulk_rows: int | None = None  # from this many rows on the table's owner merges in bulk (None: BULK_ROWS)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoaderConfig:
        units = tuple(u.strip() for u in settings.load_auto_approve_units.split(",") if u.strip())
        return cls(
            work_dir=settings.home / "work" / "loads",
            max_unzipped_bytes=settings.load_max_unzipped_mb * 1024 * 1024,
            overlap_tolerance_m2=settings.load_overlap_tolerance,
            auto_approve_units=units,
        )


@dataclass
class LoadOptions:
    layer_id: str
    crs: str | None = None
    mode: Mode = "append"
    source_unit: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)  # FIELD=VALUE for every feature (CAD drawings)
    encoding: str | None = None
    source_layer: str | None = None
    where: str | None = None
    source_date: date | None = None
    accept_warnings: bool = False
    dry_run: bool = False
    loaded_by: str | None = None
    file_name: str | None = None  # the name the officer gave the file (uploads are stored under another)


@dataclass
class LoadReport:
    layer_id: str
    file_name: str
    file_sha256: str
    mode: str
    status: str = "rejected"  # rejected, checked (dry run), loaded
    format: str | None = None
    source_layer: str | None = None
    features: int = 0
    loaded: int = 0
    load_id: int | None = None
    approval: str | None = None
    crs: dict[str, Any] = field(default_factory=dict)
    encoding: dict[str, Any] | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    derived: dict[str, str] = field(default_factory=dict)  # field → how the geometry gave it
    proposed_map: str | None = None  # ``--map`` arguments proposed for the columns left unmatched
    source_date: date | None = None
    findings: quality.Findings = field(default_factory=quality.Findings)
    notes: list[str] = field(default_factory=list)
    message: str = ""
    message_en: str | None = None

    def text(self, lang: str = "vi") -> str:
        """The outcome in ``lang``: Vietnamese by default, English with ``en``."""
        return self.message_en if lang == "en" and self.message_en else self.message

    @property
    def errors(self) -> int:
        return self.findings.count("error")

    @property
    def warnings(self) -> int:
        return self.findings.count("warning")

    def as_dict(self, lang: str = "vi") -> dict[str, Any]:
        """The report as JSON-ready data; ``message`` texts in ``lang`` (``vi`` or ``en``), codes unchanged."""
        counts: dict[str, dict[str, int]] = {}
        for (severity, code), n in sorted(self.findings.counts.items()):
            counts.setdefault(severity, {})[code] = n
        return {
            "status": self.status,
            "message": self.text(lang),
            "message_en": self.message_en,
            "layer": self.layer_id,
            "file": {
                "name": self.file_name,
                "sha256": self.file_sha256,
                "format": self.format,
                "layer": self.source_layer,
            },
            "mode": self.mode,
            "features": self.features,
            "loaded": self.loaded,
            "load_id": self.load_id,
            "approval": self.approval,
            "crs": self.crs,
            "encoding": self.encoding,
            "mapping": self.mapping,
            "derived": self.derived,
            "proposed_map": self.proposed_map,
            "source_date": self.source_date.isoformat() if self.source_date else None,
            "errors": self.errors,
            "warnings": self.warnings,
            "counts": counts,
            "issues": [{**i.as_dict(), "message": i.text(lang)} for i in self.findings.issues],
            "notes": self.notes,
        }


#: audit(conn, report): the load's audit record, written in the load's transaction once it is merged
Audit = Callable[[psycopg.Connection[Any], "LoadReport"], None]


class LoadRejected(LoadError):
    """The load was refused (its report says why, row by row); nothing was written."""

    def __init__(self, report: LoadReport) -> None:
        super().__init__(report.message)
        self.report = report


def _reject(report: LoadReport, message: str, en: str | None = None) -> LoadRejected:
    """Refuse the load: ``message`` in Vietnamese (what users read first), ``en`` in English."""
    report.status = "rejected"
    report.message = message
    report.message_en = en
    return LoadRejected(report)


def _province(conn: psycopg.Connection[Any]) -> shapely.Geometry:
    row = conn.execute("SELECT ST_AsBinary(geom) FROM layers.province WHERE valid_to IS NULL LIMIT 1").fetchone()
    if row is None:
        raise LoadError("the province outline is not loaded (run `gis-ioc load boundaries` or `gis-ioc setup`)")
    return shapely.from_wkb(bytes(row[0]))


def _map_columns(
    source: Source, layer: Layer, mapping: dict[str, str], constants: dict[str, str], report: LoadReport
) -> dict[str, str]:
    """field name → source column: the explicit ``--map src=dst`` pairs, then same names (any case)."""
    columns = [c for c in source.frame.columns if c != source.frame.geometry.name and not c.startswith("--set ")]
    out: dict[str, str] = {}
    for src, dst in mapping.items():
        if src not in columns:
            raise InvalidInput(
                f"--map {src}={dst}: the file has no column {src!r}; it has {', '.join(columns)}",
                vi=f"--map {src}={dst}: tệp không có cột {src!r}; các cột của tệp: {', '.join(columns)}",
            )
        if layer.field(dst) is None:
            names = ", ".join(f.name for f in layer.fields)
            raise InvalidInput(
                f"--map {src}={dst}: layer {layer.id} has no field {dst!r}; its fields: {names}",
                vi=f"--map {src}={dst}: lớp {layer.id} không có trường {dst!r}; các trường của lớp: {names}",
            )
        out[dst] = src
    by_lower = {c.lower(): c for c in columns}
    for fld in layer.fields:
        if fld.name not in out and fld.name in by_lower and by_lower[fld.name] not in out.values():
            out[fld.name] = by_lower[fld.name]
    by_label = matching.match_columns(columns, layer, {**out, **dict.fromkeys(constants, "")})
    if by_label:
        out.update(by_label)
        shown = ", ".join(f"{c} → {f}" for f, c in by_label.items())
        report.findings.add(
            "note",
            "columns_matched",
            f"cột khớp với trường theo tên gọi trong danh mục: {shown}",
            en=f"columns matched to fields through the catalog's titles and synonyms: {shown}",
        )
    ignored = [c for c in columns if c not in out.values()]
    proposal = matching.propose(ignored, layer, {**out, **dict.fromkeys(constants, "")})
    report.proposed_map = matching.map_line(proposal) if proposal else None
    if ignored:
        report.findings.add(
            "note",
            "ignored_columns",
            f"các cột không thuộc lớp {layer.id}, không nạp: {', '.join(ignored)}"
            + (f"; đề xuất: {report.proposed_map}" if report.proposed_map else ""),
            en=f"columns not in layer {layer.id}, not loaded: {', '.join(ignored)}"
            + (f"; proposed: {report.proposed_map}" if report.proposed_map else ""),
        )
    from_geometry = derive.derivable(layer)
    guessed = {f: c for c, f in proposal.items()}
    for fld in layer.fields:
        if fld.name not in out and fld.required and fld.name not in constants and fld.name not in from_geometry:
            hint = f"--map {guessed[fld.name]}={fld.name}" if fld.name in guessed else f"--map COT={fld.name}"
            report.findings.add(
                "error",
                "missing_column",
                f"trường bắt buộc {fld.name} ({fld.title.vi}) không có cột trong tệp (dùng {hint})",
                fld=fld.name,
                en=f"required field {fld.name} ({fld.title.en}) has no column in the file "
                f"(use {hint.replace('COT', 'COLUMN')})",
            )
    report.mapping = dict(out)
    return out


def _sample_xy(geoms: np.ndarray, limit: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if len(present) > limit:
        present = present[np.linspace(0, len(present) - 1, limit).astype(int)]
    bounds = shapely.bounds(present)
    return (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2


def _sample_vertices(geoms: np.ndarray, features: int = 100, limit: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` vertices of up to ``features`` features spread over the file (for the fit to approved layers)."""
    present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if len(present) > features:
        present = present[np.linspace(0, len(present) - 1, features).astype(int)]
    coords = shapely.get_coordinates(present)
    if len(coords) > limit:
        coords = coords[np.linspace(0, len(coords) - 1, limit).astype(int)]
    return coords[:, 0], coords[:, 1]


def _layer_fit(conn: psycopg.Connection[Any], lon: np.ndarray, lat: np.ndarray) -> float | None:
    """Median distance (m) from these points to the nearest approved road or parcel boundary within 1 km;
    None when fewer than half of them, or than 10, have one (nothing to compare with)."""
    row = conn.execute(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), count(*) FILTER (WHERE d < 1000), count(*)
             FROM (SELECT LEAST(
                     (SELECT ST_Distance(r.geom::geography, p.g::geography) FROM layers.roads r
                       WHERE r.approval = 'approved' ORDER BY r.geom <-> p.g LIMIT 1),
                     (SELECT ST_Distance(ST_Boundary(l.geom)::geography, p.g::geography) FROM layers.land_parcels l
                       WHERE l.approval = 'approved' ORDER BY l.geom <-> p.g LIMIT 1),
                     1000) AS d
                     FROM (SELECT ST_SetSRID(ST_MakePoint(x, y), 4326) AS g
                             FROM unnest(%s::float8[], %s::float8[]) AS t(x, y)) p) s""",
        (lon.tolist(), lat.tolist()),
    ).fetchone()
    if row is None or row[0] is None or row[1] * 2 < row[2] or row[1] < 10:
        return None
    return float(row[0])


def load_vector(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    path: Path,
    options: LoadOptions,
    config: LoaderConfig,
    *,
    progress: Progress | None = None,
    audit: Audit | None = None,
) -> LoadReport:
    """Load one file into one layer; returns the report, or raises :class:`LoadRejected` with it.
    ``audit`` is called in the load's transaction after the merge (not for a dry run)."""
    if options.layer_id not in catalog.layers:
        known = ", ".join(sorted(catalog.layers))
        raise InvalidInput(
            f"unknown layer {options.layer_id!r}; known: {known}",
            vi=f"không có lớp {options.layer_id!r}; các lớp: {known}",
        )
    layer = catalog.layers[options.layer_id]
    if layer.versioned:
        raise InvalidInput(
            f"{layer.id} is versioned: load boundaries with `gis-ioc load boundaries FILE --valid-from DATE`",
            vi=f"{layer.id} có phiên bản theo thời gian: nạp ranh giới bằng "
            "`gis-ioc load boundaries TỆP --valid-from NGÀY`",
        )
    if options.mode not in MODES:
        raise InvalidInput(
            f"mode {options.mode!r}: use one of {', '.join(MODES)}",
            vi=f"chế độ {options.mode!r} không có; dùng một trong: {', '.join(MODES)}",
        )
    if options.mode == "upsert" and layer.key is None:
        raise InvalidInput(
            f"layer {layer.id} has no key field: upsert is not possible, use append or replace",
            vi=f"lớp {layer.id} không có trường khóa nên không cập nhật theo khóa (upsert) được: "
            "dùng append hoặc replace",
        )
    if not path.exists() or not path.is_file():
        raise LoadError(f"{path}: file not found")
    step = progress or (lambda stage, done, total: None)
    report = LoadReport(options.layer_id, options.file_name or path.name, sha256_file(path), options.mode)
    work = config.work_dir / uuid.uuid4().hex
    try:
        step("read", 0, 1)
        source = open_source(
            path,
            work,
            source_layer=options.source_layer,
            encoding=options.encoding,
            where=options.where,
            max_unzipped_bytes=config.max_unzipped_bytes,
            polygons="Polygon" in layer.geometry,
        )
    except LoadError as exc:
        raise _reject(report, str(exc), getattr(exc, "en", None)) from exc
    finally:
        remove_work(work)
    return _check_and_write(conn, layer, source, options, config, report, step, audit)


def _check_and_write(
    conn: psycopg.Connection[Any],
    layer: Layer,
    source: Source,
    options: LoadOptions,
    config: LoaderConfig,
    report: LoadReport,
    step: Progress,
    audit: Audit | None = None,
) -> LoadReport:
    frame = source.frame
    n = len(frame)
    report.format, report.source_layer, report.features = source.format, source.layer, n
    report.notes.extend(source.notes)
    step("check", 0, n)
    if source.encoding is not None:
        det = source.encoding_detected
        report.encoding = {
            "used": source.encoding,
            "how": "detected" if det is not None else "given with --encoding",
            "converted_values": source.converted_values,
            "scores": {k: round(v, 1) for k, v in det.scores.items()} if det else None,
            "examples": [{"read": a, "converted": b} for a, b in det.examples] if det else [],
        }
        if source.converted_values and source.encoding not in ("utf-8",):
            example = f" {det.examples[0][0]!r} → {det.examples[0][1]!r}" if det and det.examples else ""
            report.findings.add(
                "note",
                "encoding_converted",
                f"đã chuyển {source.converted_values} giá trị văn bản từ {source.encoding} sang Unicode (NFC)"
                + (f", ví dụ{example}" if example else ""),
                en=f"{source.converted_values} text values converted from {source.encoding} to Unicode (NFC)"
                + (f", e.g.{example}" if example else ""),
            )
            if source.encoding == "tcvn3":
                report.notes.append("TCVN3 (ABC) has no capitals with tone marks: such letters come out lowercase")
    for name, value in options.constants.items():
        if layer.field(name) is None:
            raise InvalidInput(
                f"--set {name}={value}: layer {layer.id} has no field {name!r}",
                vi=f"--set {name}={value}: lớp {layer.id} không có trường {name!r}",
            )
        frame[f"--set {name}"] = value
    columns = _map_columns(source, layer, options.mapping, options.constants, report)
    columns.update({name: f"--set {name}" for name in options.constants})

    # coordinate system
    province = _province(conn)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    x, y = _sample_xy(geoms)
    reading: crs_check.SourceCrs | None = None
    crs_notes: list[str] = []
    if options.crs:
        reading = crs_check.source_crs(crs_check.parse_crs(options.crs), crs_notes)
        origin = "--crs"
    elif source.declared_crs is not None:
        reading = crs_check.source_crs(source.declared_crs, crs_notes)
        origin = source.crs_origin
    else:
        origin = "none"
    report.notes.extend(crs_notes)
    crs_failed = False
    if len(x):
        diagnosis = crs_check.diagnose(
            reading, x, y, province, vertices=_sample_vertices(geoms), fit=lambda lon, lat: _layer_fit(conn, lon, lat)
        )
        crs_failed = diagnosis.failed or reading is None
        if diagnosis.vi is not None:
            severity: quality.Severity = "error" if crs_failed else "warning"
            report.findings.add(severity, "crs", diagnosis.vi, fld="geometry", en=diagnosis.en)
    if reading is not None:
        report.crs = {"source": reading.label, "name": reading.name, "from": origin, "operation": reading.operation}
    else:
        report.crs = {"source": None, "from": "none"}

    # attributes
    casted: dict[str, list[Any]] = {}
    from_geometry = derive.derivable(layer)
    for name, src in columns.items():
        fld = layer.field(name)
        assert fld is not None
        if name in from_geometry:  # blanks are filled from the geometry (derive.fill), not refused here
            fld = fld.model_copy(update={"required": False})
        casted[name] = quality.cast_field(frame[src], fld, report.findings)
    report.source_date = options.source_date or quality.source_date_of(frame, layer, casted)
    quality.check_freshness(report.source_date, layer, date.today(), report.findings)

    if crs_failed or reading is None:
        raise _reject(
            report,
            f"{report.file_name}: tọa độ không khớp với tỉnh Hưng Yên — {_first(report, 'crs')}",
            f"{report.file_name}: the coordinates do not fit Hưng Yên — {_first(report, 'crs', 'en')}",
        )
    with np.errstate(all="ignore"):
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(crs_check.to_wgs84(reading, xy[:, 0], xy[:, 1])))
    if source.format == "DXF" and "Polygon" in layer.geometry:
        geoms = _close_cad_rings(geoms, report)
    geoms, ok = quality.check_geometry(geoms, layer, province, report.findings)
    report.derived = derive.fill(conn, layer, geoms, ok, casted, report.findings)
    key_values = casted.get(layer.key) if layer.key else None
    quality.check_duplicates(geoms, key_values, layer.key, report.findings)
    if layer.no_overlap:
        step("overlaps", 0, n)
        quality.check_overlaps(geoms, ok, config.overlap_tolerance_m2, report.findings)
    step("check", n, n)

    if report.errors:
        raise _reject(
            report,
            f"{report.errors} lỗi trong {report.file_name}: chưa nạp gì",
            f"{_n(report.errors, 'error')} in {report.file_name}: nothing was loaded",
        )
    if report.warnings and not options.accept_warnings:
        raise _reject(
            report,
            f"{report.warnings} cảnh báo trong {report.file_name}: chưa nạp gì; "
            "nạp lại với --accept-warnings để chấp nhận các cảnh báo",
            f"{_n(report.warnings, 'warning')} in {report.file_name}: nothing was loaded; "
            "load again with --accept-warnings to accept them",
        )
    if options.dry_run:
        report.status = "checked"
        report.message = f"đã kiểm tra {n} đối tượng, không ghi gì (chạy thử)"
        report.message_en = f"{n} features checked, nothing written (dry run)"
        return report
    _write(conn, layer, casted, geoms, options, config, report, step, audit)
    return report


def _close_cad_rings(geoms: np.ndarray, report: LoadReport) -> np.ndarray:
    """CAD draws areas as closed polylines: a closed line (first point = last) becomes a polygon."""
    lines = np.flatnonzero(shapely.get_type_id(geoms) == 1)
    closed = [i for i in lines if shapely.is_closed(geoms[i]) and shapely.get_num_points(geoms[i]) >= 4]
    if closed:
        geoms = geoms.copy()
        geoms[closed] = [shapely.Polygon(shapely.get_coordinates(g)) for g in geoms[closed]]
        report.findings.add(
            "note",
            "closed_polylines",
            f"{len(closed)} đường khép kín được đọc thành vùng",
            en=f"{len(closed)} closed polylines read as polygons",
        )
    return geoms


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _first(report: LoadReport, code: str, lang: str = "vi") -> str:
    return next((i.text(lang) for i in report.findings.issues if i.code == code), "")


def _write(
    conn: psycopg.Connection[Any],
    layer: Layer,
    casted: dict[str, list[Any]],
    geoms: np.ndarray,
    options: LoadOptions,
    config: LoaderConfig,
    report: LoadReport,
    step: Progress,
    audit: Audit | None = None,
) -> None:
    names = list(casted)
    n = len(geoms)
    ewkb = shapely.to_wkb(shapely.set_srid(geoms, 4326), include_srid=True)  # binary COPY: geometry_recv reads EWKB
    loaded_by = options.loaded_by or getpass.getuser()
    auto = options.source_unit is not None and options.source_unit in config.auto_approve_units
    stage = sql.Identifier("_gis_ioc_stage")
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"gis_ioc.load.{layer.id}",))
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")  # the staging table's spatial index
            load_id = history.insert_load(
                conn,
                kind="vector",
                layer_id=layer.id,
                mode=options.mode,
                source_unit=options.source_unit,
                file_name=report.file_name,
                file_sha256=report.file_sha256,
                loaded_by=loaded_by,
                params={
                    "crs": report.crs,
                    "encoding": report.encoding and report.encoding["used"],
                    "mapping": report.mapping,
                    "derived": report.derived,
                    "format": report.format,
                    "source_layer": report.source_layer,
                    "accept_warnings": options.accept_warnings,
                },
            )
            cols: list[sql.Composable] = [sql.SQL("row_no integer")]
            for name in names:
                fld = layer.field(name)
                assert fld is not None
                cols.append(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_STAGE_TYPES[fld.type])))
            cols.append(sql.SQL("geom geometry({}, 4326)").format(sql.SQL(layer.geometry)))
            conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(stage, sql.SQL(", ").join(cols)))
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                stage, sql.SQL(", ").join(sql.Identifier(c) for c in ["row_no", *names, "geom"])
            )
            values = [casted[name] for name in names]
            every = max(n // 100, 1000)
            types = ["int4", *(_COPY_TYPES[layer.field(name).type] for name in names), "bytea"]  # type: ignore[union-attr]
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(types)
                for i, row in enumerate(zip(range(1, n + 1), *values, ewkb, strict=True)):
                    copy.write_row(row)
                    if i % every == 0:
                        step("write", i, n)
            step("write", n, n)
            step("gates", 0, 1)
            _database_gates(conn, layer, stage, options, config, report)
            if report.errors:
                raise _reject(
                    report,
                    f"{report.errors} lỗi so với dữ liệu đã duyệt: chưa nạp gì",
                    f"{_n(report.errors, 'error')} against the approved data: nothing was loaded",
                )
            step("merge", 0, 1)
            threshold = BULK_ROWS if config.bulk_rows is None else config.bulk_rows
            bulk = n >= threshold and owns_table(conn, layer)
            restore = _bulk_begin(conn, layer, n) if bulk else []
            if bulk:
                report.notes.append(f"{n} rows merged in bulk (the table's indexes and load key restored after)")
            target_cols = sql.SQL(", ").join(sql.Identifier(c) for c in [*names, "geom"])
            inserted = conn.execute(
                sql.SQL(
                    "INSERT INTO {} ({}, is_demo, load_id, approval) "
                    "SELECT {}, false, %s, 'draft' FROM {}"  # no sort: staging order is file order in practice
                ).format(table_ident(layer), target_cols, target_cols, stage),
                (load_id,),
            ).rowcount
            for statement in restore:
                conn.execute(statement)
            report.load_id, report.loaded, report.status, report.approval = load_id, inserted, "loaded", "draft"
            report.message = (
                f"đã nạp {inserted} đối tượng vào {layer.id}, lần nạp {load_id} (bản nháp: phê duyệt để công bố)"
            )
            report.message_en = (
                f"{inserted} features loaded into {layer.id} as load {load_id} (draft: approve it to publish)"
            )
            step("finish", 0, 1)
            load_row = history.show_row(conn, load_id)
            if auto:
                history.approve_in_transaction(conn, layer, load_row, by=f"auto ({options.source_unit})")
                report.approval = "approved"
                report.message = f"đã nạp {inserted} đối tượng vào {layer.id}, lần nạp {load_id}, tự động phê duyệt"
                report.message_en = (
                    f"{inserted} features loaded into {layer.id} as load {load_id}, approved automatically"
                )
            conn.execute(
                """UPDATE gis_ioc.loads SET status = 'done', finished_at = clock_timestamp(), row_count = %s,
                          source_date = %s, report = %s WHERE id = %s""",
                (inserted, report.source_date, Jsonb(report.as_dict()), load_id),
            )
            if audit is not None:
                audit(conn, report)
            step("merge", 1, 1)
    except (psycopg.Error, OverflowError) as exc:  # OverflowError: an integer beyond bigint, met by binary COPY
        report.load_id = None
        first = str(exc).strip().splitlines()[0]
        raise _reject(
            report, f"nạp không thành công, không có gì thay đổi: {first}", f"load failed, nothing changed: {first}"
        ) from exc
    except LoadRejected:
        report.load_id = None
        raise


#: Staging column types: integers are staged as bigint so that a value beyond ``integer`` fails in the
#: merge (``integer out of range``) instead of wrapping around in the binary COPY.
_STAGE_TYPES: dict[FieldType, str] = {**PG_TYPES, "integer": "bigint"}
_COPY_TYPES: dict[FieldType, str] = {"text": "text", "integer": "int8", "number": "float8", "boolean": "bool",
                                     "date": "date", "datetime": "timestamptz"}  # fmt: skip
#: From this many rows on (``LoaderConfig.bulk_rows``), the merge inserts without the per-row foreign-key
#: trigger (and, when the layer holds fewer rows than the load brings, without upkeep of the GiST and other
#: non-unique indexes), then restores them in bulk, when the connection's role owns the table.
BULK_ROWS = 100_000


def owns_table(conn: psycopg.Connection[Any], layer: Layer) -> bool:
    """May the current role drop and recreate the layer table's indexes and its foreign key to
    ``gis_ioc.loads``? Only as (a member of) the table's owner: the server's role (``gis_ioc_server``,
    writing as ``gis_ioc_full``) owns nothing and merges row by row."""
    row = conn.execute(
        """SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                  AND has_table_privilege('gis_ioc.loads', 'REFERENCES')
             FROM pg_class c WHERE c.oid = %s::regclass""",
        (table_ident(layer).as_string(conn),),
    ).fetchone()
    return bool(row and row[0])


def _rebuild_indexes(existing: int, n: int) -> bool:
    """Build the non-unique indexes after the insert rather than maintain them row by row?"""
    return existing < n


def _bulk_begin(conn: psycopg.Connection[Any], layer: Layer, n: int) -> list[sql.SQL | sql.Composed]:
    """Make a large merge set-based: returns the statements that put the constraint and index back.

    The ``load_id`` foreign key costs a trigger call and an index probe of ``gis_ioc.loads`` per row
    (7 of 11 s on 300,000 parcels): it is dropped and added again after the insert, which validates
    every row of the table in one anti-join, so the table never commits without it. The GiST index and
    the other non-unique indexes are built again in bulk only when the layer holds fewer rows than the
    load brings (else keeping them is cheaper). This takes an ACCESS EXCLUSIVE lock on the layer table
    (and a lock on gis_ioc.loads) until the load commits: readers of this layer wait for the merge. The
    unique indexes (the primary key, the approved-key index) stay in place and check every row.
    """
    table = table_ident(layer)
    oid = conn.execute("SELECT %s::regclass::oid", (table.as_string(conn),)).fetchone()
    assert oid is not None
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
    restore: list[sql.SQL | sql.Composed] = []
    existing = conn.execute(sql.SQL("SELECT count(*) FROM (SELECT FROM {} LIMIT %s) x").format(table), (n,)).fetchone()
    if existing is not None and _rebuild_indexes(existing[0], n):
        for schema, name, definition in conn.execute(
            """SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE i.indrelid = %s AND NOT i.indisunique
                  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)""",
            (oid[0],),
        ).fetchall():
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
            restore.append(sql.SQL(definition))
    for name, definition in conn.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = %s AND contype = 'f' AND confrelid = 'gis_ioc.loads'::regclass""",
        (oid[0],),
    ).fetchall():
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, sql.Identifier(name)))
        restore.append(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(table, sql.Identifier(name), sql.SQL(definition))
        )
    return restore


def _database_gates(
    conn: psycopg.Connection[Any],
    layer: Layer,
    stage: sql.Identifier,
    options: LoadOptions,
    config: LoaderConfig,
    report: LoadReport,
) -> None:
    """Keys and overlaps against the approved rows that will stay in service."""
    table = table_ident(layer)
    if layer.key is not None and options.mode == "append":
        rows = conn.execute(
            sql.SQL(
                """SELECT s.row_no, s.{k}, t.fid FROM {s} s JOIN {t} t ON t.{k} = s.{k} AND t.approval = 'approved'
                    ORDER BY s.row_no LIMIT 1000"""
            ).format(k=sql.Identifier(layer.key), s=stage, t=table)
        ).fetchall()
        for row_no, key, fid in rows:
            report.findings.add(
                "error",
                "key_exists",
                f"{layer.key} {key!r} đã được duyệt trong {layer.id} (fid {fid}); dùng --mode upsert để thay thế",
                int(row_no),
                layer.key,
                en=f"{layer.key} {key!r} is already approved in {layer.id} (fid {fid}); "
                "use --mode upsert to replace it",
            )
    if layer.no_overlap and options.mode != "replace":
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(stage))
        conn.execute(sql.SQL("ANALYZE {}").format(stage))
        same_key = (
            sql.SQL("AND t.{k} IS DISTINCT FROM s.{k}").format(k=sql.Identifier(layer.key))
            if options.mode == "upsert" and layer.key
            else sql.SQL("")
        )
        rows = conn.execute(
            sql.SQL(
                """SELECT s.row_no, t.fid, a FROM {s} s JOIN {t} t
                     ON t.approval = 'approved' AND ST_Intersects(t.geom, s.geom) {same_key}
                   CROSS JOIN LATERAL (SELECT ST_Area(ST_Intersection(t.geom, s.geom)::geography) AS a) x
                  WHERE ST_Overlaps(t.geom, s.geom) AND a > %s ORDER BY s.row_no LIMIT 1000"""
            ).format(s=stage, t=table, same_key=same_key),
            (config.overlap_tolerance_m2,),
        ).fetchall()
        for row_no, fid, area in rows:
            report.findings.add(
                "error",
                "overlap_existing",
                f"chồng lấn đối tượng đã duyệt fid {fid} của {layer.id} {quality.vn_number(area, 1)} m² "
                f"(dung sai {quality.vn_number(config.overlap_tolerance_m2)} m²)",
                int(row_no),
                "geometry",
                en=f"overlaps approved feature fid {fid} of {layer.id} by {area:,.1f} m² "
                f"(tolerance {config.overlap_tolerance_m2:g} m²)",
            )
